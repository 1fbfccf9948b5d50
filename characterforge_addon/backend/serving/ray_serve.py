"""Scale-out on Ray: jobs run on engine replicas of a Ray Serve application, one job at a time
per replica, each warm on its own GPU (`num_gpus` places them; Serve restarts a lost one and
scales between bounds). The HTTP ingress stays this process's own `serve` app (the same API,
token and guards), and so does the job index: replicas stream a job's progress, previews and
result files back to it, so results need no shared disk, and a job whose replica is lost runs
again on another (it completes once: only the ingress records results and completion).

Replicas read LoRA files and write training checkpoints in the data folder by the same path: on
other machines mount it at that path (a shared folder), or a LoRA job fails there and a lost
training starts again from zero.
"""

import functools
import os
import queue
import threading
import time
import traceback

import ray
from ray import serve

from ...core.errors import UserError
from ..engine.pipelines import Canceled
from .worker import _Progress, Executor, JobFailed, JobLost, JobRunner

APP = "characterforge-replicas"
NAMESPACE = "characterforge"
BOARD = "characterforge-cancel-board"
POLL_S = 0.5  # how often a replica asks whether its job was canceled


@ray.remote(num_cpus=0)
class CancelBoard:
    """Which running jobs the user canceled (a replica runs one request at a time, so a cancel
    cannot be a second request to it)."""

    def __init__(self):
        self._canceled = set()

    def cancel(self, job_id):
        self._canceled.add(job_id)

    def canceled(self, job_id):
        return job_id in self._canceled

    def forget(self, job_id):
        self._canceled.discard(job_id)


class _Events:
    """A replica's side of a job's progress: what `_Progress` writes to the job index and the
    preview table becomes events in a queue, which the stream yields."""

    def __init__(self):
        self.queue = queue.Queue()
        self.speed = {}

    def progress(self, job_id, step, total, stage=""):
        self.queue.put(("progress", step, total, stage, self.speed.get(job_id)))

    def __setitem__(self, job_id, png):
        self.queue.put(("preview", png))


@serve.deployment(max_ongoing_requests=1)
class EngineReplica:
    """One engine, warm, on the GPU Ray gave this replica."""

    def __init__(self, data_dir, memory, allow_download, weights, without, also):
        from ..engine import speedups
        from .server import Engines
        engines = Engines(data_dir, memory, allow_download, weights, speedups.chosen(without, also))
        self.executor = Executor(engines, engines.loras, os.path.join(data_dir, "training"))
        self.board = ray.get_actor(BOARD, namespace=NAMESPACE)
        self.engines = engines

    def identity(self, profile):
        """The profile's identity as this replica runs it (backend.model_identity): what
        `batch.py --ray` keeps in its units' fingerprints."""
        from ..models.model_identity import identity
        return identity(profile, self.engines.profile_dirs, self.engines.models_dir, self.engines.weights)

    def run(self, job):
        """A job's events as they happen: ("progress", step, total, stage, s/step), ("preview",
        png), ("result", name, bytes), then ("done",), ("canceled",) or ("failed", error)."""
        events, cancel = _Events(), threading.Event()
        progress = _Progress(events, job["id"], events.speed, events)

        def work():
            try:
                self.executor.run(job, progress, cancel, lambda name, data: events.queue.put(("result", name, data)))
                events.queue.put(("done",))
            except Canceled:
                events.queue.put(("canceled",))
            except UserError as exc:
                events.queue.put(("failed", {"type": type(exc).__name__, "message": str(exc),
                                             "fix": getattr(exc, "fix", "")}))
            except Exception as exc:  # a bug or a library failure: its traceback for the report
                events.queue.put(("failed", {"type": type(exc).__name__, "message": str(exc) or repr(exc),
                                             "traceback": traceback.format_exc(limit=8)}))

        threading.Thread(target=work, name=f"job-{job['id']}", daemon=True).start()
        asked = time.monotonic()
        while True:
            try:
                event = events.queue.get(timeout=POLL_S)
            except queue.Empty:
                event = None
            if not cancel.is_set() and time.monotonic() - asked >= POLL_S:  # not at every step: a call each
                asked = time.monotonic()
                if ray.get(self.board.canceled.remote(job["id"])):
                    cancel.set()
            if event is not None:
                yield event
                if event[0] in ("done", "canceled", "failed"):
                    return


