"""Start the backend: data folder, token, job store, engines, HTTP server."""

import base64
import ipaddress
import os
import secrets
import socket
import sys
import tempfile
import threading

from filelock import FileLock, Timeout

from ...core.errors import UserError
from ...core.spec.job_spec import needs
from ...core.spec.spec_fields import JobSpecError
from ..engine import device, speedups
from ..engine.pictures import picture_size
from ..engine.pipelines import Engine
from ..families import family_of, refuse_unless_able
from ..jobs import animation, pose_detection, relight, training
from ..models import model_identity, models, profiles
from ..models.lora_files import LoraStore
from .app import create_app
from .picture_store import PictureStore
from .store import JobStore
from .worker import JobRunner


def is_loopback(host):
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def load_or_make_token(data_dir, token=None):
    """The token: given explicitly, or kept in <data>/token readable by the user alone."""
    path = os.path.join(data_dir, "token")
    if token:
        return token, None
    if os.path.isfile(path):
        with open(path) as f:
            existing = f.read().strip()
        if existing:
            os.chmod(path, 0o600)
            return existing, path
    token = secrets.token_urlsafe(32)
    write_token(path, token)
    return token, path


def write_token(path, token):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)


def check_writable(data_dir):
    """A clear refusal for a data folder this process cannot write (read-only disk, permissions)."""
    try:
        os.makedirs(data_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        raise UserError(f"the data folder {data_dir} cannot be written ({exc.strerror or exc}): give the backend a "
                        "folder it may write (--data DIR, or the add-on's preferences) or fix its permissions") from None


def claim(data_dir):
    """Hold <data>/backend.lock for the life of this process: two backends on one data folder
    would run the same jobs twice and write the same index. The OS frees it if we die."""
    lock = FileLock(os.path.join(data_dir, "backend.lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UserError(f"another CharacterForge backend is already using the data folder {data_dir}: use that one, stop it first, or start this one "
                        "with another --data folder") from None
    return lock


class TokenKeeper(threading.Thread):
    """Writes the token file again if it is deleted while the server runs (the add-on reads it
    to talk to us; the server keeps the token it started with)."""

    def __init__(self, path, token, every_s=1.0):
        super().__init__(name="characterforge-token", daemon=True)
        self.path, self.token, self.every_s = path, token, every_s
        self.stopped = threading.Event()

    def run(self):
        while not self.stopped.wait(self.every_s):
            try:
                with open(self.path) as f:
                    if f.read().strip() == self.token:
                        continue
            except OSError:
                pass
            try:
                write_token(self.path, self.token)
                print(f"token file {self.path} was missing or changed: written again", file=sys.stderr, flush=True)
            except OSError as exc:
                print(f"token file {self.path} is missing and cannot be written ({exc})", file=sys.stderr, flush=True)


class Engines:
    """Engines by profile name for the jobs of one process, loaded at the first job that names
    one; one at a time: a second profile's weights would double the memory."""

    def __init__(self, data_dir, memory="auto", allow_download=False, weights="native", speedups_on=None):
        self.profile_dirs = (os.path.join(data_dir, "profiles"),)
        self.models_dir = os.path.join(data_dir, "models")
        self.memory, self.allow_download, self.weights = memory, allow_download, weights
        self.speedups = speedups.chosen() if speedups_on is None else speedups_on
        if "compile" in self.speedups:  # compiled code kept with the data for the next start (torch reads it at use)
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(data_dir, "compile_cache")
        self.loras = LoraStore(data_dir)
        self.pictures = PictureStore(data_dir)  # pictures jobs name by hash (live mode, animation frames)
        self._engines = {}

    def __call__(self, name):
        if name not in self._engines:
            self._engines.clear()
            self._engines[name] = Engine(profiles.load_profile(name, self.profile_dirs), self.models_dir,
                                         self.memory, self.allow_download, weights=self.weights,
                                         speedups=self.speedups, lora_store=self.loras)
        return self._engines[name]


class Backend:
    """Everything one server process holds; `app` is the ASGI app. `runner`: what runs the jobs
    (JobRunner's signature; default: a JobRunner on this process's engines)."""

    def __init__(self, data_dir, profile_name="sdxl", memory="auto", allow_download=False, token=None,
                 max_pending=32, weights="native", without=(), runner=JobRunner, also=()):
        self.data_dir = os.path.abspath(os.path.expanduser(data_dir))
        check_writable(self.data_dir)
        self._claim = claim(self.data_dir)
        try:
            self._setup(profile_name, memory, allow_download, token, max_pending, weights, without, runner, also)
        except BaseException:
            self._claim.release()
            raise

    def _setup(self, profile_name, memory, allow_download, token, max_pending, weights, without, runner, also):
        self.models_dir = os.path.join(self.data_dir, "models")
        self.profile_dirs = (os.path.join(self.data_dir, "profiles"),)
        self.default_profile = profiles.load_profile(profile_name, self.profile_dirs).name
        self.memory, self.allow_download = memory, allow_download
        if weights != "native":  # refused at start where the device cannot hold them, not at the first job
            device.weight_storage(weights, device.choose(device.probe()))
        self.weights = weights
        self.speedups = speedups.chosen(without, also)
        self.token, self.token_path = load_or_make_token(self.data_dir, token)
        self._token_keeper = TokenKeeper(self.token_path, self.token) if self.token_path else None
        self.store = JobStore(self.data_dir)
        for notice in self.store.notices:
            print(f"notice: {notice}", file=sys.stderr, flush=True)
        self.engine_for = Engines(self.data_dir, memory, allow_download, weights, self.speedups)
        self.loras = self.engine_for.loras
        self.pictures = self.engine_for.pictures
        self.training_dir = os.path.join(self.data_dir, "training")
        self.runner = runner(self.store, self.engine_for, max_pending, self.loras, self.training_dir)
        self.app = create_app(self.store, self.runner, self.token, self.doctor, self.check_runnable, self.loras,
                              self.speedups, pictures=self.pictures)

    def check_runnable(self, job):
        """Before a job is queued: its profile exists, its family can do what the job asks, and
        (unless the backend may download) the models for that are on this machine."""
        try:
            profile = profiles.load_profile(job["profile"], self.profile_dirs)
        except UserError as exc:
            raise JobSpecError("profile", str(exc), "choose a profile the doctor lists") from None
        if job["kind"] == "detect_pose":  # the detector is no family's model: it is there or not
            try:
                pose_detection.check(profile)
            except UserError as exc:
                raise JobSpecError("profile", str(exc), "or import a pose file instead (Pose > Import Pose)") from None
            return
        wanted = needs(job)
        refuse_unless_able(profile, wanted, lambda: profiles.all_profiles(self.profile_dirs))
        family = family_of(profile)
        if job["kind"] == "train_lora":
            sizes = [picture_size(base64.b64decode(p["image"])) for p in job["images"]]
            training.check(job, profile, family, self.weights, self.training_dir, sizes)
        if job["kind"] == "animation":
            animation.check(job, profile, family, self.pictures)
        if job["kind"] == "relight" or job.get("relight"):
            relight.check(job)  # the pictures' sizes, a light reference with light in it
        identities = [("identity", job.get("identity"))] + [
            (f"characters[{i}].identity", c.get("identity")) for i, c in enumerate(job.get("characters", ()))]
        for field, identity in identities:
            if identity and "lora" in identity:
                self.loras.check(identity["lora"], profile, f"{field}.lora")
        if self.allow_download:
            return
        roles = {"base", "vae"} | {r for c in wanted for r in family.roles_for(c, profile.models)}
        for role in sorted(roles & set(profile.models), key=list(profile.models).index):
            try:
                models.check(profile.models[role], self.models_dir)
            except models.ModelMissing as exc:
                raise JobSpecError("profile", f"profile {profile.name} cannot run this job here: {exc}",
                                   exc.fix) from None

    def doctor(self, name=None):
        """The doctor's report on a profile, with its identity (backend.model_identity)."""
        name = name or self.default_profile
        report = models.doctor(profiles.load_profile(name, self.profile_dirs), self.models_dir)
        report["identity"] = model_identity.identity(name, self.profile_dirs, self.models_dir, self.weights)
        return report

    def start(self):
        self.runner.start()
        if self._token_keeper:
            self._token_keeper.start()

    def stop(self):
        self.runner.stop()
        self.store.close()
        if self._token_keeper:
            self._token_keeper.stopped.set()
        self._claim.release()


def serve(host, port, data_dir, profile="sdxl", memory="auto", allow_download=False, token=None, log_level="info",
          weights="native", without=(), runner=JobRunner, also=()):
    import uvicorn
    if not is_loopback(host) and not token:
        raise UserError(f"refusing to listen on {host}, which other machines can reach, without an explicit "
                        "--token: pass --token SECRET (and give it to the add-on), or use --host 127.0.0.1")
    backend = Backend(data_dir, profile, memory, allow_download, token, weights=weights, without=without,
                      runner=runner, also=also)
    backend.start()
    where = f"token file {backend.token_path}" if backend.token_path else "the --token given"
    print(f"CharacterForge backend on http://{host}:{port} (data {backend.data_dir}; {where})", flush=True)
    try:
        # no access log: the add-on polls job status several times a second
        uvicorn.run(backend.app, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        backend.stop()
