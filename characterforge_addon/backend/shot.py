"""The shot job: the characters put into the background so they look lit by it.

In place (default): the background is inpainted inside the characters' masks (grown, then
feathered) with the combined OpenPose map (and hand depth) and each character's identity
limited to its own mask; with several characters each then gets a pass of its own prompt
in its own mask. Cut-out: the characters are generated on a plain ground, cut out by their
masks, pasted at their place and harmonized by a low-strength img2img pass. Then each hand is
redrawn from the hand depth map. The background outside the grown masks is never changed.
"""

import base64

import numpy as np
from PIL import Image, ImageFilter

from ..core.errors import UserError
from . import redraw, scoring
from .adapters import Region
from .pipelines import decode_image_bytes

HAND_GROW = 1.2
HAND_SUFFIX = ", detailed hands, five fingers, natural hand pose"
HAND_NEGATIVE = "extra fingers, missing fingers, fused fingers, deformed hands"
CUTOUT_GROUND = ", full body, plain light grey studio background"
CUTOUT_EDGE = 3  # pixels the cut-out reaches past the rig's silhouette (hair, loose clothes)


def cover(image, width, height):
    """`image` scaled to cover width x height and cropped in the middle (as the background plane shows it)."""
    w, h = image.size
    scale = max(width / w, height / h)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    image = image.resize(size, Image.LANCZOS)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    return np.asarray(image.crop((left, top, left + width, top + height)).convert("RGB"))


def grow(mask, pixels):
    """`mask` (bool HxW) dilated by a square of `pixels` each side (a separable running max)."""
    if pixels <= 0:
        return mask.copy()
    out = mask
    for axis in (0, 1):
        padded = np.pad(out, [(pixels, pixels) if a == axis else (0, 0) for a in (0, 1)])
        out = np.lib.stride_tricks.sliding_window_view(padded, 2 * pixels + 1, axis=axis).any(axis=-1)
    return out


def feathered(mask, pixels):
    """Blend weights 0..1 from a bool mask, softened over about `pixels`, never outside mask grown by `pixels`."""
    soft = Image.fromarray(np.where(mask, np.uint8(255), np.uint8(0)))
    if pixels > 0:
        soft = soft.filter(ImageFilter.GaussianBlur(pixels / 2))
    alpha = np.asarray(soft, dtype=np.float64) / 255.0
    return alpha * grow(mask, pixels)


def paste(under, over, alpha):
    blended = under.astype(np.float64) * (1 - alpha[..., None]) + over.astype(np.float64) * alpha[..., None]
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def _l_image(mask):
    return Image.fromarray(np.where(mask, np.uint8(255), np.uint8(0)))


def _decode(b64, field, size=None, mode="RGB"):
    image = decode_image_bytes(base64.b64decode(b64), field).convert(mode)
    return image.resize(size, Image.NEAREST if mode == "L" else Image.LANCZOS) if size and image.size != size else image


