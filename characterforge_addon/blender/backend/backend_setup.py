"""One-step backend set-up for the panel: the install plan for this machine's platform and GPU
(core/setup/install_plan.py: the right PyTorch build, then the platform's lock), run on a worker
thread with progress and a log, only when the user asks. The panel reads `state()`; Blender
data is touched only by the caller."""

import os
import sys
import threading

from ...core.errors import UserError
from ...core.setup import install_plan, installer
from ...core.setup.gpus import detect_gpus, main_vendor
from .shared_state import SharedState

_state = SharedState(status="idle", progress=0.0, message="", log="", python="", target="")
state, _set = _state.get, _state.set
_thread = None


def choose_target(gpu="AUTO", system=None):
    """(Target, what was detected in words) for the preference `gpu` (AUTO or a vendor)."""
    system = install_plan.platform_name(system)
    gpus = detect_gpus(install_plan.SYSTEMS[system])
    vendor = main_vendor(gpus) if gpu == "AUTO" else gpu
    driver = next((g.driver for g in gpus if g.vendor == "nvidia"), "")
    if system == "windows" and vendor == "amd" and gpu == "AUTO":
        vendor = "none"  # no ROCm torch on Windows: the CPU, said in the label
    seen = ", ".join(g.name for g in gpus) or "no GPU found"
    return install_plan.target(system, vendor, driver), seen


def start(env_dir, tgt, tools_dir=None, uv=None, base_python=None, locks_dir=install_plan.LOCKS_DIR, pins=None,
          extra=()):
    """Make `env_dir` an environment for `tgt` on a worker thread; returns at once. With
    `tools_dir`, a pinned uv is fetched there first (the environment gets its own Python)."""
    global _thread
    if _thread is not None and _thread.is_alive():
        raise UserError("the backend set-up is already running")
    if uv is None and tools_dir is None:
        refusal = install_plan.pip_fallback_refusal(sys.version_info)
        if refusal:
            raise UserError(refusal)
    if not os.path.isfile(install_plan.lock_file(tgt.system, locks_dir)):
        raise UserError(f"lock file {install_plan.lock_file(tgt.system, locks_dir)} is missing: reinstall the extension")
    steps = install_plan.plan(tgt, env_dir, uv=uv, tools_dir=tools_dir, base_python=base_python, locks_dir=locks_dir,
                              pins=pins, extra=extra)
    log = os.path.join(os.path.dirname(os.path.abspath(env_dir)), "backend-setup.log")
    _set(status="running", progress=0.0, message=steps[0].what, log=log, python="", target=tgt.label)
    _thread = threading.Thread(target=_run, args=(steps, env_dir, tgt, log), name="characterforge-setup", daemon=True)
    _thread.start()
    return _thread


def wait(timeout=3600.0):
    if _thread is not None:
        _thread.join(timeout)
    return state()


def _run(steps, env_dir, tgt, log):
    try:
        installer.run(steps, env_dir, tgt.label, log, report=lambda p, m: _set(progress=p, message=m))
        _set(status="done", progress=1.0, python=install_plan.env_python(env_dir, tgt.system),
             message=f"Backend environment ready: {tgt.label}")
    except UserError as exc:
        _set(status="failed", message=f"{exc}. Nothing was marked ready: press Set Up Backend again after the fix")
