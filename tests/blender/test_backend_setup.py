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


def test_setup_creates_the_env_installs_and_checks_it(bpy, tmp_path):
    from characterforge_addon.blender import backend_setup
    make_wheel(str(tmp_path))
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# pinned\ncfprobe==1.0\n")
    env = tmp_path / "user" / "backend-env"
    backend_setup.start(str(env), str(requirements), ["--no-index", "--find-links", str(tmp_path)],
                        base_python=sys.executable, upgrade_pip=False, check="import cfprobe; print(cfprobe.VERSION)")
    seen = backend_setup.wait(timeout=600)
    assert seen["status"] == "done", seen["message"]
    assert seen["progress"] == 1.0 and seen["python"] == backend_setup.env_python(str(env))
    assert os.path.isfile(seen["python"])
    log = open(seen["log"]).read()
    assert "Successfully installed cfprobe-1.0" in log and "import cfprobe" in log


def test_a_failed_install_says_what_and_where_the_log_is(bpy, tmp_path):
    from characterforge_addon.blender import backend_setup
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("no-such-package-cf==9.9\n")
    backend_setup.start(str(tmp_path / "backend-env"), str(requirements), ["--no-index"], base_python=sys.executable,
                        upgrade_pip=False)
    seen = backend_setup.wait(timeout=600)
    assert seen["status"] == "failed"
    assert "installing the backend's packages failed" in seen["message"] and seen["log"] in seen["message"]
    assert "no-such-package-cf" in seen["message"]


def test_bundled_requirements_pin_every_package():
    from characterforge_addon.blender import backend_setup
    lines = [line for line in open(backend_setup.REQUIREMENTS) if line.strip() and not line.startswith("#")]
    assert lines and all("==" in line for line in lines)
    assert {"torch", "diffusers", "fastapi", "uvicorn", "insightface"} <= {line.split("==")[0] for line in lines}


def test_backend_operators(bpy, scene, tmp_path, monkeypatch):
    from characterforge_addon.blender import backend_panel, backend_process
    assert not bpy.app.online_access  # headless default: set-up must not reach the network
    with pytest.raises(RuntimeError, match="Online access is off"):
        bpy.ops.characterforge.setup_backend()
    monkeypatch.setenv("CHARACTERFORGE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CHARACTERFORGE_PROFILE", "sdxl")
    assert bpy.ops.characterforge.check_models() == {"FINISHED"}
    while backend_panel._doctor["running"]:
        import time
        time.sleep(0.2)
    report = backend_panel._doctor["report"]
    assert report is not None, backend_panel._doctor["error"]
    base = next(r for r in report["roles"] if r["role"] == "base")
    assert base["status"] == "missing" and base["fix"].startswith("hf download stabilityai/")
    assert bpy.ops.characterforge.copy_text(text=base["fix"]) == {"FINISHED"}  # (headless has no clipboard to read)
    assert not backend_process.is_running()
