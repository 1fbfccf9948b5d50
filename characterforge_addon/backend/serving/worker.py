"""Runs queued jobs on background threads (one here: one GPU, one job; one per replica on Ray),
each with its own cancel event; progress and results go to the store."""

import base64
import os
import queue
import socket
import threading
import time
import traceback

from ...core.errors import UserError
from ..engine import metadata
from ..engine.pipelines import Canceled
from ..engine.pictures import decode_image_bytes
from ..jobs import (animation, background, expression, face_pass, pose_detection, posed, relight, scoring, sheet,
                   shot, training)
from ..models.models import ModelMissing

SAMPLER = "Euler"
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # which process made an output (one of several on Ray)


class JobLost(Exception):
    """The worker running a job was lost (a machine or replica gone): the job runs again."""


class JobFailed(Exception):
    """A job failed where it ran (another process): `error` is its record ({type, message, fix or
    traceback}), kept as it is."""

    def __init__(self, error):
        super().__init__(error.get("message", ""))
        self.error = error


class Executor:
    """Runs one job on this process's engines, its results handed to `emit(name, bytes)` as they
    are made. The local runner and every Ray replica use it."""

    def __init__(self, engine_for, loras=None, training_dir=None, stopping=lambda: False):
        self.engine_for = engine_for  # profile name -> Engine (loaded lazily, cached)
        self.loras = loras  # the LoRA store trainings put their LoRAs in
        self.training_dir = training_dir  # trainings' checkpoints, one folder per job while it runs
        self.stopping = stopping  # whether the process stops (a training then checkpoints)
        self._pose = None  # the pose detector, looked for on the first job that wants it
        self._detectors = {}  # Pose from Picture's detectors, loaded at its first job

    def run(self, job, progress, event, emit):
        job_id, spec = job["id"], job["spec"]
        engine = self.engine_for(spec["profile"])
        if spec["kind"] == "train_lora":
            training.run(engine, spec, job_id, progress, event, self.stopping, self.training_dir, self.loras, emit)
            return
        if spec["kind"] == "detect_pose":
            picture = decode_image_bytes(base64.b64decode(spec["image"]), "image")
            pose_detection.run(engine.profile, spec, picture, progress, self._detectors, emit)
            return
        if spec["kind"] == "animation":
            for data in job.get("pictures", {}).values():  # a replica elsewhere is given the job's pictures
                self.engine_for.pictures.put(data)
            animation.run(engine, spec, progress, event, emit, self.engine_for.pictures,
                          {"job_id": job_id, "worker": WORKER})
            return
        progress.stage("loading models")
        pngs = {name: base64.b64decode(c["image"]) for name, c in spec["controls"].items()}
        pngs["identity"] = [base64.b64decode(i) for i in spec.get("identity", {}).get("images", [])]
        if spec["kind"] == "background":
            outputs = background.run(engine, spec, pngs, progress, event)
        elif spec["kind"] == "character_sheet":
            outputs = sheet.run(engine, spec, pngs, progress, event,
                                *self._face_tools(engine, spec["subject"] == "humanoid"))
        elif spec["kind"] == "shot":
            engine.base()
            faces, _ = self._face_tools(engine, any("identity" in c for c in spec["characters"]) or "relight" in spec)
            outputs = shot.run(engine, spec, pngs, progress, event, faces, self._pose_detector(spec))
            if "relight" in spec:  # the composite relit by the scene's lights, the unlit one kept
                outputs = relight.after_shot(engine, spec, pngs, outputs, progress, event, faces)
        elif spec["kind"] == "relight":
            engine.base()
            faces, _ = self._face_tools(engine, True)  # identity is checked before and after
            outputs = relight.run(engine, spec, pngs, progress, event, faces, self._pose_detector(spec))
        elif spec["kind"] == "expression":
            engine.base()
            faces, _ = self._face_tools(engine, spec["detector"] == "auto" or "identity" in spec)
            outputs = expression.run(engine, spec, progress, event, faces)
        else:
            engine.base()  # loading shows as its own stage, before the steps count
            faces, _ = self._face_tools(engine, "identity" in spec)
            refine = (None, None)
            if engine.profile.face_refine and "identity" in spec and not spec["draft"]:  # drafts stay quick
                refine = face_pass.refiner(self.engine_for, engine.profile)
                if refine[0] is not None and faces is None:  # the refine profile's face tools score
                    faces, _ = self._face_tools(refine[0], True)
            outputs = posed.run(engine, spec, pngs, progress, event, faces, self._pose_detector(spec), refine)
        progress.stage("saving")
        ran, sampler = engine.as_run(spec, SAMPLER)  # the PNG says what ran (a draft's own settings)
        for name, pixels, record in outputs:
            emit(name, metadata.png_with_metadata(
                pixels, ran, record.get("seed", spec["seed"]), engine.profile, sampler,
                {"job_id": job_id, "memory_mode": engine.memory, "weights": engine.weights,
                 "speedups": sorted(engine.speedups), "stage_seconds": progress.timings, "device": engine.device,
                 "dtype": str(engine.dtype), "identity_adapters": engine.adapters.names(), "worker": WORKER,
                 **record}))

    @staticmethod
    def _face_tools(engine, wanted):
        """(the profile's face tools or None, why not)."""
        if not wanted:
            return None, "not needed"
        try:
            tools = engine.face_tools()
        except ModelMissing as exc:
            return None, f"insightface unavailable: {exc}"
        return tools, None if tools else f"profile {engine.profile.name} has no insightface role"

    def _pose_detector(self, spec):
        if spec.get("keypoints") and self._pose is None:
            self._pose = scoring.PoseDetector()
        return self._pose


