"""The set-up plan for every platform x GPU: the right PyTorch index (Windows + NVIDIA never
gets PyPI's CPU-only torch), a clear refusal where no build exists, and locks that match the
requirements."""

import importlib.util
import itertools
import os
import re
import subprocess
import sys

import pytest

from characterforge_addon.core.setup import install_plan
from characterforge_addon.core.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPECTED = {  # (platform, gpu) -> the PyTorch index of the torch step ("" = PyPI), or the refusal
    ("linux", "nvidia"): "https://download.pytorch.org/whl/cu130",
    ("linux", "amd"): "https://download.pytorch.org/whl/rocm6.4",
    ("linux", "intel"): "https://download.pytorch.org/whl/xpu",
    ("linux", "none"): "https://download.pytorch.org/whl/cpu",
    ("linux", "apple"): "only for macOS",
    ("windows", "nvidia"): "https://download.pytorch.org/whl/cu130",
    ("windows", "amd"): "Linux only",
    ("windows", "intel"): "https://download.pytorch.org/whl/xpu",
    ("windows", "none"): "https://download.pytorch.org/whl/cpu",
    ("windows", "apple"): "only for macOS",
    ("macos", "apple"): "",
    ("macos", "none"): "",
    ("macos", "nvidia"): "choose apple",
    ("macos", "amd"): "choose apple",
    ("macos", "intel"): "choose apple",
}


@pytest.mark.parametrize("system,gpu", list(itertools.product(("linux", "windows", "macos"),
                                                              ("nvidia", "amd", "intel", "apple", "none"))))
@pytest.mark.parametrize("with_uv", [True, False])
def test_every_platform_and_gpu_gets_its_torch_or_a_clear_refusal(system, gpu, with_uv):
    expected = EXPECTED[(system, gpu)]
    if not expected.startswith("https") and expected:
        with pytest.raises(UserError, match=expected):
            install_plan.target(system, gpu)
        return
    tgt = install_plan.target(system, gpu)
    env = "C:\\cf\\env" if system == "windows" else "/home/a/cf/env"
    steps = install_plan.plan(tgt, env, uv="uv" if with_uv else None, base_python="python")
    torch_step = next(s.argv for s in steps if "torch==2.14.1" in s.argv)
    assert "torchvision==0.29.1" in torch_step
    if expected:
        assert torch_step[torch_step.index("--index-url") + 1] == expected
    else:
        assert "--index-url" not in torch_step  # PyPI's macOS wheels carry MPS
    python = install_plan.env_python(env, system)
    assert python == ("C:\\cf\\env\\Scripts\\python.exe" if system == "windows" else "/home/a/cf/env/bin/python")
    lock_step = next(s.argv for s in steps if "-r" in s.argv)
    assert lock_step[lock_step.index("-r") + 1] == install_plan.lock_file(system)
    assert steps[-1].argv[:2] == (python, "-c")
    if with_uv:
        assert steps[0].argv[:5] == ("uv", "venv", "--clear", "--python", install_plan.PYTHON)
        assert all(s.argv[s.argv.index("--python") + 1] == python for s in steps[1:3])
    else:
        assert steps[0].argv == ("python", "-m", "venv", "--clear", env)


def test_windows_with_an_nvidia_card_never_installs_pypis_cpu_torch():
    tgt = install_plan.target("windows", "nvidia", driver="566.36")
    for uv in ("uv", None):
        torch_step = next(s.argv for s in install_plan.plan(tgt, "C:\\env", uv=uv) if "torch==2.14.1" in s.argv)
        assert "--index-url" in torch_step and "/whl/cu" in torch_step[torch_step.index("--index-url") + 1]
    assert "torch.version.cuda" in tgt.check  # a CPU torch fails the check: the environment is not marked ready


@pytest.mark.parametrize("driver,build", [("591.44", "cu130"), ("580.65", "cu130"), ("566.36", "cu128"),
                                          ("535.104", "cu128"), ("", "cu130")])
def test_the_cuda_build_follows_the_driver(driver, build):
    assert install_plan.target("linux", "nvidia", driver).torch_index.endswith(build)


def test_a_driver_too_old_for_any_cuda_build_is_refused_with_the_fix():
    with pytest.raises(UserError, match="driver 470.82 is too old.*update the driver"):
        install_plan.target("windows", "nvidia", "470.82")


def test_fetching_uv_comes_first_when_it_is_not_there_yet():
    tgt = install_plan.target("windows", "nvidia")
    steps = install_plan.plan(tgt, "C:\\env", tools_dir="C:\\cf\\tools", base_python="C:\\blender\\python.exe")
    assert steps[0].argv[:3] == ("C:\\blender\\python.exe", "-m", "pip") and install_plan.UV_PIN in steps[0].argv
    assert steps[1].argv[0] == "C:\\cf\\tools\\Scripts\\uv.exe"


def test_blenders_python_is_used_without_uv_only_where_it_matches_the_locks():
    assert install_plan.pip_fallback_refusal((3, 11, 7)) is None
    assert "needs uv" in install_plan.pip_fallback_refusal((3, 13, 1))


def test_dry_run_prints_one_command_per_line_for_the_platform():
    out = subprocess.run([sys.executable, "-m", "characterforge_addon.backend", "setup", "--dry-run", "--platform",
                          "windows", "--gpu", "nvidia", "--env", "C:\\Program Files\\cf env", "--uv", "C:\\uv.exe"],
                         capture_output=True, text=True, cwd=ROOT, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith(("C:\\uv.exe", '"C:\\Program Files')) for line in lines)
    assert '"C:\\Program Files\\cf env"' in lines[0] and "whl/cu130" in lines[1]
    assert "PyTorch with CUDA 13.0" in out.stderr
    refused = subprocess.run([sys.executable, "-m", "characterforge_addon.backend", "setup", "--dry-run",
                              "--platform", "windows", "--gpu", "amd"], capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2 and "Linux only" in refused.stderr


def _pins(text):
    return dict(re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", line).groups() for line in text.splitlines()
                if line.strip() and not line.startswith("#"))


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.mark.parametrize("system", ["linux", "windows", "macos"])
def test_each_platform_lock_pins_every_requirement_at_its_version(system):
    required = {_norm(k): v for k, v in _pins(open(install_plan.REQUIREMENTS).read()).items()}
    locked = {_norm(k): v for k, v in _pins(open(install_plan.lock_file(system)).read()).items()}
    for name, version in required.items():
        if name in ("torch", "torchvision"):
            assert name not in locked  # from the PyTorch index that matches the GPU
        else:
            assert locked.get(name) == version, f"{system} lock: {name} {locked.get(name)} != {version}: " \
                                                "run python blender_scripts/dev/lock_backend.py"
    assert not any(n.startswith(("nvidia-", "triton")) for n in locked)


def _lock_backend():
    path = os.path.join(ROOT, "blender_scripts", "dev", "lock_backend.py")
    spec = importlib.util.spec_from_file_location("lock_backend", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("system", ["linux", "windows", "macos"])
def test_each_lock_starts_with_the_header_lock_backend_writes(system):
    """`lock_backend.py --check` compares whole files: a header naming moved paths would call a
    lock stale. The paths it names are the tree's."""
    lock_backend = _lock_backend()
    header = lock_backend.header(system)
    assert open(install_plan.lock_file(system), encoding="utf-8").read().startswith(header)
    assert os.path.isfile(os.path.join(ROOT, lock_backend.SCRIPT))
    assert os.path.isfile(os.path.join(ROOT, "characterforge_addon", lock_backend.INSTALL_PLAN))
