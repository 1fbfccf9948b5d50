"""The commands that install the backend's environment for a platform and GPU: the PyTorch
build from the index that matches the card (PyPI's Windows torch is CPU-only; its Linux one
needs the newest NVIDIA drivers; ROCm and XPU builds live on PyTorch's own index), then the
rest from the platform's lock file. Pure: `plan` returns the steps; the add-on and
`backend setup` run them, `backend setup --dry-run` prints them.

With uv (https://docs.astral.sh/uv/), the environment gets its own Python 3.11 whatever
Python Blender embeds (uv fetches a managed one when the machine has none: that needs the
network). Without uv, Blender's own Python makes a venv: only where it is 3.11 like the locks.
"""

import os
import sys
from dataclasses import dataclass

from ..errors import UserError

PYTHON = "3.11"  # the backend's Python: the locks are resolved for it
SYSTEMS = {"linux": "Linux", "windows": "Windows", "macos": "Darwin"}
TORCH_INDEX = "https://download.pytorch.org/whl/"
# NVIDIA driver needed by each CUDA build of torch, newest first: the newest the driver runs.
CUDA_BUILDS = (("cu130", 580), ("cu128", 525))
ROCM_BUILD = "rocm6.4"
LOCKS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "backend",
                         "locks")
REQUIREMENTS = os.path.join(os.path.dirname(LOCKS_DIR), "requirements.txt")
READY_FILE = "characterforge-ready.txt"  # written into the environment once its check passed
UV_PIN = "uv==0.13.9"


@dataclass(frozen=True)
class Step:
    what: str      # for the progress line: "Installing PyTorch (CUDA 13.0)…"
    argv: tuple


@dataclass(frozen=True)
class Target:
    system: str        # linux | windows | macos
    gpu: str           # nvidia | amd | intel | apple | none
    torch_index: str   # "" for PyPI
    label: str         # what the user gets, in words
    check: str         # Python run in the new environment: fails unless torch is the build planned


def platform_name(system=None):
    """linux | windows | macos for platform.system()'s names."""
    import platform
    system = system or platform.system()
    for name, value in SYSTEMS.items():
        if system in (name, value):
            return name
    raise UserError(f"platform {system!r} is not supported: the backend runs on Linux, Windows and macOS")


def _driver_major(driver):
    try:
        return int(str(driver).split(".")[0])
    except ValueError:
        return None


def _check(torch_check):
    """The import check run last in a new environment: the packages, then the torch build."""
    return ("import diffusers, transformers, fastapi, uvicorn, huggingface_hub, torch; "
            + (f"{torch_check}; " if torch_check else "") + "print(torch.__version__)")


def target(system, gpu, driver=""):
    """The torch build for a platform and GPU vendor; `driver`: NVIDIA's driver version, when known."""
    if gpu not in ("nvidia", "amd", "intel", "apple", "none"):
        raise UserError(f"GPU {gpu!r} is not one of nvidia, amd, intel, apple, none")
    if system == "macos":
        if gpu not in ("apple", "none"):
            raise UserError(f"a Mac gets PyTorch's macOS build (Apple Silicon's GPU through MPS); GPU {gpu!r} is not "
                            "supported there: choose apple (or none for an Intel Mac)")
        check = _check("assert torch.backends.mps.is_built(), 'torch without MPS'" if gpu == "apple" else "")
        return Target(system, gpu, "", "PyTorch for macOS: Apple Silicon GPU (MPS), float16" if gpu == "apple"
                      else "PyTorch for macOS on the CPU (Intel Macs have no supported GPU)", check)
    if gpu == "apple":
        raise UserError(f"GPU 'apple' is only for macOS, not {system}")
    if gpu == "nvidia":
        major = _driver_major(driver)
        tag = next((t for t, need in CUDA_BUILDS if major is None or major >= need), None)
        if tag is None:
            raise UserError(f"NVIDIA driver {driver} is too old for PyTorch's CUDA builds (they need driver "
                            f"{CUDA_BUILDS[-1][1]} or newer): update the driver from nvidia.com, then set up again")
        cuda = f"{tag[2:-1]}.{tag[-1]}"
        return Target(system, gpu, TORCH_INDEX + tag, f"PyTorch with CUDA {cuda} for the NVIDIA GPU",
                      _check("assert torch.version.cuda, 'a CPU build of torch ' + torch.__version__"))
    if gpu == "amd":
        if system != "linux":
            raise UserError("PyTorch has ROCm builds (AMD GPUs) for Linux only: on Windows choose GPU 'none' (CPU) "
                            "or run the backend on a Linux machine")
        return Target(system, gpu, TORCH_INDEX + ROCM_BUILD, f"PyTorch with ROCm {ROCM_BUILD[4:]} for the AMD GPU",
                      _check("assert torch.version.hip, 'not a ROCm build of torch'"))
    if gpu == "intel":
        return Target(system, gpu, TORCH_INDEX + "xpu", "PyTorch with XPU for the Intel Arc GPU",
                      _check("assert hasattr(torch, 'xpu'), 'torch without XPU'"))
    return Target(system, gpu, TORCH_INDEX + "cpu", "PyTorch for the CPU only (no GPU: minutes per image)",
                  _check(""))