class JobRunner:
    """The queue's workers: `workers` threads, each running one job at a time with its own cancel
    event (one here: one GPU, one job), progress and results into the store."""

    MAX_ATTEMPTS = 3  # a job whose worker is lost this often fails instead of running again

    def __init__(self, store, engine_for, max_pending=32, loras=None, training_dir=None, workers=1):
        self.store = store
        self.executor = Executor(engine_for, loras, training_dir, lambda: self._stopping)
        self.max_pending = max_pending
        self._queue = queue.Queue()
        self._cancel = {}
        self._lock = threading.Lock()
        self._speed = {}  # job id -> seconds per step so far
        self.previews = {}  # job id -> PNG of the latest preview, while it runs
        self.workers = workers  # jobs run at once (a client may keep this many in flight)
        self._threads = [threading.Thread(target=self._loop, name=f"characterforge-jobs-{i}", daemon=True)
                         for i in range(workers)]
        self._stopping = False

    def start(self):
        for job_id in self.store.recover():
            self._queue.put(job_id)
        for thread in self._threads:
            thread.start()

    def running(self):
        """Whether its worker threads were started (and not stopped)."""
        return any(t.is_alive() for t in self._threads)

    def stop(self):
        self._stopping = True
        for event in list(self._cancel.values()):
            event.set()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=30)

    def submit(self, spec):
        job_id = self.store.add(spec)
        self._queue.put(job_id)
        return job_id

    def queue_full(self):
        return self.store.count("pending") >= self.max_pending

    def cancel(self, job_id):
        """Cancel a pending job at once, a running one within one denoising step."""
        if self.store.cancel_pending(job_id):
            return True
        with self._lock:
            event = self._cancel.get(job_id)
        if event is not None:
            event.set()
            return True
        return False

    def retry_after(self):
        """Seconds after which a full queue may take a job again: the running jobs' least time
        left (at least 1 s), or a few seconds before their speed is known."""
        running = [self.eta(j) for j in map(self.store.get, list(self._cancel)) if j]
        known = [t for t in running if t is not None]
        return max(1, round(min(known))) if known else 5

    def eta(self, job):
        if job["status"] != "running" or not job["step"]:
            return None
        per_step = self._speed.get(job["id"])
        return None if per_step is None else round(per_step * (job["total"] - job["step"]), 2)

    # -- the loop --------------------------------------------------------------------------

    def _loop(self):
        while not self._stopping:
            job_id = self._queue.get()
            if job_id is None:
                break
            job = self.store.get(job_id)
            if job is None or job["status"] != "pending":
                continue  # canceled while waiting
            self._run(job)

    def _execute(self, job, progress, event, emit):
        """Run `job` (here: on this process's engines)."""
        self.executor.run(job, progress, event, emit)

    def _run(self, job):
        job_id, spec = job["id"], job["spec"]
        event = threading.Event()
        with self._lock:
            self._cancel[job_id] = event
        self.store.start(job_id, spec.get("steps", 0))
        progress = _Progress(self.store, job_id, self._speed, self.previews)
        try:
            self._execute(job, progress, event, lambda name, data: self._save(job_id, name, data))
            self.store.finish(job_id, "completed")
        except training.Stopped:
            pass  # still "running" in the index: the next start queues it again, and it resumes
        except JobLost as exc:
            if job["attempts"] + 1 >= self.MAX_ATTEMPTS:
                self.store.finish(job_id, "failed", {"type": "JobLost", "message": f"the worker running it was lost "
                                                     f"{self.MAX_ATTEMPTS} times (last: {exc})",
                                                     "fix": "check the cluster's machines and send the job again"})
            else:
                self.store.requeue(job_id)
                self._queue.put(job_id)
        except Canceled:
            self.store.finish(job_id, "canceled")
        except JobFailed as exc:
            self.store.finish(job_id, "failed", exc.error)
        except UserError as exc:
            self.store.finish(job_id, "failed", {"type": type(exc).__name__, "message": str(exc),
                                                  "fix": getattr(exc, "fix", "")})
        except Exception as exc:  # a bug or a library failure: keep the traceback for the report
            self.store.finish(job_id, "failed", {"type": type(exc).__name__, "message": str(exc) or repr(exc),
                                                  "traceback": traceback.format_exc(limit=8)})
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)
            self._speed.pop(job_id, None)
            self.previews.pop(job_id, None)

    def _save(self, job_id, name, data):
        try:
            self.store.add_result(job_id, name, data)
        except OSError as exc:  # disk full, quota, permissions: the file was never half written
            raise UserError(f"could not save result {name!r} in {self.store.results_dir} "
                            f"({exc.strerror or exc}): free disk space there (or fix its permissions) "
                            "and run the job again") from None


