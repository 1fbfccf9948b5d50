"""What made a batch unit's outputs, kept beside them in the batch's manifest, so a re-run
redoes exactly the units whose makings changed and says what changed.

A fingerprint is one short hash per named part: the prompt, the seed, the control maps, the
identity pictures, the profile's models, ... Each part is hashed from what the unit sends
anyway (its job spec with every picture in it, the backend's identity of the profile) or, for
maps-only units, from the map files themselves: nothing is rendered or generated to decide."""

import hashlib
import json
import os

FORMAT = 1  # what a unit's files are and mean; bumping it redoes every unit made before

# The parts in the order a message names them.
PARTS = ("profile", "models", "prompt", "negative prompt", "seed", "steps", "guidance", "draft", "size",
         "control maps", "control strengths", "identity pictures", "identity strength", "character LoRA",
         "background", "frame carried over", "characters", "settings", "output format")
IMPLIED = {"profile": ("models",)}  # another profile has other models: name the profile only
UNRECORDED = "unrecorded"   # a manifest entry written before fingerprints
CARRIED = "carried over"    # a moving shot's frame after one that is made again

_TOP = {"prompt": "prompt", "negative_prompt": "negative prompt", "seed": "seed", "steps": "steps",
        "guidance": "guidance", "profile": "profile", "draft": "draft", "width": "size", "height": "size",
        "background": "background", "previous": "frame carried over", "keypoints": "control maps",
        "face_box": "control maps"}
_IDENTITY = {"images": "identity pictures", "embedding": "identity pictures", "lora": "character LoRA"}


