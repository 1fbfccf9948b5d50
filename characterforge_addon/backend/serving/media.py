"""Pictures sent before the jobs that name them (an animation's control videos, carried frames
and the character's pictures): kept as <data>/media/<sha256>.png, each checked to be the PNG its
name says, so a job of hundreds of frames stays small and a frame is sent once."""

import os
import time

from ...core.spec.animation_spec import LIMITS, MEDIA_FIX, media_names
from ...core.characters.character_lora import sha256_of
from ...core.errors import UserError
from ...core.spec.spec_fields import JobSpecError
from ..engine.pictures import decode_image_bytes

MAX_MEDIA_BYTES = LIMITS["max_media_bytes"]
KEEP_DAYS = 7  # pictures no job named for this long are removed when the backend starts


class MediaStore:
    def __init__(self, data_dir):
        self.folder = os.path.join(data_dir, "media")
        os.makedirs(self.folder, exist_ok=True)

    def path(self, sha256):
        return os.path.join(self.folder, f"{sha256}.png")

    def has(self, sha256):
        return os.path.isfile(self.path(sha256))

    def keep(self, tmp_path, sha256):
        """Move a finished upload in: UserError unless it is a PNG whose SHA-256 is `sha256`."""
        actual = sha256_of(tmp_path)
        if actual != sha256:
            raise UserError(f"its SHA-256 is {actual}, not {sha256}: the upload was damaged or is another file")
        with open(tmp_path, "rb") as f:
            decode_image_bytes(f.read(), f"media {sha256[:12]}…")
        os.replace(tmp_path, self.path(sha256))

    def put(self, data):
        """Keep PNG bytes handed over in-process (a Ray replica given a job's pictures)."""
        from ...core.spec.animation_spec import media_name
        sha256 = media_name(data)
        if not self.has(sha256):
            tmp = self.path(sha256) + f".{os.getpid()}.partial"
            with open(tmp, "wb") as f:
                f.write(data)
            self.keep(tmp, sha256)
        return sha256

    def read(self, sha256, field):
        try:
            with open(self.path(sha256), "rb") as f:
                data = f.read()
        except OSError:
            raise UserError(f"{field}: the picture {sha256[:12]}… is gone from {self.folder}: send the job "
                            "again") from None
        os.utime(self.path(sha256))  # in use: kept another KEEP_DAYS
        return data

    def check(self, spec):
        """Refuse (JobSpecError) an animation whose pictures this backend lacks."""
        for name in media_names(spec):
            if not self.has(name):
                raise JobSpecError("frames", f"this backend has no picture {name[:12]}… the job names", MEDIA_FIX)

    def inline(self, spec):
        """{sha256: bytes} of every picture `spec` names (for a worker on another machine)."""
        return {name: self.read(name, "media") for name in media_names(spec)}

    def prune(self, days=KEEP_DAYS):
        """Remove pictures no job has named for `days`; returns how many."""
        cutoff, removed = time.time() - days * 86400, 0
        for entry in os.scandir(self.folder):
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                try:
                    os.unlink(entry.path)
                    removed += 1
                except OSError:
                    pass
        return removed
