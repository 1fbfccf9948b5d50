"""A LoRA training set from an identity pack: its views and faces (optionally mirrored), each
with a caption, in the layouts kohya_ss and diffusers' training scripts read.

kohya_ss:   <out>/kohya/img/<repeats>_<trigger>/<image>.png + <image>.txt (the caption)
diffusers:  <out>/diffusers/<image>.png + metadata.jsonl ({"file_name", "text"} per line),
            the `imagefolder` layout train_text_to_image_lora(_sdxl).py loads with --train_data_dir
"""

import json
import os

import numpy as np

from ..errors import UserError
from ..image_io import decode_png, encode_png, write_atomic
from ..spec.training_spec import check_trigger
from .identity_pack import _inside, load_pack

LAYOUTS = ("kohya", "diffusers")


def yaw_tag(yaw):
    """Words for a view angle, as tag-style captions use them."""
    a = (float(yaw) + 180.0) % 360.0 - 180.0
    if abs(a) <= 22.5:
        return "front view"
    if abs(a) >= 157.5:
        return "back view"
    side = "from the left" if a > 0 else "from the right"
    if abs(a) < 67.5:
        return f"three-quarter view {side}"
    if abs(a) <= 112.5:
        return f"side view {side}"
    return f"three-quarter back view {side}"


def caption(trigger, kind, yaw, prompt, expression="neutral expression"):
    framing = "full body, character sheet view" if kind == "body" else f"close-up portrait, face, {expression}"
    parts = [trigger, framing, yaw_tag(yaw), prompt.strip()]
    return ", ".join(p for p in parts if p)


def plan(pack_folder, trigger, flip=True):
    """[(file stem, source PNG path, mirrored, caption)] for every view and face of the pack."""
    manifest = load_pack(pack_folder)
    items = [("body", v) for v in manifest["views"]] + [("face", f) for f in manifest["faces"]]
    out = []
    for kind, item in items:
        stem = f"{manifest['name']}_{item['name']}"
        path = _inside(pack_folder, item["file"], f"{kind} {item['name']}")
        text = caption(trigger, kind, item.get("yaw", 0.0), manifest.get("prompt", ""))
        out.append((stem, path, False, text))
        if flip:
            mirrored = caption(trigger, kind, -float(item.get("yaw", 0.0)), manifest.get("prompt", ""))
            out.append((f"{stem}_flip", path, True, mirrored))
    return out


def export(pack_folder, out_dir, trigger, layouts=LAYOUTS, repeats=10, flip=True):
    """Write the dataset; returns (and writes as dataset.json) a summary: images, sizes, captions."""
    check_trigger(trigger)
    unknown = set(layouts) - set(LAYOUTS)
    if unknown or not layouts:
        raise UserError(f"dataset layout {sorted(unknown)[0] if unknown else 'none'!r} is not known: use kohya and/or diffusers")
    if not 1 <= int(repeats) <= 1000:
        raise UserError(f"repeats {repeats} must be 1 to 1000")
    items = plan(pack_folder, trigger, flip)
    folders = {"kohya": os.path.join(out_dir, "kohya", "img", f"{int(repeats)}_{trigger}"),
               "diffusers": os.path.join(out_dir, "diffusers")}
    for layout in layouts:
        os.makedirs(folders[layout], exist_ok=True)
    sizes, metadata = {}, []
    for stem, path, mirrored, text in items:
        with open(path, "rb") as f:
            png = f.read()
        pixels = decode_png(png)  # also checks the file is a readable PNG
        if mirrored:
            png = encode_png(np.ascontiguousarray(pixels[:, ::-1]))
        sizes[stem] = [pixels.shape[1], pixels.shape[0]]
        for layout in layouts:
            write_atomic(os.path.join(folders[layout], f"{stem}.png"), png)
            if layout == "kohya":
                write_atomic(os.path.join(folders[layout], f"{stem}.txt"), text.encode("utf-8"))
        metadata.append({"file_name": f"{stem}.png", "text": text})
    if "diffusers" in layouts:
        lines = "".join(json.dumps(m) + "\n" for m in metadata)
        write_atomic(os.path.join(folders["diffusers"], "metadata.jsonl"), lines.encode("utf-8"))
    summary = {"images": len(items), "mirrored": sum(1 for i in items if i[2]), "captions": len(items),
               "trigger": trigger, "repeats": int(repeats), "layouts": {k: folders[k] for k in layouts},
               "sizes": sizes, "min_side": min(min(s) for s in sizes.values()) if sizes else 0}
    write_atomic(os.path.join(out_dir, "dataset.json"), json.dumps(summary, indent=1).encode("utf-8"))
    return summary
