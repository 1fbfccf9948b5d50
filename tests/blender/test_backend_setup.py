"""The one-step backend set-up (a venv and pinned packages, with progress and a log) and the
Backend section's operators, run for real with a local wheel instead of PyPI."""

import base64
import hashlib
import os
import sys
import zipfile

import pytest


def make_wheel(folder, name="cfprobe", version="1.0"):
    """A minimal pure-Python wheel, so pip can install offline (--no-index --find-links)."""
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n",
             f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{name}-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = "\n".join(record) + "\n"
    path = os.path.join(folder, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        for inner, text in files.items():
            z.writestr(inner, text)
    return path


UV = os.path.join(os.path.dirname(sys.executable), "uv")


@pytest.fixture
def wheels(tmp_path):
    """A local wheel folder (probe packages standing in for torch and the locked rest) and a lock."""
    folder = tmp_path / "wheels"
    folder.mkdir()
    make_wheel(str(folder), "cfprobe")
    make_wheel(str(folder), "cfextra")
    locks = tmp_path / "locks"
    locks.mkdir()
    (locks / "linux.txt").write_text("# locked\ncfextra==1.0\n")
    return folder, locks


def probe_target(check="import cfprobe, cfextra; print(cfprobe.VERSION)"):
    from characterforge_addon.core.setup.install_plan import Target
    return Target("linux", "none", "", "probe packages", check)


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_setup_creates_the_env_installs_and_checks_it(bpy, tmp_path, wheels, installer):
    from characterforge_addon.blender.backend import backend_setup
    from characterforge_addon.core.setup import install_plan, installer as runner
    folder, locks = wheels
    env = tmp_path / "user" / "backend-env"
    offline = ("--no-index", "--find-links", str(folder))
    backend_setup.start(str(env), probe_target(), uv=UV if installer == "uv" else None, base_python=sys.executable,
                        locks_dir=str(locks), pins=("cfprobe==1.0",), extra=offline)
    seen = backend_setup.wait(timeout=600)
    assert seen["status"] == "done", seen["message"]
    assert seen["progress"] == 1.0 and seen["python"] == install_plan.env_python(str(env), "linux")
    assert os.path.isfile(seen["python"]) and runner.ready_label(str(env)) == "probe packages"
    log = open(seen["log"]).read()
    assert "cfprobe" in log and "cfextra" in log and "import cfprobe" in log and log.rstrip().endswith("ready")


def test_a_failed_install_says_what_and_where_the_log_is_and_nothing_looks_ready(bpy, tmp_path, wheels):
    from characterforge_addon.blender.backend import backend_setup
    from characterforge_addon.core.setup import installer as runner
    folder, locks = wheels
    env = tmp_path / "backend-env"
    offline = ("--no-index", "--find-links", str(folder))
    backend_setup.start(str(env), probe_target(), uv=UV, locks_dir=str(locks), pins=("cfprobe==1.0",), extra=offline)
    assert backend_setup.wait(timeout=600)["status"] == "done" and runner.ready_label(str(env))
    (locks / "linux.txt").write_text("no-such-package-cf==9.9\n")  # a second set-up that fails half-way
    backend_setup.start(str(env), probe_target(), uv=UV, locks_dir=str(locks), pins=("cfprobe==1.0",), extra=offline)
    seen = backend_setup.wait(timeout=600)
    assert seen["status"] == "failed"
    assert "Installing the backend's packages failed" in seen["message"] and seen["log"] in seen["message"]
    assert "no-such-package-cf" in seen["message"] and "press Set Up Backend again" in seen["message"]
    assert runner.ready_label(str(env)) is None


def test_a_torch_of_the_wrong_build_fails_the_check(bpy, tmp_path, wheels):
    """The check runs last: an install whose torch is not the planned build is never marked ready."""
    from characterforge_addon.blender.backend import backend_setup
    from characterforge_addon.core.setup import installer as runner
    folder, locks = wheels
    env = tmp_path / "backend-env"
    backend_setup.start(str(env), probe_target("import cfprobe; assert cfprobe.VERSION == '9', 'a CPU build'"), uv=UV,
                        locks_dir=str(locks), pins=("cfprobe==1.0",), extra=("--no-index", "--find-links", str(folder)))
    seen = backend_setup.wait(timeout=600)
    assert seen["status"] == "failed" and "Checking the environment failed" in seen["message"]
    assert "a CPU build" in seen["message"] and runner.ready_label(str(env)) is None


def test_bundled_requirements_pin_every_package():
    from characterforge_addon.core.setup import install_plan
    lines = [line for line in open(install_plan.REQUIREMENTS) if line.strip() and not line.startswith("#")]
    assert lines and all("==" in line for line in lines)
    assert {"torch", "diffusers", "fastapi", "uvicorn", "insightface"} <= {line.split("==")[0] for line in lines}


def test_backend_operators(bpy, scene, tmp_path, monkeypatch):
    from characterforge_addon.blender.backend import backend_process
    from characterforge_addon.blender.backend import operators
    assert not bpy.app.online_access  # headless default: set-up must not reach the network
    with pytest.raises(RuntimeError, match="Online access is off"):
        bpy.ops.characterforge.setup_backend()
    monkeypatch.setenv("CHARACTERFORGE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CHARACTERFORGE_PROFILE", "sdxl")
    assert bpy.ops.characterforge.check_models() == {"FINISHED"}
    while operators.doctor["running"]:
        import time
        time.sleep(0.2)
    report = operators.doctor["report"]
    assert report is not None, operators.doctor["error"]
    base = next(r for r in report["roles"] if r["role"] == "base")
    assert base["status"] == "missing" and "hf download stabilityai/stable-diffusion-xl-base-1.0 --include" in base["fix"]
    assert bpy.ops.characterforge.copy_text(text=base["fix"]) == {"FINISHED"}  # (headless has no clipboard to read)
    assert not backend_process.is_running()


def test_download_models_runs_the_backends_download_with_progress_cancel_and_resume(bpy, tmp_path, monkeypatch):
    """The panel's download against a local server speaking the hub's protocol."""
    import time
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "backend"))
    from hub_server import Hub
    from characterforge_addon.blender.backend import model_download
    with pytest.raises(RuntimeError, match="Online access is off"):
        bpy.ops.characterforge.download_models()
    wm = bpy.context.window_manager
    bpy.ops.characterforge.toggle_download_role(role="ip_adapter_faceid")
    bpy.ops.characterforge.toggle_download_role(role="image_encoder")
    assert wm.characterforge_download_roles == "ip_adapter_faceid,image_encoder"
    bpy.ops.characterforge.toggle_download_role(role="ip_adapter_faceid")
    assert wm.characterforge_download_roles == "image_encoder"
    weights = os.urandom(24 * 2**20)
    repos = {"cf/base": {"model_index.json": b"{}", "unet/config.json": b"{}", "unet/model.onnx": b"junk" * 100,
                         "unet/diffusion_pytorch_model.fp16.safetensors": weights},
             "cf/pose": {"config.json": b"{}", "diffusion_pytorch_model.safetensors": b"w" * 1000}}
    profile = tmp_path / "mini.toml"
    profile.write_text('name = "mini"\n[models.base]\nrepo = "cf/base"\nvariant = "fp16"\n'
                       '[models.controlnet_openpose]\nrepo = "cf/pose"\n')
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    data = str(tmp_path / "data")
    with Hub(repos, stall=("unet/diffusion_pytorch_model.fp16.safetensors", 15 * 2**20)) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        model_download.start(sys.executable, data, str(profile))
        deadline = time.monotonic() + 120
        while model_download.state()["done"] < 10 * 2**20:
            assert time.monotonic() < deadline and model_download.state()["status"] == "running", model_download.state()
            time.sleep(0.1)
        running = model_download.state()
        assert 0 < running["progress"] < 1 and "MB/s" in running["message"] and "GB" in running["message"]
        model_download.cancel()
        assert model_download.wait(60)["status"] == "canceled"
    with Hub(repos) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        model_download.start(sys.executable, data, str(profile))
        seen = model_download.wait(120)
    assert seen["status"] == "done", seen["message"]
    assert seen["progress"] == 1.0 and hub.ranges and hub.ranges[0][1] == 10 * 2**20
    assert "unet/model.onnx" not in hub.fetched
