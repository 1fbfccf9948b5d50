"""One-step backend set-up: a virtual environment in the add-on's user folder with the
backend's pinned requirements, installed on a worker thread with progress and a log, only
when the user asks. The panel reads `state()`; Blender data is touched only by the caller."""

import os
import re
import subprocess
import sys
import threading
import time

from ..core.errors import UserError

REQUIREMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "backend", "requirements.txt")
CHECK = "import torch, diffusers, transformers, fastapi, uvicorn; print(torch.__version__, diffusers.__version__)"
_lock = threading.Lock()
_state = {"status": "idle", "progress": 0.0, "message": "", "log": "", "python": ""}
_thread = None


def state():
    with _lock:
        return dict(_state)


def _set(**values):
    with _lock:
        _state.update(values)


def env_python(env_dir):
    return os.path.join(env_dir, "Scripts", "python.exe") if os.name == "nt" else os.path.join(env_dir, "bin", "python")


def _pins(requirements):
    with open(requirements, encoding="utf-8") as f:
        return [line.split("==")[0].strip().lower() for line in f if line.strip() and not line.startswith("#")]


def start(env_dir, requirements=REQUIREMENTS, pip_args=(), base_python=None, upgrade_pip=True, check=CHECK):
    """Create the environment and install into it, on a worker thread; returns at once."""
    global _thread
    if _thread is not None and _thread.is_alive():
        raise UserError("the backend set-up is already running")
    if not os.path.isfile(requirements):
        raise UserError(f"requirements file {requirements} is missing: reinstall the extension")
    log = os.path.join(os.path.dirname(os.path.abspath(env_dir)), "backend-setup.log")
    _set(status="running", progress=0.0, message="Creating the environment…", log=log, python="")
    _thread = threading.Thread(target=_run, args=(env_dir, requirements, list(pip_args),
                                                  base_python or sys.executable, upgrade_pip, check, log),
                               name="characterforge-setup", daemon=True)
    _thread.start()
    return _thread


def wait(timeout=3600.0):
    if _thread is not None:
        _thread.join(timeout)
    return state()


def _run(env_dir, requirements, pip_args, base_python, upgrade_pip, check, log_path):
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n=== CharacterForge backend set-up {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n")
        try:
            python = env_python(env_dir)
            if not os.path.isfile(python):
                _step(log, [base_python, "-m", "venv", env_dir], "creating the environment")
            if upgrade_pip:
                _set(message="Updating pip…", progress=0.05)
                _step(log, [python, "-m", "pip", "install", "--upgrade", "pip", *pip_args], "updating pip")
            packages = _pins(requirements)
            _install(log, [python, "-m", "pip", "install", "--progress-bar", "off", "-r", requirements, *pip_args],
                     packages)
            _set(message="Checking the environment…", progress=0.97)
            _step(log, [python, "-c", check], "checking the environment")
            _set(status="done", progress=1.0, python=python,
                 message=f"Backend environment ready: {python}")
        except UserError as exc:
            _set(status="failed", message=str(exc))
            log.write(f"FAILED: {exc}\n")


def _step(log, command, what):
    run = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write(f"$ {' '.join(command)}\n{run.stdout}")
    log.flush()
    if run.returncode:
        last = " / ".join(line.strip() for line in run.stdout.strip().splitlines()[-3:])
        raise UserError(f"{what} failed (exit {run.returncode}): {last or 'no output'} (full log: {log.name})")


def _install(log, command, packages):
    """pip install, its progress counted from the packages it reports collecting."""
    log.write(f"$ {' '.join(command)}\n")
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    seen, tail = set(), []
    for line in proc.stdout:
        log.write(line)
        tail = (tail + [line.strip()])[-3:]
        match = re.match(r"(Collecting|Requirement already satisfied:)\s+([A-Za-z0-9_.\-]+)", line)
        if match:
            seen.add(match.group(2).split("==")[0].lower().replace("-", "_"))
            done = len(seen & {p.replace("-", "_") for p in packages})
            _set(progress=0.1 + 0.8 * done / max(len(packages), 1), message=f"Installing: {match.group(2)}…")
        elif line.startswith("Installing collected packages"):
            _set(progress=0.9, message="Installing the collected packages…")
    if proc.wait():
        raise UserError(f"installing the backend's packages failed (exit {proc.returncode}): {' / '.join(tail)} "
                        f"(full log: {log.name})")
