"""Pictures sent once: a job's pictures named by their SHA-256 ("sha256:<hex>"), each sent with
PUT /pictures/<hex> only when the backend is not known to keep it, and the job sent again
after sending what the backend says it lacks (a restarted backend, a picture it dropped).

Blocking calls, like backend_client: the add-on runs them on a worker thread."""

import base64
import hashlib
import threading

from ..core.spec.job_spec import map_image_fields, picture_ref
from .backend_client import BackendError

_senders = {}  # backend URL -> PictureSender: what each backend keeps outlives one job
_lock = threading.Lock()


def sender_for(url):
    """The PictureSender of the backend at `url` (one per process and URL)."""
    with _lock:
        return _senders.setdefault(url.rstrip("/"), PictureSender())


def by_hash(spec):
    """(a validated `spec` with every picture as sha256:<hex>, {sha256: PNG bytes})."""
    pngs = {}

    def swap(field, value):
        if picture_ref(value):
            return value
        png = base64.b64decode(value)
        sha = hashlib.sha256(png).hexdigest()
        pngs[sha] = png
        return f"sha256:{sha}"
    return map_image_fields(spec, swap), pngs


class PictureSender:
    """The pictures one backend keeps, as far as this process knows, and every upload made."""

    def __init__(self):
        self.known = set()
        self.uploads = []  # [(sha256, bytes sent)] in order: what went over the wire (tests, benchmarks)
        self._lock = threading.Lock()

    def submit(self, client, spec):
        """Submit `spec` with its pictures by hash, sending first those the backend lacks;
        returns (job id, {"pictures": in the spec, "uploaded": sent now, "bytes": their size})."""
        spec, pngs = by_hash(spec)
        with self._lock:
            unknown = {sha: png for sha, png in pngs.items() if sha not in self.known}
        stats = {"pictures": len(pngs), "uploaded": 0, "bytes": 0}
        self._send(client, unknown, stats)
        try:
            return client.submit(spec), stats
        except BackendError as exc:
            missing = set(exc.details.get("missing", ())) & set(pngs) if exc.type == "missing_pictures" else set()
            if not missing:
                raise
        with self._lock:
            self.known -= missing
        self._send(client, {sha: pngs[sha] for sha in missing}, stats)
        return client.submit(spec), stats

    def ensure(self, client, pngs):
        """Send those of `pngs` ({sha256: PNG bytes}: pictures a job names by SHA-256, an
        animation segment's) that the backend does not keep, asking it about the ones this
        process has not sent it; returns how many were sent."""
        with self._lock:
            unknown = {sha: png for sha, png in pngs.items() if sha not in self.known}
        absent = {}
        for sha, png in unknown.items():
            if client.has_picture(sha):
                with self._lock:
                    self.known.add(sha)
            else:
                absent[sha] = png
        stats = {"uploaded": 0, "bytes": 0}
        self._send(client, absent, stats)
        return stats["uploaded"]

    def _send(self, client, pngs, stats):
        for sha, png in pngs.items():
            client.put_picture(sha, png)
            with self._lock:
                self.known.add(sha)
                self.uploads.append((sha, len(png)))
            stats["uploaded"] += 1
            stats["bytes"] += len(png)
