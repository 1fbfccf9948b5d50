"""Backgrounds in Blender: the set's depth without the characters, a generated background
(tiny profile) as a plane at the far end of the frustum filling the frame, and the user's own
picture fitted to the frame."""

import json

import numpy as np
import pytest


def set_scene(bpy, scene, with_set=True):
    from characterforge_addon.blender.rig import rig
    scene.render.resolution_x, scene.render.resolution_y = 96, 64
    rig.add_rig(bpy.context, "Hero", 1.75, "ADULT", (0, 0, 0))
    if with_set:
        bpy.ops.mesh.primitive_cube_add(size=1.0, location=(1.2, 2.0, 0.5))
    bpy.context.view_layer.update()


def frame_corners_px(bpy, scene, obj):
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector
    w, h = scene.render.resolution_x, scene.render.resolution_y
    out = []
    for v in obj.data.vertices:
        p = world_to_camera_view(scene, scene.camera, obj.matrix_world @ Vector(v.co))
        out.append((p.x * w, (1 - p.y) * h))
    return np.array(out)


def test_set_depth_leaves_the_characters_out(bpy, scene):
    from characterforge_addon.blender.generation import generation
    from characterforge_addon.core.image_io import decode_png
    set_scene(bpy, scene, with_set=False)
    assert generation.set_depth_png(bpy.context, scene.camera) is None  # only a character: no set
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(1.2, 2.0, 0.5))
    depth = decode_png(generation.set_depth_png(bpy.context, scene.camera))
    assert depth[:, 56:].max() > 0  # the box, right of centre
    assert depth[:, 40:54].max() == 0  # the rig in the middle is not in it


def test_generated_background_fills_the_frame_in_front_of_the_set(bpy, scene, tmp_path, backend_env):
    from PIL import Image

    from characterforge_addon.blender.generation import jobs, planes
    set_scene(bpy, scene)
    s = scene.characterforge
    s.background_prompt, s.steps, s.random_seed, s.seed = "a stone courtyard", 2, False, 4
    s.results_dir, s.shot = str(tmp_path / "results"), "Shot 1"
    assert bpy.ops.characterforge.make_background() == {"FINISHED"}
    jobs.wait_all(timeout=300)
    assert s.job_state == "completed", s.job_message
    plane = next(iter(bpy.data.collections["CharacterForge Shots"].children["Shot 1"].objects))
    bpy.context.view_layer.update()
    assert plane.location.z == pytest.approx(-scene.camera.data.clip_start * planes.NEAR["background"])
    corners = frame_corners_px(bpy, scene, plane)
    assert np.abs(np.sort(corners[:, 0]) - [0, 0, 96, 96]).max() < 1
    assert np.abs(np.sort(corners[:, 1]) - [0, 0, 64, 64]).max() < 1
    path = json.loads(plane["characterforge_files"])[0]
    record = json.loads(Image.open(path).text["characterforge"])
    assert record["set_depth"] and record["sharp"] and record["job"]["controls"]["depth"]


def test_own_picture_covers_the_frame_keeping_its_aspect(bpy, scene, tmp_path):
    from characterforge_addon.core.image_io import encode_png
    set_scene(bpy, scene)
    picture = tmp_path / "set.png"
    picture.write_bytes(encode_png(np.full((100, 300, 3), 90, np.uint8)))  # 3:1, wider than the 3:2 frame
    s = scene.characterforge
    s.background_image, s.shot = str(picture), "Shot 2"
    assert bpy.ops.characterforge.make_background() == {"FINISHED"}
    plane = bpy.data.objects["Shot 2_background"]
    bpy.context.view_layer.update()
    corners = frame_corners_px(bpy, scene, plane)
    assert corners[:, 1].min() == pytest.approx(0, abs=1) and corners[:, 1].max() == pytest.approx(64, abs=1)
    assert corners[:, 0].min() < -1 and corners[:, 0].max() > 97  # wider than the frame: overflows left and right
    width = corners[:, 0].max() - corners[:, 0].min()
    assert width / 64 == pytest.approx(3.0, rel=0.01)  # its own aspect kept
    s.background_image = str(tmp_path / "missing.png")
    with pytest.raises(RuntimeError, match="not found"):
        bpy.ops.characterforge.make_background()
