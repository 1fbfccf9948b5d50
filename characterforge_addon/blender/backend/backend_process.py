"""The bundled backend as a child process: start, find, stop, and tell why it died.

Runs `python -m <add-on package>.backend serve` in the backend's own Python, with the add-on's
parent folder on PYTHONPATH (the package imports neither bpy nor torch at its root).
Nothing here touches Blender data, so it may run on a worker thread.
"""

import os
import subprocess
import time

from ...client.backend_client import BackendClient, BackendError

ADDON_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_process = None
_log_path = None


def command(python, port, data_dir, profile, options=()):
    """`options`: further `serve` options (preferences.serve_options: memory, weights, speed-ups)."""
    package = os.path.basename(ADDON_DIR)
    return [python, "-m", f"{package}.backend", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--data", data_dir, "--profile", profile, *options]


def is_running():
    return _process is not None and _process.poll() is None


def start(python, port, data_dir, profile, options=()):
    """Start the backend (once); returns at once. Output goes to <data>/backend.log."""
    global _process, _log_path
    if is_running():
        return _process
    os.makedirs(data_dir, exist_ok=True)
    _log_path = os.path.join(data_dir, "backend.log")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.path.dirname(ADDON_DIR),
                                                                   os.environ.get("PYTHONPATH", "")])))
    env.setdefault("HF_HUB_OFFLINE", "1")
    log = open(_log_path, "ab")
    try:
        _process = subprocess.Popen(command(python, port, data_dir, profile, options), stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    except OSError as exc:
        raise BackendError(f"cannot start the backend with {python} ({exc.strerror or exc})", "start_failed",
                           "set the backend's Python in the add-on preferences") from None
    finally:
        log.close()
    return _process


def last_log_lines(n=6):
    if not _log_path or not os.path.exists(_log_path):
        return ""
    with open(_log_path, "rb") as f:
        return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")


def wait_ready(url, data_dir, timeout=120.0, cancelled=lambda: False):
    """A client once the backend answers /health; raises BackendError if it died or timed out."""
    deadline = time.monotonic() + timeout
    token_path = os.path.join(data_dir, "token")
    while time.monotonic() < deadline and not cancelled():
        if _process is not None and _process.poll() is not None:
            raise BackendError(f"the backend exited with code {_process.returncode}: {last_log_lines()}",
                               "backend_crashed", f"see {_log_path}")
        if os.path.exists(token_path):
            with open(token_path) as f:
                client = BackendClient(url, f.read().strip(), timeout=10)
            try:
                client.health()
                return client
            except BackendError as exc:
                if exc.type not in ("unreachable",):
                    raise
        time.sleep(0.25)
    raise BackendError(f"the backend did not answer at {url} within {timeout:.0f} s", "unreachable",
                       f"see {_log_path}")


def stop(timeout=10.0):
    """Stop the backend (frees its GPU memory). Returns True if one was running."""
    global _process
    if _process is None:
        return False
    was_running = _process.poll() is None
    if was_running:
        _process.terminate()
        try:
            _process.wait(timeout)
        except subprocess.TimeoutExpired:
            _process.kill()
            _process.wait()
    _process = None
    return was_running
