"""Pictures kept by their SHA-256 (PUT /pictures/<sha256>), so a job names a picture the backend
already has instead of sending it again: <data>/pictures/<sha256>.png, each checked to be the PNG
its name says, the least recently used dropped past a size cap.

Two kinds of job name pictures this way. Any job may give a picture as "sha256:<hex>" where it
takes one (live mode sends identity references, the background and unchanged maps so): such a
job gets its pictures back inline before it is queued, so nothing after the HTTP API ever sees a
hash. An animation segment names its frames' maps by SHA-256 (core.spec.animation_spec): too
many to inline, they are read from here when the segment runs (`read_named`), and a Ray
replica on another machine is handed them with the job (`inline_named`, `put`)."""

import base64
import hashlib
import os
import threading
import time

from ...core.errors import UserError
from ...core.image_io import write_atomic
from ...core.spec.animation_spec import PICTURE_FIX, media_names
from ...core.spec.job_spec import map_image_fields, picture_ref, picture_refs
from ...core.spec.spec_fields import JobSpecError
from ..engine.pictures import decode_image_bytes

# Thousands of live maps, or a few animated segments at 1280x720 (about 400 MB each: five maps a
# frame): a picture uploaded for a queued job is among the newest, so it is dropped last.
MAX_STORE_BYTES = 2 * 2**30


class PictureStore:
    def __init__(self, data_dir, max_bytes=MAX_STORE_BYTES):
        self.folder = os.path.join(data_dir, "pictures")
        os.makedirs(self.folder, exist_ok=True)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._kept = {}  # sha256 -> (bytes, last used): the folder's pictures, read once at start
        for entry in os.scandir(self.folder):
            sha, ext = os.path.splitext(entry.name)
            if ext == ".png" and len(sha) == 64 and entry.is_file():
                stat = entry.stat()
                self._kept[sha] = (stat.st_size, stat.st_mtime)
            elif entry.name.startswith(".tmp-"):  # a write cut off by a crash
                os.unlink(entry.path)

    def path(self, sha256):
        return os.path.join(self.folder, f"{sha256}.png")

    def has(self, sha256):
        with self._lock:
            return sha256 in self._kept and os.path.isfile(self.path(sha256))

    def keep(self, sha256, data):
        """Keep PNG bytes under their SHA-256, which must be `sha256`; UserError when they are
        another file or no PNG a job could take. Returns False when it was kept already."""
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise UserError(f"the bytes sent have the SHA-256 {actual}, not {sha256}: the upload was damaged "
                            "or is another picture")
        if self.has(sha256):
            self._touch(sha256)
            return False
        decode_image_bytes(data, f"picture {sha256[:12]}…")  # a PNG, within the pixel limit
        write_atomic(self.path(sha256), data)
        with self._lock:
            self._kept[sha256] = (len(data), time.time())
        self._evict()
        return True

    def keep_file(self, sha256, tmp_path):
        """Keep a streamed upload (a file in this store's folder) under `sha256`; as `keep`."""
        with open(tmp_path, "rb") as f:
            data = f.read()
        return self.keep(sha256, data)

    def put(self, data):
        """Keep PNG bytes handed over in-process (a Ray replica given a job's pictures); their SHA-256."""
        sha256 = hashlib.sha256(data).hexdigest()
        self.keep(sha256, data)
        return sha256

    def read_named(self, sha256, field):
        """The PNG bytes of a picture a running job names; UserError naming `field` when it is gone."""
        data = self.read(sha256)
        if data is None:
            raise UserError(f"{field}: the picture {sha256[:12]}… is gone from {self.folder}: send the job again")
        return data

    def check_named(self, spec):
        """Refuse (JobSpecError) an animation segment whose pictures this backend lacks."""
        for name in media_names(spec):
            if not self.has(name):
                raise JobSpecError("frames", f"this backend has no picture {name[:12]}… the job names", PICTURE_FIX)

    def inline_named(self, spec):
        """{sha256: bytes} of every picture an animation segment names (for a replica elsewhere)."""
        return {name: self.read_named(name, "frames") for name in media_names(spec)}

    def read(self, sha256):
        """The PNG bytes of a kept picture (marked as used), or None."""
        try:
            with open(self.path(sha256), "rb") as f:
                data = f.read()
        except OSError:
            with self._lock:
                self._kept.pop(sha256, None)
            return None
        self._touch(sha256)
        return data

    def missing(self, job):
        """{field: SHA-256} of the pictures `job` names by hash that this backend lacks."""
        return {field: sha for field, sha in picture_refs(job).items() if not self.has(sha)}

    def resolve(self, job):
        """`job` with every picture named by hash put back inline (base64). KeyError (the
        field) if one went missing since `missing` was asked."""
        def inline(field, value):
            sha = picture_ref(value)
            if sha is None:
                return value
            data = self.read(sha)
            if data is None:
                raise KeyError(field)
            return base64.b64encode(data).decode("ascii")
        return map_image_fields(job, inline)

    def _touch(self, sha256):
        now = time.time()
        with self._lock:
            if sha256 in self._kept:
                self._kept[sha256] = (self._kept[sha256][0], now)
        try:
            os.utime(self.path(sha256), (now, now))  # the order survives a restart
        except OSError:
            pass

    def _evict(self):
        """Drop the least recently used pictures while the store is over its cap."""
        with self._lock:
            total = sum(size for size, _ in self._kept.values())
            if total <= self.max_bytes:
                return
            for sha, (size, _) in sorted(self._kept.items(), key=lambda item: item[1][1]):
                if total <= self.max_bytes:
                    break
                try:
                    os.unlink(self.path(sha))
                except OSError:
                    pass
                del self._kept[sha]
                total -= size
