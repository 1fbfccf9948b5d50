"""The GPUs this machine shows, asked of the system's own tools, not of torch (the add-on
asks before any torch exists; the backend asks to tell a CPU-only torch from a machine
without a GPU): `nvidia-smi`, `rocminfo` (or a ROCm install), Apple Silicon, and Windows'
list of video controllers."""

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass

VENDORS = ("nvidia", "amd", "intel", "apple", "none")
_TIMEOUT_S = 10


@dataclass(frozen=True)
class GPU:
    vendor: str        # nvidia | amd | intel | apple
    name: str
    source: str        # what told us: "nvidia-smi", "rocminfo", ...
    driver: str = ""   # NVIDIA's driver version (it limits the CUDA builds that run)
    memory_mb: int = 0


def _run(program, *args):
    """A tool's output, or None when it is absent, fails or hangs."""
    path = shutil.which(program)
    if path is None:
        return None
    try:
        done = subprocess.run([path, *args], capture_output=True, text=True, timeout=_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _nvidia():
    out = _run("nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader,nounits")
    found = []
    for line in (out or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[0]:
            memory = int(float(parts[1])) if parts[1].replace(".", "", 1).isdigit() else 0
            found.append(GPU("nvidia", parts[0], "nvidia-smi", parts[2], memory))
    return found


def _amd():
    out = _run("rocminfo")
    if out is not None:
        names, agent = [], {}
        for line in out.splitlines():
            key, _, value = line.strip().partition(":")
            if key == "Name" and value.strip().startswith("gfx"):
                agent = {"gfx": value.strip()}
            elif key == "Marketing Name" and agent:
                names.append(value.strip() or agent["gfx"])
                agent = {}
        if names:
            return [GPU("amd", n, "rocminfo") for n in names]
    if os.path.isdir("/opt/rocm") and os.path.exists("/dev/kfd"):
        return [GPU("amd", "AMD GPU (ROCm installed)", "/opt/rocm")]
    return []


def _windows_controllers():
    out = _run("powershell", "-NoProfile", "-Command", "(Get-CimInstance Win32_VideoController).Name")
    found = []
    for name in (out or "").splitlines():
        lower = name.strip().lower()
        vendor = ("nvidia" if "nvidia" in lower else "amd" if "radeon" in lower or "amd" in lower
                  else "intel" if "arc" in lower.split() else None)
        if vendor:
            found.append(GPU(vendor, name.strip(), "Windows video controllers"))
    return found


def detect_gpus(system=None, machine=None):
    """The GPUs this machine shows, NVIDIA first. Intel's integrated graphics are not counted:
    only Arc cards are worth an XPU install."""
    system, machine = system or platform.system(), machine or platform.machine()
    if system == "Darwin":
        return [GPU("apple", f"Apple Silicon ({machine})", "platform")] if machine == "arm64" else []
    found = _nvidia()
    if system == "Linux":
        found += _amd()
    elif system == "Windows":
        # an NVIDIA card nvidia-smi missed (no driver yet) still shows as a controller
        found += [g for g in _windows_controllers() if not (found and g.vendor == "nvidia")]
    return found


def main_vendor(gpus):
    """The vendor whose torch build to install: NVIDIA over AMD over Apple over Intel."""
    vendors = {g.vendor for g in gpus}
    return next((v for v in ("nvidia", "amd", "apple", "intel") if v in vendors), "none")