def run(engine, spec, pngs, progress, cancel, face_tools, pose_detector):
    """[(name, pixels, record)]: the composite, and in cut-out mode the characters with alpha."""
    w, h = spec["width"], spec["height"]
    c = spec["composite"]
    background = cover(_decode(spec["background"]["image"], "background.image"), w, h)
    maps = {n: np.asarray(_decode(spec["controls"][n]["image"], f"controls.{n}.image", (w, h)))
            for n in ("openpose", "depth", "hand_depth") if n in spec["controls"]}
    characters = spec["characters"]
    masks = [np.asarray(_decode(ch["mask"], f"characters[{i}].mask", (w, h), "L")) > 127
             for i, ch in enumerate(characters)]
    union = np.logical_or.reduce(masks)
    if not union.any():
        raise UserError("the characters' masks are empty: no rig is in the camera's view; frame them and try again")
    references = [[_decode(b, f"characters[{i}].identity.images[{j}]") for j, b in enumerate(ch["identity"]["images"])]
                  if "identity" in ch else [] for i, ch in enumerate(characters)]
    # Each character's identity acts in its own mask, grown but never over another character.
    regions = []
    for i, (ch, mask) in enumerate(zip(characters, masks)):
        others = np.logical_or.reduce([m for j, m in enumerate(masks) if j != i]) if len(masks) > 1 else np.zeros_like(mask)
        identity = ch.get("identity", {})
        regions.append(Region(references[i], _embedding(engine, identity, references[i]), identity.get("scale", 0.0),
                              identity.get("faceid_scale", 0.0), _l_image(grow(mask, c["grow"]) & ~others)))
    use_identity = any(references)
    identity = ((lambda pipe: engine.adapters.regional_kwargs(pipe, spec, regions, h, w)) if use_identity else None)
    job = dict(spec, prompt=", ".join(p for p in [spec["prompt"].strip()] + [ch["prompt"].strip() for ch in characters] if p))
    steering = [(n, Image.fromarray(maps[n])) for n in ("openpose", "depth") if n in maps]
    grown = grow(union, c["grow"])
    record = {"mode": c["mode"], "characters": [ch["name"] for ch in characters], "composite": c}
    outputs = []
    if c["mode"] == "inpaint":
        progress.stage("characters in place")
        made = engine.inpaint(job, background, _l_image(grown), c["strength"], [], spec["seed"], "", progress.step,
                              cancel, controls=steering, identity=identity)
        image = paste(background, made, feathered(grown, c["feather"]))
        if len(characters) > 1 and c["character_strength"] > 0:
            for i, (ch, mask) in enumerate(zip(characters, masks)):
                progress.stage(f"character {i + 1} of {len(characters)}: {ch['name']}")
                own = dict(spec, prompt=", ".join(p for p in (spec["prompt"].strip(), ch["prompt"].strip()) if p),
                           identity=ch.get("identity", {"scale": 0.0}))
                region = grow(mask, max(2, c["grow"] // 3))
                made = engine.inpaint(own, image, _l_image(region), c["character_strength"], references[i],
                                      spec["seed"] + 11 + i, "", progress.step, cancel, controls=steering[:1])
                image = paste(image, made, feathered(region, max(2, c["feather"] // 2)))
    else:
        progress.stage("characters")
        ground = np.full((h, w, 3), 200, dtype=np.uint8)
        made = engine.inpaint(dict(job, prompt=job["prompt"] + CUTOUT_GROUND), ground, _l_image(np.ones((h, w), bool)),
                              1.0, [], spec["seed"], "", progress.step, cancel, controls=steering, identity=identity)
        edge = grow(union, CUTOUT_EDGE)
        alpha = feathered(edge, 2)
        pasted = paste(background, made, alpha)
        progress.stage("harmonizing")
        image = pasted
        if c["harmonize"] > 0:
            lit = engine.img2img(job, pasted, c["harmonize"], [], spec["seed"] + 1, progress.step, cancel)
            image = paste(pasted, lit, feathered(grown, c["feather"]))
        for i, (ch, mask) in enumerate(zip(characters, masks)):  # one cut-out per character, for its own depth
            others = np.logical_or.reduce([m for j, m in enumerate(masks) if j != i]) if len(masks) > 1 else False
            own = feathered(grow(mask, CUTOUT_EDGE) & ~others, 2)
            rgba = np.dstack([made, np.clip(np.rint(own * 255), 0, 255).astype(np.uint8)])
            outputs.append((f"{spec['name']}_cutout_{ch['name']}", rgba, dict(record, layer="cutout", character=ch["name"])))
    hands = {"enabled": spec["hands"]["enabled"], "boxes": spec["hands"]["boxes"], "redrawn": []}
    if spec["hands"]["enabled"] and spec["hands"]["boxes"]:
        hand_job = dict(job, negative_prompt=", ".join(p for p in (spec["negative_prompt"], HAND_NEGATIVE) if p))
        hand_maps = [("hand_depth", maps["hand_depth"])] if "hand_depth" in maps else []
        hands["control"] = "hand_depth" if hand_maps else "none (no hand depth map sent)"
        for i, box in enumerate(spec["hands"]["boxes"]):
            progress.stage(f"hands: hand {i + 1} of {len(spec['hands']['boxes'])}")
            image, where = redraw.redraw_box(engine, image, box, hand_job, spec["hands"]["strength"],
                                             spec["seed"] + 200 + i, [], progress, cancel, engine.profile.native_size,
                                             HAND_GROW, HAND_SUFFIX, controls=hand_maps)
            if where:
                hands["redrawn"].append(where["changed_within"])
    progress.stage("scoring")
    record.update(hands=hands, scores=_scores(engine, spec, image, masks, face_tools, pose_detector))
    return [(spec["name"], image, record)] + outputs


def _embedding(engine, identity, references):
    """The character's FaceID vector: its pack's mean, else found in its references."""
    if not references:
        return None
    engine.adapters.load()
    return engine.identity_embedding({"identity": identity}, references) if engine.adapters.faceid else None


def _scores(engine, spec, image, masks, face_tools, pose_detector):
    """Pose adherence of every rig, and each character's identity on the faces inside its mask."""
    out = {}
    pose = scoring.pose_scores(pose_detector, [image], spec)[0] if pose_detector else None
    if pose is not None:
        out["pose"] = pose
    by_character = {}
    for ch, mask in zip(spec["characters"], masks):
        if "identity" not in ch:
            continue
        pngs = [base64.b64decode(b) for b in ch["identity"]["images"]]
        target = scoring.identity_target(face_tools, {"identity": ch["identity"]}, pngs, decode_image_bytes)
        ys, xs = np.nonzero(mask)
        crop = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1] if len(xs) else image
        by_character[ch["name"]] = scoring.identity_scores(face_tools, [np.ascontiguousarray(crop)], target)[0]
    if by_character:
        ok = [s for s in by_character.values() if s and s.get("status") == "ok"]
        out["identity"] = min(ok, key=lambda s: s["similarity"]) if ok else next(iter(by_character.values()))
        out["identity_by_character"] = by_character
    return out
