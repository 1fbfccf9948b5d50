"""Live mode's worker thread: it holds the newest request only (an older one not yet sent is
dropped), sends it with its pictures by hash (client.pictures: each uploaded only when the
backend lacks it), and cancels the job it runs as soon as a newer request or Live off comes
(the backend stops it within one step), so there is never more than one live job. Its reports
(with each stage's time) go into a queue the main thread drains. No Blender data here."""

import json
import os
import threading
import time
from dataclasses import dataclass, field

from ...client import pictures
from ...client.backend_client import BackendError, FINISHED
from ...core.image_io import read_png_text

POLL_S = 0.1  # status polls while a live job runs: a tenth of a second late at most, little CPU taken


@dataclass
class Request:
    """One live picture to make: the state of the scene at `generation`."""
    generation: int
    spec: dict
    out_dir: str
    loras: dict = field(default_factory=dict)  # {sha256: file} sent before the job if the backend lacks them
    made: float = field(default_factory=time.monotonic)  # when the main thread handed it over


class LiveWorker:
    """`connect(worker)` -> a BackendClient (starts the bundled backend if need be; it may look
    at `worker.cancel_requested`); `messages`: a queue of (kind, generation, data)."""

    def __init__(self, connect, messages):
        self.connect, self.messages = connect, messages
        self.cancel_requested = threading.Event()  # set when Live goes off: stops waiting for a backend
        self._changed = threading.Condition()
        self._wanted = None
        self._stopped = False
        self._loras_sent = set()
        self.thread = threading.Thread(target=self._loop, name="characterforge-live", daemon=True)
        self.thread.start()

    def want(self, request):
        """Make `request` next, in place of any older one not yet sent or still running."""
        with self._changed:
            if self._wanted is not None:  # never sent: the newer state replaces it
                self.messages.put(("dropped", self._wanted.generation, {}))
            self._wanted = request
            self._changed.notify_all()

    def stop(self):
        """Live off: the running job is canceled and the thread ends (no waiting here)."""
        with self._changed:
            self._stopped, self._wanted = True, None
            self._changed.notify_all()
        self.cancel_requested.set()

    def alive(self):
        return self.thread.is_alive()

    # -- the thread ------------------------------------------------------------------------

    def _next(self):
        with self._changed:
            self._changed.wait_for(lambda: self._wanted is not None or self._stopped)
            request, self._wanted = self._wanted, None
            return None if self._stopped else request

    def _superseded(self, wait_s=0.0):
        """Whether a newer request (or Live off) came, waiting up to `wait_s` for one."""
        with self._changed:
            return self._changed.wait_for(lambda: self._wanted is not None or self._stopped, timeout=wait_s)

    def _loop(self):
        client = None
        while True:
            request = self._next()
            if request is None:
                return
            try:
                if client is None:
                    client = self.connect(self)
                self._run(client, request)
            except BackendError as exc:
                if exc.type == "unreachable":
                    client = None  # started again, or reached again, for the next request
                self.messages.put(("failed", request.generation, {"message": str(exc), "type": exc.type,
                                                                  "status": exc.status}))
            except OSError as exc:
                self.messages.put(("failed", request.generation,
                                   {"message": f"cannot save the live picture: {exc.strerror or exc}", "type": "os",
                                    "status": None}))

    def _run(self, client, request):
        for sha, path in request.loras.items():
            if sha not in self._loras_sent:
                client.ensure_lora(sha, path)
                self._loras_sent.add(sha)
        job_id, sent = pictures.sender_for(client.url).submit(client, request.spec)
        submitted = time.monotonic()
        self.messages.put(("submitted", request.generation, {"job_id": job_id, "pictures": sent}))
        shown = None
        while True:
            if self._superseded():
                client.cancel(job_id)  # within one step; the newer request is sent at once
                self.messages.put(("canceled", request.generation, {"job_id": job_id}))
                return
            status = client.status(job_id)
            if status["status"] in FINISHED:
                break
            if (status["status"], status["step"]) != shown:
                shown = (status["status"], status["step"])
                self.messages.put(("progress", request.generation, status))
            if self._superseded(POLL_S):
                continue  # cancel at the top of the loop, without waiting out the poll
        seen = time.monotonic()
        if status["status"] != "completed":
            kind = "canceled" if status["status"] == "canceled" else "failed"
            error = status.get("error") or {}
            self.messages.put((kind, request.generation, {"job_id": job_id, "type": error.get("type", ""),
                                                          "message": error.get("message", "the live job failed"),
                                                          "status": None}))
            return
        os.makedirs(request.out_dir, exist_ok=True)
        files = []
        for name in status["results"]:
            path = os.path.join(request.out_dir, f"live_{request.generation}_{name}.png")
            with open(path, "wb") as f:
                f.write(client.result(job_id, name))
            files.append(path)
        done = time.monotonic()
        # the backend's own clock splits its part: waiting in its queue, then running the job, whose
        # stages its picture records (loading the models: a cold engine; denoising, with the decode)
        queued = max(0.0, (status["started"] or status["created"]) - status["created"])
        ran = max(0.0, (status["finished"] or status["started"]) - (status["started"] or status["created"]))
        stages = _stage_seconds(files[0]) if files else {}
        load, denoise = stages.get("loading models", 0.0), stages.get("denoising", ran)
        self.messages.put(("completed", request.generation, {
            "job_id": job_id, "files": files, "pictures": sent, "done": done,
            "seconds": {"upload": submitted - request.made, "queue": queued, "load": load, "denoise": denoise,
                        "finish": max(0.0, ran - load - denoise), "poll": max(0.0, seen - submitted - queued - ran),
                        "download": done - seen}}))


def _stage_seconds(path):
    """{stage: seconds} the backend recorded in a result PNG (its `characterforge` record)."""
    with open(path, "rb") as f:
        record = json.loads(read_png_text(f.read()).get("characterforge", "{}"))
    out = {}
    for stage, seconds in record.get("stage_seconds", ()):
        out[stage.split(":")[0]] = out.get(stage.split(":")[0], 0.0) + seconds
    return out