def torch_pins(requirements=REQUIREMENTS):
    """The torch and torchvision pins (exact versions, a matching pair) from the requirements."""
    pins = {}
    with open(requirements, encoding="utf-8") as f:
        for line in f:
            name, _, version = line.split("#")[0].strip().partition("==")
            if name in ("torch", "torchvision"):
                pins[name] = version
    return f"torch=={pins['torch']}", f"torchvision=={pins['torchvision']}"


def _paths(system):
    import ntpath
    import posixpath
    return ntpath if system == "windows" else posixpath


def env_python(env_dir, system):
    join = _paths(system).join
    return join(env_dir, "Scripts", "python.exe") if system == "windows" else join(env_dir, "bin", "python")


def lock_file(system, locks_dir=LOCKS_DIR):
    return os.path.join(locks_dir, f"{system}.txt")


def uv_in(tools_dir, system):
    """Where `pip install --target tools_dir uv` puts the uv program."""
    join = _paths(system).join
    return join(tools_dir, "Scripts", "uv.exe") if system == "windows" else join(tools_dir, "bin", "uv")


def plan(tgt, env_dir, uv=None, tools_dir=None, base_python=None, locks_dir=LOCKS_DIR, pins=None, extra=()):
    """The steps that make `env_dir` an environment for `tgt`: with `uv` (its path) when given;
    else with a pinned uv fetched into `tools_dir` by `base_python`'s pip when given; else with
    `base_python`'s venv and pip. `extra`: installer options added to every install (a local
    wheel folder, for tests and offline mirrors)."""
    pins = pins or torch_pins()
    base_python = base_python or sys.executable
    fetch = []
    if uv is None and tools_dir:
        uv = uv_in(tools_dir, tgt.system)
        fetch = [Step("Fetching uv…", (base_python, "-m", "pip", "install", "--disable-pip-version-check",
                                       "--target", tools_dir, "--upgrade", UV_PIN, *extra))]
    python = env_python(env_dir, tgt.system)
    lock = lock_file(tgt.system, locks_dir)
    index = ("--index-url", tgt.torch_index) if tgt.torch_index else ()
    if uv:
        steps = fetch + [Step(f"Creating the environment (Python {PYTHON})…", (uv, "venv", "--clear", "--python", PYTHON, env_dir)),
                 Step(f"Installing {tgt.label}…", (uv, "pip", "install", "--python", python, *index, *pins, *extra)),
                 Step("Installing the backend's packages…", (uv, "pip", "install", "--python", python, "-r", lock, *extra))]
    else:
        steps = [Step("Creating the environment…", (base_python, "-m", "venv", "--clear", env_dir)),
                 Step(f"Installing {tgt.label}…", (python, "-m", "pip", "install", *index, *pins, *extra)),
                 Step("Installing the backend's packages…", (python, "-m", "pip", "install", "-r", lock, *extra))]
    return steps + [Step("Checking the environment…", (python, "-c", tgt.check))]


def pip_fallback_refusal(base_version):
    """Why Blender's own Python cannot make the environment without uv, or None when it can."""
    if tuple(base_version[:2]) != tuple(int(p) for p in PYTHON.split(".")):
        return (f"this Blender's Python is {base_version[0]}.{base_version[1]} and the backend's packages are locked for "
                f"Python {PYTHON}: the set-up needs uv (fetched from PyPI when Blender's online access is on) to "
                f"provide Python {PYTHON}")
    return None


def format_plan(steps, system):
    """One command per line, quoted for the platform's shell, as `--dry-run` prints them."""
    import shlex
    import subprocess
    quote = subprocess.list2cmdline if system == "windows" else shlex.join
    return "\n".join(quote(step.argv) for step in steps)
