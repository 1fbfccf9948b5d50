"""Blender tests: one real headless Blender (the bpy module) per test session."""

import math
import os
import socket
import sys

import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "blender_scripts")


@pytest.fixture(scope="session")
def bpy():
    import bpy as module

    import characterforge_addon
    characterforge_addon.register()
    yield module
    characterforge_addon.unregister()


@pytest.fixture
def scene(bpy):
    """An empty scene with a camera 5 m in front of the origin, looking at it, 256x256."""
    bpy.ops.wm.read_homefile(use_empty=True)
    s = bpy.context.scene
    s.render.resolution_x = s.render.resolution_y = 256
    s.render.resolution_percentage = 100
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    s.collection.objects.link(cam)
    s.camera = cam
    cam.location = (0.0, -5.0, 0.9)
    cam.rotation_euler = (math.radians(90), 0.0, 0.0)
    cam.data.lens = 35
    return s


@pytest.fixture
def demo(bpy):
    sys.path.insert(0, SCRIPTS)
    import demo_scene
    return demo_scene.build(bpy, resolution=(320, 320))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def backend_env(tmp_path_factory):
    data = tmp_path_factory.mktemp("backend")
    values = {"CHARACTERFORGE_BACKEND_PYTHON": sys.executable, "CHARACTERFORGE_DATA": str(data),
              "CHARACTERFORGE_PROFILE": "tiny", "CHARACTERFORGE_PORT": str(free_port())}
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield data
    from characterforge_addon.blender.backend import backend_process
    backend_process.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
