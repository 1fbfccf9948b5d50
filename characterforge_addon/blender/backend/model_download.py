"""Download Models for the panel: the backend's `download` command run in the backend's own
Python, its JSON progress lines read on a worker thread; Cancel ends the process, and the next
download continues the partial files. Nothing here touches Blender data."""

import json
import os
import subprocess
import threading

from ...core.errors import UserError
from .backend_process import ADDON_DIR
from .shared_state import SharedState

_state = SharedState(status="idle", progress=0.0, message="", done=0, total=0, speed=0.0, eta_s=None, log="")
state, _set = _state.get, _state.set
_process = None
_thread = None


def command(python, data_dir, profile, roles=(), accept_non_commercial=False):
    package = os.path.basename(ADDON_DIR)
    argv = [python, "-m", f"{package}.backend", "download", "--json", "--profile", profile, "--data", data_dir]
    for role in roles:
        argv += ["--role", role]
    return argv + (["--accept-non-commercial"] if accept_non_commercial else [])


def start(python, data_dir, profile, roles=(), accept_non_commercial=False, env=None):
    """Start downloading on a worker thread; returns at once."""
    global _process, _thread
    if _thread is not None and _thread.is_alive():
        raise UserError("a download is already running: wait for it or cancel it")
    os.makedirs(data_dir, exist_ok=True)
    log = os.path.join(data_dir, "download.log")
    environment = dict(env or os.environ, PYTHONPATH=os.path.dirname(ADDON_DIR))
    environment.pop("HF_HUB_OFFLINE", None)  # the user pressed Download
    _set(status="running", progress=0.0, message="Asking the hub for the files…", done=0, total=0, speed=0.0,
         eta_s=None, log=log)
    try:
        _process = subprocess.Popen(command(python, data_dir, profile, roles, accept_non_commercial),
                                    stdout=subprocess.PIPE, stderr=open(log, "a"), text=True, env=environment,
                                    stdin=subprocess.DEVNULL)
    except OSError as exc:
        _set(status="failed", message=f"cannot run the backend's Python {python} ({exc.strerror or exc}): "
                                      "press Set Up Backend first")
        raise UserError(state()["message"]) from None
    _thread = threading.Thread(target=_follow, args=(_process,), name="characterforge-download", daemon=True)
    _thread.start()
    return _thread


def _follow(process):
    last = None
    for line in process.stdout:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        last = event
        if event["event"] == "plan":
            _set(total=event["total"], message=f"{event['to_fetch'] / 2**30:.2f} GB to download")
        elif event["event"] == "progress":
            eta = f", {event['eta_s'] / 60:.0f} min left" if event["eta_s"] else ""
            _set(done=event["done"], total=event["total"], speed=event["speed"], eta_s=event["eta_s"],
                 progress=event["done"] / max(event["total"], 1),
                 message=f"{event['done'] / 2**30:.2f} of {event['total'] / 2**30:.2f} GB, "
                         f"{event['speed'] / 2**20:.1f} MB/s{eta} ({event['role'] or 'done'})")
    code = process.wait()
    if state()["status"] == "canceled":
        return
    if code == 0 and last and last["event"] == "done":
        _set(status="done", progress=1.0, message="Models downloaded: press Check Models")
    else:
        message = last["message"] if last and last["event"] == "error" else f"the download stopped (exit {code})"
        _set(status="failed", message=f"{message} (log: {state()['log']})")


def cancel():
    """End the download; its partial files stay and the next download continues them."""
    if _process is not None and _process.poll() is None:
        _set(status="canceled", message="Download canceled: Download Models continues where it stopped")
        _process.terminate()


def wait(timeout=3600.0):
    if _thread is not None:
        _thread.join(timeout)
    return state()
