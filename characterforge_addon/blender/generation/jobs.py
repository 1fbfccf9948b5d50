"""Generation jobs from Blender: a worker thread talks to the backend, the main thread (a
bpy.app.timers callback) applies what it reports. Blender never blocks; Blender data is
touched on the main thread only."""

import os
import queue
import threading
import time

import bpy

from ...client import pictures
from ...client.backend_client import BackendClient, BackendError, FINISHED
from ...core.errors import UserError
from ...core.image_io import write_atomic
from .. import preferences
from ..backend import backend_process
from ..maps import controls
from . import job_inputs

POLL_S = 0.25
PREVIEW_IMAGE = "CF preview"
_messages = queue.Queue()
_jobs = {}  # local key -> Job


class Job:
    """One generation: spec out, results back. Its thread only reads and writes files and HTTP."""

    def __init__(self, key, spec, out_dir, place, loras=None, media=None):
        self.key, self.spec, self.out_dir = key, spec, out_dir
        self.loras = loras or {}  # {sha256: file} of the LoRAs the spec names, sent if the backend lacks them
        self.media = media or {}  # {sha256: PNG bytes} of the pictures the spec names (an animation's frames)
        self.place = place  # main thread, when done: place(scene, files, job_id) -> message for the panel
        self.job_id = None
        self.cancel_requested = threading.Event()
        self.thread = None

    def run(self, connect):
        try:
            client = connect(self)
            for sha, path in self.loras.items():
                if client.ensure_lora(sha, path):
                    _messages.put((self.key, "progress", {"status": "starting", "stage": "LoRA sent to the backend"}))
            if self.media:
                _messages.put((self.key, "progress", {"status": "starting",
                                                      "stage": f"sending {len(self.media)} pictures"}))
            sent = pictures.sender_for(client.url).ensure(client, self.media)
            if sent:
                _messages.put((self.key, "progress", {"status": "starting", "stage": f"{sent} pictures sent"}))
            self.job_id = client.submit(self.spec)
            _messages.put((self.key, "submitted", {"job_id": self.job_id}))
            canceled_sent = False
            shown = None
            while True:
                if self.cancel_requested.is_set() and not canceled_sent:
                    client.cancel(self.job_id)
                    canceled_sent = True
                status = client.status(self.job_id)
                _messages.put((self.key, "progress", status))
                if status["status"] in FINISHED:
                    break
                if status["status"] == "running" and (status["stage"], status["step"]) != shown:
                    shown = (status["stage"], status["step"])
                    self._fetch_preview(client)
                time.sleep(POLL_S)
            if status["status"] == "completed":
                files = []
                os.makedirs(self.out_dir, exist_ok=True)
                for name in status["results"]:  # PNGs, a training's .safetensors, a detected pose's .json
                    kept = name.endswith((".safetensors", ".json"))  # named with their own extension
                    path = os.path.join(self.out_dir, name if kept else f"{name}.png")
                    with open(path, "wb") as f:
                        f.write(client.result(self.job_id, name))
                    files.append(path)
                _messages.put((self.key, "completed", {"files": files, "job_id": self.job_id}))
            elif status["status"] == "canceled":
                _messages.put((self.key, "canceled", {}))
            else:
                error = status.get("error") or {}
                _messages.put((self.key, "failed", {"message": error.get("message", "the job failed")}))
        except BackendError as exc:
            _messages.put((self.key, "failed", {"message": str(exc)}))
        except OSError as exc:
            _messages.put((self.key, "failed", {"message": f"cannot save the result: {exc.strerror or exc}"}))


    def _fetch_preview(self, client):
        """The backend's latest preview into <results>/.preview.png, for the main thread to show."""
        png = client.preview(self.job_id)
        if png:
            os.makedirs(self.out_dir, exist_ok=True)
            path = os.path.join(self.out_dir, ".preview.png")
            write_atomic(path, png)
            _messages.put((self.key, "preview", {"path": path}))


def _connector(prefs):
    """How the worker thread reaches the backend, from the preferences (read on the main thread)."""
    if prefs.mode == "CONNECT":
        url, token = prefs.url, prefs.token
        return lambda job: BackendClient(url, token)
    python, port = preferences.backend_python(prefs), prefs.port
    data, profile, auto = preferences.data_dir(prefs), prefs.profile, prefs.auto_start
    options = preferences.serve_options(prefs)
    url = f"http://127.0.0.1:{port}"

    def connect(job):
        if not backend_process.is_running():
            if not auto:
                raise BackendError("the backend is not running", "unreachable", "press Start in the Backend panel")
            backend_process.start(python, port, data, profile, options)
        return backend_process.wait_ready(url, data, cancelled=job.cancel_requested.is_set)
    return connect


def start(context, spec, out_dir, place, media=None):
    key = f"job{len(_jobs) + 1}-{int(time.time() * 1000)}"
    job = Job(key, spec, out_dir, place, job_inputs.lora_files(context.scene, spec), media)
    _jobs[key] = job
    status = context.scene.characterforge
    status.job_key, status.job_state, status.job_message, status.job_progress = key, "starting", "Starting…", 0.0
    job.thread = threading.Thread(target=job.run, args=(_connector(preferences.get(context)),),
                                  name=f"characterforge-{key}", daemon=True)
    job.thread.start()
    if not bpy.app.timers.is_registered(drain):
        bpy.app.timers.register(drain, first_interval=POLL_S)
    return job


def cancel(key):
    job = _jobs.get(key)
    if job is not None:
        job.cancel_requested.set()
    return job is not None


def active():
    return [j for j in _jobs.values() if j.thread and j.thread.is_alive()]


def drain():
    """Main thread: apply worker messages to the scene; keeps running while jobs are alive."""
    scene = bpy.context.scene
    status = scene.characterforge
    while True:
        try:
            key, kind, data = _messages.get_nowait()
        except queue.Empty:
            break
        job = _jobs.get(key)
        if job is None:
            continue
        if kind == "progress":
            total = max(data.get("total") or 0, 1)
            status.job_progress = (data.get("step") or 0) / total
            eta = f", about {data['eta_s']:.0f} s left" if data.get("eta_s") else ""
            status.job_state = data["status"]
            status.job_message = f"{data.get('stage') or data['status']} {data.get('step', 0)}/{data.get('total', 0)}{eta}"
        elif kind == "preview":
            controls.show_image(PREVIEW_IMAGE, data["path"])
        elif kind == "completed":
            status.job_state, status.job_progress = "completed", 1.0
            try:
                status.job_message = job.place(scene, data["files"], data["job_id"])
            except UserError as exc:  # the images are saved; say why they are not in the scene
                status.job_state, status.job_message = "failed", str(exc)
            _jobs.pop(key, None)
        elif kind in ("failed", "canceled"):
            status.job_state = kind
            status.job_message = data.get("message", "Canceled")
            _jobs.pop(key, None)
        for area in getattr(bpy.context.screen, "areas", []):
            area.tag_redraw()
    return POLL_S if active() or not _messages.empty() else None


def wait_all(timeout=600.0):
    """Headless scripts and tests: run the main-thread side until every job has ended."""
    deadline = time.monotonic() + timeout
    while (active() or not _messages.empty()) and time.monotonic() < deadline:
        time.sleep(POLL_S)
        drain()
    drain()


def shutdown():
    for job in list(_jobs.values()):
        job.cancel_requested.set()
    if bpy.app.timers.is_registered(drain):
        bpy.app.timers.unregister(drain)
