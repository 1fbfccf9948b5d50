"""The extension zip: built with Blender's own tool, accepted by its validator, installed,
used and removed in a real headless Blender."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture(scope="module")
def extension_zip(tmp_path_factory):
    sys.path.insert(0, os.path.join(ROOT, "blender_scripts", "dev"))
    import build_extension
    return build_extension.build(str(tmp_path_factory.mktemp("dist")), validate=True)


@pytest.mark.smoke
def test_zip_holds_the_package_and_manifest_only(extension_zip):
    names = zipfile.ZipFile(extension_zip).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "core/maps/openpose_draw.py" in names and "blender/maps/controls.py" in names
    assert {f"backend/locks/{p}.txt" for p in ("linux", "windows", "macos")} <= set(names)  # Set Up Backend reads them
    assert not any(n.startswith(("tests/", "blender_scripts/")) or "__pycache__" in n for n in names)


@pytest.mark.smoke
def test_blender_validates_the_zip(extension_zip):
    import bpy
    cli = os.path.join(bpy.utils.system_resource("SCRIPTS"), "addons_core", "bl_pkg", "cli", "blender_ext.py")
    run = subprocess.run([sys.executable, cli, "validate", extension_zip], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.smoke
def test_a_bad_manifest_is_refused(tmp_path):
    import bpy
    cli = os.path.join(bpy.utils.system_resource("SCRIPTS"), "addons_core", "bl_pkg", "cli", "blender_ext.py")
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "blender_manifest.toml").write_text('schema_version = "1.0.0"\nid = "x"\n')
    run = subprocess.run([sys.executable, cli, "validate", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode != 0


@pytest.mark.smoke
def test_install_enable_use_disable_leaves_nothing(extension_zip):
    run = subprocess.run([sys.executable, os.path.join(HERE, "extension_check.py"), extension_zip],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert "openpose.png" in seen["files"] and "depth.png" in seen["files"]
    assert seen["disabled"]["classes"] == []


def test_preferences_persist_into_the_next_session(extension_zip, tmp_path):
    check = os.path.join(HERE, "prefs_check.py")
    user = str(tmp_path / "user")
    saved = subprocess.run([sys.executable, check, "set", extension_zip, user], capture_output=True, text=True,
                           timeout=300)
    assert saved.returncode == 0, saved.stdout[-2000:] + saved.stderr[-2000:]
    seen = subprocess.run([sys.executable, check, "get", extension_zip, user], capture_output=True, text=True,
                          timeout=300)
    assert seen.returncode == 0, seen.stdout[-2000:] + seen.stderr[-2000:]
    state = json.loads(seen.stdout.strip().splitlines()[-1])
    assert state["enabled"]
    assert state["values"] == {"mode": "CONNECT", "url": "http://127.0.0.1:9999", "port": 9001, "profile": "tiny",
                               "characters_dir": "/tmp/cf-characters", "auto_start": False,
                               "python": "/opt/cf/bin/python", "memory": "model_offload"}
