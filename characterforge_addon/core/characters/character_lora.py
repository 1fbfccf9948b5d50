"""A character's LoRA on the add-on's side: the training job made from its identity pack, the
finished file kept in the pack (`lora/`, its samples in `lora/samples/`, the manifest's `lora`
entry written last, so a LoRA appears only when complete), and the `lora` a later job names.
"""

import base64
import hashlib
import json
import os
import re
import shutil
import struct

from ..errors import UserError
from ..spec.job_spec import validate_job
from ..spec.training_spec import TRIGGER_PATTERN
from .identity_pack import _inside, _save_manifest, load_pack, MANIFEST, PackError
from .lora_dataset import plan

DEFAULT_WEIGHT = 0.8
MAX_HEADER_BYTES = 100 * 2**20  # safetensors' own limit on a header
RECORD_KEY = "characterforge"  # the metadata key of our training record


def lora_record(path):
    """(our training record or {}, the file's metadata) of a LoRA .safetensors, read from its
    header alone; PackError when it cannot be read or holds no LoRA weights."""
    try:
        with open(path, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            if size > MAX_HEADER_BYTES:
                raise ValueError(f"a header of {size} bytes")
            header = json.loads(f.read(size))
        if not isinstance(header, dict):
            raise ValueError("its header is not a table of tensors")
    except (OSError, struct.error, ValueError) as exc:
        raise PackError(f"{path} is not a readable LoRA (.safetensors) file ({exc})") from None
    if not any(k.endswith((".lora_down.weight", ".lora_A.weight")) for k in header):
        raise PackError(f"{path} holds no LoRA weights (no lora_down/lora_A keys)")
    meta = header.get("__metadata__") or {}
    try:
        record = json.loads(meta.get(RECORD_KEY, "{}"))
    except ValueError:
        record = {}
    return record, meta


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_trigger(name):
    """A trigger word from a character's name: letters, digits and '_' only, from a letter."""
    word = re.sub(r"[^A-Za-z0-9_]", "_", name)[:32]
    return word if re.match(TRIGGER_PATTERN, word) else f"c_{word}"[:32].ljust(3, "x")


def train_spec(pack_folder, trigger, profile, flip=True, **settings):
    """A validated `train_lora` spec from the pack's views and faces with their captions (the
    dataset export's); `settings`: the spec's training fields (steps, rank, resolution...)."""
    manifest = load_pack(pack_folder)
    pictures, seen = [], {}
    for stem, path, mirrored, caption in plan(pack_folder, trigger, flip):
        if mirrored:
            seen[path]["mirror_caption"] = caption
            continue
        with open(path, "rb") as f:
            seen[path] = {"image": base64.b64encode(f.read()).decode("ascii"), "caption": caption,
                          "mirror_caption": ""}
        pictures.append(seen[path])
    prompt = manifest.get("prompt", "").strip()
    sample = ", ".join(p for p in (trigger, "full body, front view, standing", prompt, "simple background") if p)
    spec = {"kind": "train_lora", "profile": profile, "name": manifest["name"], "trigger": trigger,
            "images": pictures, "sample_prompt": sample, **settings}
    return validate_job(spec)


def add_lora(pack_folder, lora_path, sample_paths, weight=DEFAULT_WEIGHT):
    """Keep a finished LoRA (and its sample pictures) in the pack, replacing an earlier one.
    Returns the manifest's new `lora` entry."""
    manifest = load_pack(pack_folder)
    record, meta = lora_record(lora_path)
    name = os.path.splitext(os.path.basename(lora_path))[0]
    folder = os.path.join(pack_folder, "lora")
    os.makedirs(os.path.join(folder, "samples"), exist_ok=True)
    old = manifest.get("lora") or {}
    target = os.path.join(folder, f"{name}.safetensors")
    tmp = target + ".tmp"
    shutil.copyfile(lora_path, tmp)
    os.replace(tmp, target)
    samples = []
    for path in sample_paths:
        relative = f"lora/samples/{os.path.basename(path)}"
        shutil.copyfile(path, os.path.join(pack_folder, relative))
        samples.append(relative)
    entry = {"file": f"lora/{name}.safetensors", "sha256": sha256_of(target), "name": name,
             "trigger": record.get("trigger") or meta.get("modelspec.trigger_phrase", ""),
             "weight": float(old.get("weight", weight)), "profile": record.get("profile", ""),
             "family": record.get("family", ""), "rank": record.get("rank"), "steps": record.get("steps"),
             "loss_before": record.get("loss_before"), "loss_after": record.get("loss_after"), "samples": samples}
    manifest["lora"] = entry
    _save_manifest(pack_folder, manifest)
    for stale in [old.get("file")] + list(old.get("samples", ())):  # the earlier LoRA's files, unless reused
        if stale and stale != entry["file"] and stale not in samples:
            path = _inside(pack_folder, stale, "earlier LoRA file")
            if os.path.isfile(path):
                os.unlink(path)
    return entry


def pack_lora(pack_folder):
    """(the manifest's `lora` entry, the LoRA file's path) of a pack, or (None, None) without one;
    PackError when the entry names a file that is missing."""
    entry = load_pack(pack_folder).get("lora")
    if not entry:
        return None, None
    path = _inside(pack_folder, entry.get("file"), "LoRA")
    if not os.path.isfile(path):
        raise PackError(f"{os.path.join(pack_folder, MANIFEST)}: its LoRA {path} is missing: train it again, or "
                        "re-import the pack")
    return entry, path


def set_weight(pack_folder, weight):
    """The weight the pack's LoRA acts with in every job (0: off)."""
    if not 0.0 <= weight <= 2.0:
        raise UserError(f"LoRA weight {weight} must be 0 to 2")
    manifest = load_pack(pack_folder)
    if not manifest.get("lora"):
        raise PackError(f"character {manifest['name']!r} has no LoRA: train one first")
    manifest["lora"]["weight"] = round(float(weight), 4)
    _save_manifest(pack_folder, manifest)


def job_lora(pack_folder):
    """The `lora` a job sends for this pack's character ({sha256, name, weight, trigger}), and
    the file's path (to send it to a backend that lacks it); (None, None) without a LoRA."""
    entry, path = pack_lora(pack_folder)
    if entry is None:
        return None, None
    lora = {"sha256": entry["sha256"], "name": entry["name"], "weight": entry["weight"]}
    if entry.get("trigger"):
        lora["trigger"] = entry["trigger"]
    return lora, path