def digest(value):
    """A short, stable hash of JSON-able `value` (dict keys sorted)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _part(path):
    """The part a spec value at `path` (keys and list indices) belongs to."""
    if "identity" in path:
        below = path[path.index("identity") + 1:]
        return _IDENTITY.get(below[0] if below else "", "identity strength")
    head = path[0]
    if head == "controls":
        return "control maps" if path[-1] == "image" else "control strengths"
    if head == "characters":  # ("characters", i, key, ...): each character's prompt and mask
        return {"prompt": "prompt", "mask": "control maps"}.get(path[2] if len(path) > 2 else "", "characters")
    if path[:2] == ("hands", "boxes"):  # found from the rendered keypoints
        return "control maps"
    if head == "frames":  # an animation segment's control videos, frame by frame
        return "background" if path[-1] == "background" else "control maps"
    if head == "references":  # an animation segment's pictures of the character
        return "identity pictures"
    return _TOP.get(head, "settings")


def spec_parts(spec):
    """{part: hash} of a job spec: every value (pictures as their base64 text) in its part."""
    leaves = {}

    def walk(value, path):
        if isinstance(value, dict) and value:
            for key, item in value.items():
                walk(item, path + (key,))
        elif isinstance(value, list) and value:
            for i, item in enumerate(value):
                walk(item, path + (i,))
        else:
            if isinstance(value, str) and len(value) > 1024:  # a picture: its own hash, not a copy in the JSON
                value = "sha256:" + hashlib.sha256(value.encode("utf-8")).hexdigest()
            leaves.setdefault(_part(path), []).append([list(path), value])
    for key, value in spec.items():
        walk(value, (key,))
    return {part: digest(sorted(values, key=lambda v: json.dumps(v[0]))) for part, values in leaves.items()}


def of_job(spec, identity):
    """The fingerprint of a unit that sends `spec` to a backend whose profile identity (the
    backend's record of the profile's settings and models) is `identity`."""
    parts = spec_parts(spec)
    parts["models"] = digest(identity) if identity is not None else "unknown"
    parts["output format"] = str(FORMAT)
    return {"parts": parts}


def of_files(folder, names):
    """The fingerprint of a unit whose outputs are the files `names` in `folder` (control maps)."""
    hashes = []
    for name in sorted(names):
        with open(os.path.join(folder, name), "rb") as f:
            hashes.append([name, hashlib.sha256(f.read()).hexdigest()])
    return {"parts": {"control maps": digest(hashes), "output format": str(FORMAT)}}


def changes(recorded, current):
    """The parts of `current` that differ from the `recorded` fingerprint, in PARTS order, or
    [UNRECORDED] when nothing was recorded (a manifest written before fingerprints)."""
    if not isinstance(recorded, dict) or not isinstance(recorded.get("parts"), dict):
        return [UNRECORDED]
    old, new = recorded["parts"], current["parts"]
    changed = {p for p in set(old) | set(new) if old.get(p) != new.get(p)}
    for part, implied in IMPLIED.items():
        if part in changed:
            changed -= set(implied)
    return sorted(changed, key=lambda p: (PARTS.index(p) if p in PARTS else len(PARTS), p))


def outcome(finished, recorded, current, keep_changed=False):
    """(what to do with a unit, why): ("new", []) not finished before; ("unchanged", []);
    ("redo", reasons); ("keep", reasons) a changed unit kept on purpose."""
    if not finished:
        return "new", []
    reasons = changes(recorded, current)
    if not reasons:
        return "unchanged", []
    return ("keep" if keep_changed else "redo"), reasons


def because(reasons):
    """Why a unit is redone, in words: "the prompt and the seed changed"."""
    if UNRECORDED in reasons:
        return "the manifest, written before fingerprints, has none for it"
    if CARRIED in reasons:
        return "the frame it carries over is made again"
    words = {"output format": "the add-on's output format", "models": "the profile's models or settings"}
    names = [words.get(r, f"the {r}") for r in reasons]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{listed} changed"


class Rerun:
    """What a run does with each unit, and the line that says so: "12 unchanged, 4 redone
    because the prompt changed"."""

    def __init__(self, dry_run=False):
        self.dry_run = dry_run
        self.unchanged, self.new, self.redone, self.kept, self.failed = [], [], [], [], []

    def record(self, folder, what, reasons=()):
        """Note `folder`'s outcome ("new", "unchanged", "redo", "keep") and print a line for
        every unit a dry run plans and every unit a run redoes or keeps though it changed."""
        reasons = list(reasons)
        if what in ("redo", "keep"):
            (self.redone if what == "redo" else self.kept).append((folder, reasons))
        else:
            (self.new if what == "new" else self.unchanged).append(folder)
        if what in ("redo", "keep"):
            verb = ("to redo" if self.dry_run else "redo") if what == "redo" else "changed, kept (--keep-changed)"
            print(f"{folder}: {verb}: {because(reasons)}", flush=True)
        elif self.dry_run:
            print(f"{folder}: {'unchanged' if what == 'unchanged' else 'new: not made before'}", flush=True)
        return what

    def fail(self, folder):
        """A unit that did not get made after all: counted as failed, not as made."""
        self.new = [f for f in self.new if f != folder]
        self.redone = [(f, r) for f, r in self.redone if f != folder]
        self.failed.append(folder)

    def decide(self, folder, finished, recorded, current, keep_changed=False):
        """outcome() of a unit, recorded."""
        what, reasons = outcome(finished, recorded, current, keep_changed)
        return self.record(folder, what, reasons)

    def summary(self):
        groups = {}
        for _, reasons in self.redone:
            key = because(reasons)
            groups[key] = groups.get(key, 0) + 1
        redone = "to redo" if self.dry_run else "redone"
        out = [f"{len(self.unchanged)} unchanged"] if self.unchanged or self.redone or self.kept else []
        if len(groups) == 1:
            out.append(f"{len(self.redone)} {redone} because {next(iter(groups))}")
        elif groups:
            out.append(f"{len(self.redone)} {redone}: " + ", ".join(f"{n} because {why}" for why, n in groups.items()))
        if self.new:
            out.append(f"{len(self.new)} {'to make' if self.dry_run else 'made'} (not made before)")
        if self.failed:
            out.append(f"{len(self.failed)} failed")
        line = ", ".join(out) or "nothing to do"
        if self.kept:
            line += (f"; {len(self.kept)} changed but kept on purpose (--keep-changed), their outputs made with "
                     "other settings: " + "; ".join(f"{f}: {because(r)}" for f, r in self.kept))
        return ("dry run, nothing was run: " if self.dry_run else "") + line
