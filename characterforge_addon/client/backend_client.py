"""The backend's HTTP API with urllib alone (Blender's Python has no requests or httpx).

Blocking calls: the add-on runs them on a worker thread, never on Blender's main thread.
"""

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request

from ..core.errors import UserError

TOKEN_HEADER = "X-CharacterForge-Token"
FINISHED = ("completed", "failed", "canceled")


class BackendError(UserError):
    """An answer (or no answer) from the backend, in words a user can act on."""

    def __init__(self, message, type_="error", fix="", status=None, details=None):
        self.type, self.fix, self.status = type_, fix, status
        self.details = details or {}  # the answer's details (a missing picture's hashes, say)
        super().__init__(message + (f" — {fix}" if fix else ""))


class BackendClient:
    def __init__(self, url, token, timeout=30.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(self, method, path, body=None, raw=False):
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={TOKEN_HEADER: self.token, "Content-Type": "application/json"})
        payload = self._send(request)
        return payload if raw else json.loads(payload or b"{}")

    def _send(self, request, timeout=None):
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read() or b"{}")
            except ValueError:
                detail = {}
            raise BackendError(detail.get("message") or f"HTTP {exc.code} from the backend",
                               detail.get("type", "http_error"), detail.get("fix", ""), exc.code,
                               detail.get("details") if isinstance(detail.get("details"), dict) else None) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackendError(f"cannot reach the backend at {self.url} ({reason})", "unreachable",
                               "start it from the Backend panel, or check the URL and port in the preferences") from None

    def health(self):
        return self._request("GET", "/health")

    def models(self, profile=None):
        """The doctor's report on `profile` (default: the backend's), with its identity."""
        return self._request("GET", "/models" + (f"?profile={urllib.parse.quote(profile)}" if profile else ""))

    def submit(self, spec):
        return self._request("POST", "/jobs", spec)["id"]

    def status(self, job_id):
        return self._request("GET", f"/jobs/{job_id}")

    def cancel(self, job_id):
        return self._request("POST", f"/jobs/{job_id}/cancel", {})

    def result(self, job_id, name):
        return self._request("GET", f"/jobs/{job_id}/results/{name}", raw=True)

    def ensure_lora(self, sha256, path):
        """Send the LoRA file `path` unless the backend holds it already; True when it was sent."""
        try:
            self._request("GET", f"/loras/{sha256}")
            return False
        except BackendError as exc:
            if exc.status != 404:
                raise
        size = os.path.getsize(path)
        with open(path, "rb") as f:  # streamed from the file, not read into memory
            request = urllib.request.Request(f"{self.url}/loras/{sha256}", data=f, method="PUT",
                                             headers={TOKEN_HEADER: self.token, "Content-Length": str(size),
                                                      "Content-Type": "application/octet-stream"})
            self._send(request, timeout=max(self.timeout, size / 2**20))  # at least 1 MB/s
        return True

    def has_picture(self, sha256):
        """Whether the backend keeps the picture with this SHA-256 (jobs may name it by hash)."""
        try:
            self._request("GET", f"/pictures/{sha256}")
            return True
        except BackendError as exc:
            if exc.status != 404:
                raise
            return False

    def put_picture(self, sha256, png):
        """Send PNG bytes for the backend to keep under their SHA-256; True when it had not
        kept them before."""
        request = urllib.request.Request(f"{self.url}/pictures/{sha256}", data=png, method="PUT",
                                         headers={TOKEN_HEADER: self.token, "Content-Type": "image/png"})
        return json.loads(self._send(request) or b"{}").get("kept") == "now"

    def preview(self, job_id):
        """PNG bytes of the running job's latest preview, or None when it has none."""
        try:
            return self._request("GET", f"/jobs/{job_id}/preview", raw=True)
        except BackendError as exc:
            if exc.status == 404:
                return None
            raise