class _Progress:
    """A job's stage and step in the store, and its speed for the ETA."""

    def __init__(self, store, job_id, speed, previews):
        self.store, self.job_id, self.speed, self.previews = store, job_id, speed, previews
        self.name, self.done, self.total = "", 0, 0
        self._next_preview = 0.0
        self.timings = []  # [stage, seconds] in order: every output's record says where the time went
        self._stage_started = time.monotonic()

        def step(step, total, elapsed, detail=""):
            self.speed[self.job_id] = elapsed / step
            self.done, self.total = step, total
            stage = self.name or "denoising"
            self.store.progress(self.job_id, step, total, f"{stage}: {detail}" if detail else stage)

        step.preview = self.preview  # the engine looks for it: a step callback that keeps previews
        self.step = step

    def preview(self, make):
        """Keep a preview (`make()`: PNG bytes or None), made at most twice a second and with at
        most 2 % of the time: a TAESD decode costs milliseconds on a GPU, half a second on a CPU."""
        now = time.monotonic()
        if now >= self._next_preview:
            png = make()
            self._next_preview = now + max(0.5, 50 * (time.monotonic() - now))
            if png is not None:
                self.previews[self.job_id] = png

    def show(self, png):
        """A picture as the job's preview now (a training's sample)."""
        self.previews[self.job_id] = png

    def stage(self, name):
        """A new stage (the last one's time recorded); the step count stays until the stage's
        first step reports."""
        now = time.monotonic()
        if self.name:
            self.timings.append([self.name, round(now - self._stage_started, 3)])
        self.name, self._stage_started = name, now
        self.store.progress(self.job_id, self.done, self.total, name)


