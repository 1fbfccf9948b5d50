"""A profile's identity: what its outputs depend on, as one JSON record that a batch keeps in
each unit's fingerprint (core.fingerprint), so a re-run can tell outputs made with other
models from its own.

Each model is named by what pins its weights: a hub model by the snapshot (commit) the
loader reads, a file or folder of the user's by the SHA-256 of its files, the tiny random
weights by their version. File hashes are kept in `<models>/identity-hashes.json` by path,
size and modification time, so a multi-GB checkpoint is read once per version of it."""

import dataclasses
import hashlib
import json
import os

from ...core.errors import UserError
from ...core.image_io import write_atomic
from . import models, profiles
from .. import tiny

CACHE = "identity-hashes.json"
SKIPPED_SETTINGS = ("models", "path", "description")  # where it was read from and its text change no pixel


def identity(name, profile_dirs, models_dir, weights="native", _seen=()):
    """{"profile", "family", "settings", "weights", "models": {role: id}[, "face_refine": ...]}
    of the profile `name` as this backend would run it."""
    profile = profiles.load_profile(name, profile_dirs)
    settings = {k: v for k, v in dataclasses.asdict(profile).items() if k not in SKIPPED_SETTINGS}
    record = {"profile": profile.name, "family": profile.family, "weights": weights,
              "settings": json.loads(json.dumps(settings, sort_keys=True, default=str)),
              "models": models_of(profile, models_dir)}
    if profile.face_refine and profile.face_refine not in _seen:  # its faces are redrawn by that profile
        try:
            record["face_refine"] = identity(profile.face_refine, profile_dirs, models_dir, weights,
                                             (*_seen, profile.name))
        except UserError as exc:
            record["face_refine"] = f"cannot load: {exc}"
    return record


def models_of(profile, models_dir):
    """{role: what pins its weights} of a loaded profile."""
    cache = _Hashes(os.path.join(models_dir, CACHE))
    ids = {role: model_id(source, models_dir, cache) for role, source in profile.models.items()}
    cache.save()
    return ids


def model_id(source, models_dir, cache):
    """What pins one role's weights (see the module's docstring); "missing: ..." when absent."""
    if source.kind == "tiny":
        return f"tiny-v{tiny.VERSION}/{source.location}"
    try:
        path = models.check(source, models_dir)
    except models.ModelMissing:
        return f"missing: {source.kind} {source.location}"
    if source.kind == "repo":  # <hub cache>/models--org--name/snapshots/<commit>/...
        after = path.split(os.sep + "snapshots" + os.sep, 1)
        commit = after[1].split(os.sep, 1)[0] if len(after) == 2 else "?"
        return f"{source.location}@{commit}:{source.subfolder}:{source.weight}:{source.variant}"
    if os.path.isfile(path):
        return "sha256:" + cache.of(path)
    files = sorted(os.path.relpath(os.path.join(d, f), path) for d, _, names in os.walk(path) for f in names
                   if not f.startswith("."))
    listed = [[rel, cache.of(os.path.join(path, rel))] for rel in files]
    return "sha256:" + hashlib.sha256(json.dumps(listed).encode("utf-8")).hexdigest()


class _Hashes:
    """SHA-256 of files, remembered by (path, size, mtime)."""

    def __init__(self, path):
        self.path, self.changed = path, False
        try:
            with open(path, encoding="utf-8") as f:
                self.known = json.load(f)
        except (OSError, ValueError):
            self.known = {}

    def of(self, file):
        stat = os.stat(file)
        key = os.path.abspath(file)
        seen = self.known.get(key)
        if isinstance(seen, list) and seen[:2] == [stat.st_size, stat.st_mtime_ns]:
            return seen[2]
        sha = hashlib.sha256()
        with open(file, "rb") as f:
            while chunk := f.read(1 << 22):
                sha.update(chunk)
        self.known[key] = [stat.st_size, stat.st_mtime_ns, sha.hexdigest()]
        self.changed = True
        return self.known[key][2]

    def save(self):
        if self.changed and os.path.isdir(os.path.dirname(self.path)):
            try:
                write_atomic(self.path, json.dumps(self.known, indent=1).encode("utf-8"))
            except OSError:
                pass  # a read-only models folder: hashed again next time, nothing lost
            self.changed = False
