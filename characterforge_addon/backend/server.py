"""Start the backend: data folder, token, job store, engines, HTTP server."""

import ipaddress
import os
import secrets
import socket

from ..core.errors import UserError
from . import models, profiles
from .app import create_app
from .pipelines import Engine
from .store import JobStore
from .worker import JobRunner


def default_data_dir():
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "characterforge")


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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token, path


class Backend:
    """Everything one server process holds; `app` is the ASGI app."""

    def __init__(self, data_dir, profile_name="sdxl", memory="auto", allow_download=False, token=None,
                 max_pending=32):
        self.data_dir = os.path.abspath(os.path.expanduser(data_dir))
        os.makedirs(self.data_dir, exist_ok=True)
        self.models_dir = os.path.join(self.data_dir, "models")
        self.profile_dirs = (os.path.join(self.data_dir, "profiles"),)
        self.default_profile = profiles.load_profile(profile_name, self.profile_dirs).name
        self.memory, self.allow_download = memory, allow_download
        self.token, self.token_path = load_or_make_token(self.data_dir, token)
        self.store = JobStore(self.data_dir)
        self._engines = {}
        self.runner = JobRunner(self.store, self.engine_for, max_pending)
        self.app = create_app(self.store, self.runner, self.token, self.doctor)

    def engine_for(self, name):
        if name not in self._engines:
            # one engine at a time: a second profile's weights would double the memory
            self._engines.clear()
            self._engines[name] = Engine(profiles.load_profile(name, self.profile_dirs), self.models_dir,
                                         self.memory, self.allow_download)
        return self._engines[name]

    def doctor(self, name=None):
        return models.doctor(profiles.load_profile(name or self.default_profile, self.profile_dirs), self.models_dir)

    def start(self):
        self.runner.start()

    def stop(self):
        self.runner.stop()
        self.store.close()


def serve(host, port, data_dir, profile="sdxl", memory="auto", allow_download=False, token=None, log_level="info"):
    import uvicorn
    if not is_loopback(host) and not token:
        raise UserError(f"refusing to listen on {host}, which other machines can reach, without an explicit "
                        "--token: pass --token SECRET (and give it to the add-on), or use --host 127.0.0.1")
    backend = Backend(data_dir, profile, memory, allow_download, token)
    backend.start()
    where = f"token file {backend.token_path}" if backend.token_path else "the --token given"
    print(f"CharacterForge backend on http://{host}:{port} (data {backend.data_dir}; {where})", flush=True)
    try:
        # no access log: the add-on polls job status several times a second
        uvicorn.run(backend.app, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        backend.stop()
