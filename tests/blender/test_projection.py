"""Our numpy projection against Blender's own world_to_camera_view, across camera settings."""

import math

import numpy as np
import pytest

CASES = [
    dict(type="PERSP", lens=35, sensor_fit="AUTO", shift=(0, 0), res=(640, 480), aspect=(1, 1)),
    dict(type="PERSP", lens=85, sensor_fit="AUTO", shift=(0.1, -0.2), res=(480, 640), aspect=(1, 1)),
    dict(type="PERSP", lens=24, sensor_fit="VERTICAL", shift=(-0.05, 0.1), res=(1024, 576), aspect=(1, 1)),
    dict(type="PERSP", lens=50, sensor_fit="HORIZONTAL", shift=(0, 0.3), res=(300, 700), aspect=(2, 1)),
    dict(type="ORTHO", lens=50, sensor_fit="AUTO", shift=(0.2, 0), res=(512, 256), aspect=(1, 1)),
    dict(type="ORTHO", lens=50, sensor_fit="VERTICAL", shift=(0, 0), res=(256, 512), aspect=(1, 1.5)),
]


@pytest.mark.smoke
@pytest.mark.parametrize("case", CASES)
def test_projection_matches_world_to_camera_view(bpy, scene, case):
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    from characterforge_addon.blender.rig.joints import camera_model
    from characterforge_addon.core.rig import projection

    cam = scene.camera
    cam.data.type = case["type"]
    cam.data.lens = case["lens"]
    cam.data.ortho_scale = 4.0
    cam.data.sensor_fit = case["sensor_fit"]
    cam.data.shift_x, cam.data.shift_y = case["shift"]
    cam.location = (0.7, -6.0, 1.4)
    cam.rotation_euler = (math.radians(80), math.radians(5), math.radians(12))
    scene.render.resolution_x, scene.render.resolution_y = case["res"]
    scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = case["aspect"]
    bpy.context.view_layer.update()

    rng = np.random.default_rng(0)
    points = rng.uniform([-2, -1, 0], [2, 2, 2.5], (200, 3))
    xy, depth = projection.project(camera_model(scene, cam), points)
    w, h = case["res"]
    worst = []
    for p, ours, d in zip(points, xy, depth):
        v = world_to_camera_view(scene, cam, Vector(p))
        expected = (v.x * w, (1 - v.y) * h)
        worst.append(max(abs(ours[0] - expected[0]), abs(ours[1] - expected[1])))
        assert d == pytest.approx(v.z, abs=1e-6)
    assert max(worst) < 0.01  # the issue asks < 0.5 px; measured about 1e-4 px