class RayJobRunner(JobRunner):
    """The ingress's queue: one worker thread per replica, each streaming its job from whichever
    replica Serve picks."""

    def __init__(self, store, engine_for, max_pending=32, loras=None, training_dir=None, handle=None, board=None,
                 workers=1):
        super().__init__(store, engine_for, max_pending, loras, training_dir, workers)
        self.handle, self.board = handle, board

    def cancel(self, job_id):
        canceled = super().cancel(job_id)
        if canceled:
            self.board.cancel.remote(job_id)
        return canceled

    def _execute(self, job, progress, event, emit):
        job_id = job["id"]
        if job["spec"]["kind"] == "animation":  # its pictures go along: the replica may be on another machine
            job = dict(job, pictures=self.executor.engine_for.pictures.inline_named(job["spec"]))
        stream = self.handle.options(stream=True).run.remote(job)
        try:
            for kind, *data in stream:
                if kind == "progress":
                    step, total, stage, per_step = data
                    if per_step:
                        self._speed[job_id] = per_step
                    self.store.progress(job_id, step, total, stage)
                elif kind == "preview":
                    self.previews[job_id] = data[0]
                elif kind == "result":
                    emit(*data)
                elif kind == "canceled":
                    raise Canceled()
                elif kind == "failed":
                    raise JobFailed(data[0])
                elif kind == "done":
                    return
        except ray.exceptions.RayTaskError as exc:  # the replica's own code raised: a bug, reported
            raise JobFailed({"type": "RayTaskError", "message": str(exc).splitlines()[0],
                             "traceback": str(exc)[-4000:]}) from None
        except (ray.exceptions.RayError, serve.exceptions.RayServeException) as exc:  # a replica or machine lost
            raise JobLost(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
        finally:
            self.board.forget.remote(job_id)
        raise JobLost("the replica's stream ended without an answer")


def serve_ray(host, port, data_dir, profile="sdxl", memory="auto", allow_download=False, token=None,
              weights="native", without=(), replicas=1, autoscale=None, gpus_per_replica=1.0, address=None,
              local_gpus=None, cpus_per_replica=1.0, also=()):
    """Start (or join, `address`) a Ray cluster, deploy the engine replicas (`replicas`, or
    `autoscale` = (min, max)), and serve the usual API in front of them."""
    from . import server
    data_dir = os.path.abspath(os.path.expanduser(data_dir))
    local = {} if address else {"num_gpus": local_gpus}
    context = ray.init(address=address, namespace=NAMESPACE, include_dashboard=False,
                       runtime_env={"env_vars": {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}}, **local)
    print(f"Ray cluster at {context.address_info['gcs_address']} (GPU machines join it with `ray start --address` "
          "and the cluster's token)", flush=True)
    try:
        serve.start(proxy_location="Disabled")  # our ingress is the only HTTP entry point
        board = CancelBoard.options(name=BOARD, namespace=NAMESPACE, get_if_exists=True).remote()
        options = {"ray_actor_options": {"num_gpus": gpus_per_replica, "num_cpus": cpus_per_replica}}
        if autoscale:
            low, high = autoscale
            options["autoscaling_config"] = {"min_replicas": low, "max_replicas": high, "target_ongoing_requests": 1}
            workers = high
        else:
            options["num_replicas"] = workers = replicas
        handle = serve.run(EngineReplica.options(**options).bind(data_dir, memory, allow_download, weights,
                                                                 tuple(without), tuple(also)), name=APP, route_prefix=None)
        runner = functools.partial(RayJobRunner, handle=handle, board=board, workers=workers)
        print(f"Ray Serve: {workers if not autoscale else f'{autoscale[0]}-{autoscale[1]}'} engine replica(s), "
              f"{gpus_per_replica} GPU each", flush=True)
        server.serve(host, port, data_dir, profile, memory, allow_download, token, weights=weights, without=without,
                     runner=runner, also=also)
    finally:
        if address:  # a cluster that goes on: our replicas leave it
            serve.delete(APP)
        ray.shutdown()  # a cluster started here stops with every process it started
