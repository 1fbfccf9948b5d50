"""Headless batch plans: a TOML job file becomes units of work (frame x camera x seed), and a
manifest records which units are finished and what made them, so a re-run keeps those still
made the same way and redoes the rest."""

import json
import os
import tomllib

from ..errors import UserError
from ..image_io import write_atomic

MANIFEST = "manifest.json"
KINDS = ("posed", "shot", "animation")


def parse_frames(value, where):
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return sorted(set(value))
    if isinstance(value, str):  # "1-24", "7", or Flamenco's "3, 5-10, 47"
        frames = set()
        for part in value.split(","):
            first, _, last = part.strip().partition("-")
            try:
                first, last = int(first), int(last or first)
            except ValueError:
                raise UserError(f"{where}: frames {value!r} must look like \"1-24\", 7, \"3, 5-10\" or [1, 5, 9]") from None
            if last < first:
                raise UserError(f"{where}: frames {value!r} end before they start")
            frames.update(range(first, last + 1))
        return sorted(frames)
    raise UserError(f"{where}: frames must be \"A-B\", a number or a list of numbers")


def _retries(value, where):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise UserError(f"{where}: retries must be a whole number from 0 to 10 (how often a failed unit runs again "
                        "on Ray)")
    return value


def load_plan(path):
    """The batch file as {"output", "frames", "cameras", "seeds", "generate", "backends", "token", "shot",
    "retries", "kind", "temporal", "video", "relight"}."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise UserError(f"cannot read batch file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"batch file {path} is not valid TOML: {exc}") from None
    batch = doc.get("batch", {})
    if not isinstance(batch, dict):
        raise UserError(f"{path}: [batch] must be a table")
    seeds = batch.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and 0 <= s < 2**32 for s in seeds):
        raise UserError(f"{path}: seeds must be a list of whole numbers from 0 to 4294967295")
    cameras = batch.get("cameras", [])
    if not isinstance(cameras, list) or not all(isinstance(c, str) and c for c in cameras):
        raise UserError(f"{path}: cameras must be a list of camera object names (empty: the scene camera)")
    backends = batch.get("backends", [])
    if not isinstance(backends, list) or not all(isinstance(b, str) and b.startswith("http") for b in backends):
        raise UserError(f"{path}: backends must be a list of http:// URLs")
    shot = doc.get("shot", {})
    generate = bool(batch.get("generate", True))
    kind = batch.get("kind", "posed")
    if kind not in KINDS:
        raise UserError(f"{path}: kind must be one of {', '.join(KINDS)} (posed: a posed character per unit; shot: "
                        "the scene's shot, its set and characters, frame by frame; animation: the shot made by a "
                        "video model, segment by segment)")
    animation = doc.get("animation", {})
    if not isinstance(animation, dict):
        raise UserError(f"{path}: [animation] must be a table (profile, segment, carry, mode, control, height, "
                        "strength)")
    relight = batch.get("relight", False)
    if not isinstance(relight, bool) or relight and kind != "shot":
        raise UserError(f"{path}: relight = true relights a moving shot's frames with the scene's lights: set "
                        "kind = \"shot\" (relight must be true or false)")
    if generate and kind == "posed" and not str(shot.get("prompt", "")).strip():
        raise UserError(f"{path}: [shot] needs a prompt to generate (or set generate = false for control maps only)")
    return {"output": str(batch.get("output", "//batch")), "frames": parse_frames(batch.get("frames", 1), path),
            "cameras": cameras, "seeds": seeds, "generate": generate, "backends": backends,
            "token": str(batch.get("token", "")), "shot": shot, "retries": _retries(batch.get("retries", 2), path),
            "kind": kind, "temporal": bool(batch.get("temporal", True)), "video": bool(batch.get("video", False)),
            "animation": animation, "relight": relight}


def units(plan, cameras):
    """Every unit of work, in a stable order: (camera, frame, seed, relative folder)."""
    out = []
    for camera in cameras:
        for frame in plan["frames"]:
            for seed in (plan["seeds"] if plan["generate"] else [None]):
                out.append((camera, frame, seed, unit_folder(camera, frame, seed)))
    return out


def previous_unit(plan, camera, frame, seed):
    """The folder of the unit a moving shot's frame carries over (the frame before, same camera
    and seed), or None: the first frame, a frame whose predecessor is not in the batch (the
    motion vectors reach one frame back), or `temporal = false`."""
    if not plan["temporal"] or frame - 1 not in plan["frames"]:
        return None
    return unit_folder(camera, frame - 1, seed)


def unit_folder(camera, frame, seed):
    return os.path.join(_safe(camera), f"frame_{frame:04d}") + ("" if seed is None else f"/seed_{seed}")


def segment_folder(camera, index, seed):
    """An animated shot's unit: one segment of one camera's and seed's shot."""
    return os.path.join(_safe(camera), f"segment_{index:03d}", f"seed_{seed}")


def sequence_folder(camera, seed):
    """Where a moving shot's frames are gathered as an image sequence."""
    return os.path.join(_safe(camera), f"seed_{seed}_sequence")


def _safe(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


class Manifest:
    """Finished units, their files and what made them (core.fingerprint: a manifest written
    before fingerprints has none), rewritten atomically after each one."""

    def __init__(self, folder, name=MANIFEST):
        self.path = os.path.join(folder, name)
        self.done, self.made_by = {}, {}
        if os.path.exists(self.path):
            try:
                with open(self.path, encoding="utf-8") as f:
                    doc = json.load(f)
                self.done, self.made_by = doc.get("done", {}), doc.get("fingerprints", {})
                if not isinstance(self.done, dict) or not isinstance(self.made_by, dict):
                    raise ValueError("not a manifest")
            except (OSError, ValueError, AttributeError):
                self.done, self.made_by = {}, {}  # unreadable: every unit is redone, none is lost

    def finished(self, folder, root):
        files = self.done.get(folder)
        return bool(files) and all(os.path.isfile(os.path.join(root, f)) for f in files)

    def fingerprint(self, folder):
        return self.made_by.get(folder)

    def add(self, folder, files, fingerprint=None):
        self.done[folder] = sorted(files)
        if fingerprint is None:
            self.made_by.pop(folder, None)  # never another making's record beside these files
        else:
            self.made_by[folder] = fingerprint
        self._write()

    def forget(self, folder):
        """Before a finished unit is made again: a kill from here on leaves it not done."""
        known = [self.done.pop(folder, None), self.made_by.pop(folder, None)]
        if known != [None, None]:
            self._write()

    def _write(self):
        # "done" keeps its old shape, so an older add-on still reads what is finished; one line per
        # unit, each by json's C encoder: rewritten after every unit, a long batch's manifest stays cheap
        def lines(table):
            return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in table.items()) + "}"
        text = '{"done": ' + lines(self.done) + ',\n"fingerprints": ' + lines(self.made_by) + "}\n"
        write_atomic(self.path, text.encode("utf-8"))
