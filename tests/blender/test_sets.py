"""A set that holds across cameras: a picture projected from camera A onto a floor, a box and
a wall; camera B's coverage and colours checked against the rule worked in numpy; a fill from
B paints every hole and changes nothing A sees; from each painting camera a plain render (the
scene's own engine, Standard and AgX) shows that camera's picture; a camera between them sees
core.view_blend's blend, without seams; the tiny backend's fill job; the dome; removing the
projection."""

import json
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "blender_scripts"))
import set_scene  # noqa: E402

W, H = 128, 96


def build_set(bpy, scene):
    from mathutils import Vector
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = W, H, 100
    bpy.ops.mesh.primitive_plane_add(size=20, location=(0, 0, 0))
    bpy.ops.mesh.primitive_cube_add(size=2, location=(0, 0, 1))
    bpy.ops.mesh.primitive_plane_add(size=20, location=(0, 6, 5), rotation=(math.pi / 2, 0, 0))
    wall = bpy.context.active_object
    own = bpy.data.materials.new("Brick")
    wall.data.materials.append(own)
    cameras = []
    for name, where in (("A", (0, -8, 2)), ("B", (7, -5, 2.5))):
        obj = bpy.data.objects.new(name, bpy.data.cameras.new(name))
        scene.collection.objects.link(obj)
        obj.location = where
        obj.rotation_euler = (Vector((0, 0, 1)) - Vector(where)).to_track_quat("-Z", "Y").to_euler()
        cameras.append(obj)
    scene.camera = cameras[0]
    bpy.context.view_layer.update()
    return cameras, wall, own


def gradient(path):
    from characterforge_addon.core.image_io import encode_png
    yy, xx = np.mgrid[0:H, 0:W]
    picture = np.stack([xx * 2, yy * 2, np.full_like(xx, 128)], -1).astype(np.uint8)
    path.write_bytes(encode_png(picture))
    return picture


@pytest.mark.smoke
def test_a_projection_is_seen_by_a_second_camera_where_the_first_painted_and_a_fill_paints_only_the_holes(
        bpy, scene, tmp_path):
    from characterforge_addon.blender import set_projection
    from characterforge_addon.core import set_projection as rule
    from characterforge_addon.core.image_io import encode_png
    (a, b), wall, own = build_set(bpy, scene)
    picture = gradient(tmp_path / "a.png")
    set_projection.project(bpy.context, a, str(tmp_path / "a.png"))
    assert all(slot.material.name == set_projection.MATERIAL for o in set_projection.set_objects(scene)
               for slot in o.material_slots)

    # camera A sees its own picture back wherever it sees the set (one level of 8-bit rounding)
    back = set_projection.render_view(scene, a)
    seen_a = set_projection.set_depth(scene, a) < rule.BACKGROUND_DEPTH
    assert seen_a.mean() > 0.8 and np.abs(back[seen_a].astype(int) - picture[seen_a]).max() <= 1

    # camera B: covered exactly where the rule says A paints acceptably for B, A's colours wherever A saw
    coverage = set_projection.render_view(scene, b, coverage=True) > 0.5
    expected = set_scene.reference(bpy, scene, b, [a])
    surface, trusted, (seen,), ((iy, ix),) = (expected[k] for k in ("surface", "trusted", "seen", "where"))
    assert 0.2 < expected["acceptable"].mean() < 0.6
    assert (coverage == expected["acceptable"])[trusted].mean() > 0.99  # normals differ only at the margin
    before = set_projection.render_view(scene, b)
    assert np.percentile(np.abs(before[seen].astype(int) - picture[iy, ix][seen]), 99) <= 2
    holes = rule.unpainted(surface, set_projection.render_view(scene, b, coverage=True))
    assert (holes == (surface & ~coverage)).all() and holes.mean() > 0.2
    magenta = np.all(before == (255, 0, 255), -1)  # the hole colour: only where A saw nothing
    assert magenta.mean() > 0.1 and not (magenta & ~holes).any()
    assert (magenta & seen).mean() < 0.005  # but for depth edges, where numpy's nearest pixel is another

    # a fill from B: the picture a backend would return (context kept, holes made), projected
    made = before.copy()
    made[holes] = (20, 200, 40)
    (tmp_path / "b.png").write_bytes(encode_png(made))
    set_projection.project(bpy.context, b, str(tmp_path / "b.png"))
    after = set_projection.render_view(scene, b)
    assert np.abs(after[surface].astype(int) - made[surface]).max() <= 1  # B now sees its own picture
    assert set_projection.render_view(scene, b, coverage=True)[surface].min() > 0.5
    # ... and A what it saw before: the fill changed nothing of A's own view
    assert np.abs(set_projection.render_view(scene, a)[seen_a].astype(int) - picture[seen_a]).max() <= 1

    # removing the projection gives every object its own materials back
    set_projection.remove(scene)
    assert wall.material_slots[0].material == own and "characterforge_set_layers" not in scene
    assert not bpy.data.objects["Plane"].material_slots  # the floor had no material: it has none again
    assert set_projection.MATERIAL not in bpy.data.materials


@pytest.mark.smoke
def test_the_dome_makes_the_sky_part_of_the_set_but_stays_out_of_the_depth_control(bpy, scene, tmp_path):
    from characterforge_addon.blender import generation, set_projection
    from characterforge_addon.core import set_projection as rule
    (a, b), _, _ = build_set(bpy, scene)
    b.rotation_euler = (math.pi, 0, 0)  # looking straight up at the sky
    bpy.context.view_layer.update()
    assert (set_projection.set_depth(scene, b) >= rule.BACKGROUND_DEPTH).all()  # nothing to paint up there
    without = generation.set_depth_png(bpy.context, a)
    dome = set_projection.add_dome(bpy.context, a)
    assert set_projection.add_dome(bpy.context, a) == dome and dome in set_projection.set_objects(scene)
    assert generation.set_depth_png(bpy.context, a) == without  # the dome would flatten the set's depth range
    sky = set_projection.set_depth(scene, b)
    radius = a.data.clip_end * set_projection.DOME_AT
    assert (sky < rule.BACKGROUND_DEPTH).all() and sky.max() < radius * 1.01
    gradient(tmp_path / "a.png")
    set_projection.project(bpy.context, a, str(tmp_path / "a.png"))
    assert dome.material_slots[0].material.name == set_projection.MATERIAL
    coverage = set_projection.render_view(scene, b, coverage=True)
    assert rule.unpainted(sky < rule.BACKGROUND_DEPTH, coverage).all()  # A never saw the sky: B fills all of it


def test_from_the_sidebar_a_background_projected_from_one_camera_and_filled_from_another(bpy, scene, tmp_path,
                                                                                        backend_env):
    """The tiny backend end to end: Make Background (camera A), Project Background onto Set,
    then Fill Set from camera B: the job makes only B's holes, the fill becomes a layer and B's
    shot background, and B then sees no hole."""
    from PIL import Image

    from characterforge_addon.blender import jobs, set_projection, sets
    from characterforge_addon.core import set_projection as rule
    (a, b), _, _ = build_set(bpy, scene)
    s = scene.characterforge
    s.background_prompt, s.steps, s.random_seed, s.seed = "a stone courtyard", 2, False, 3
    s.results_dir, s.shot = str(tmp_path / "results"), "A"
    assert bpy.ops.characterforge.make_background() == {"FINISHED"}
    jobs.wait_all(timeout=300)
    assert s.job_state == "completed", s.job_message
    assert bpy.ops.characterforge.project_background() == {"FINISHED"}
    scene.camera, s.shot = b, "B"
    surface = set_projection.set_depth(scene, b) < rule.BACKGROUND_DEPTH
    holes = rule.unpainted(surface, set_projection.render_view(scene, b, coverage=True))
    before = set_projection.render_view(scene, b)
    assert bpy.ops.characterforge.fill_set() == {"FINISHED"}
    jobs.wait_all(timeout=300)
    assert s.job_state == "completed", s.job_message
    assert [layer["camera"] for layer in set_projection.layers(scene)] == ["A", "B"]
    plane = sets.shown_background(scene, "B")
    path = json.loads(plane["characterforge_files"])[0]
    record = json.loads(Image.open(path).text["characterforge"])
    assert record["filled_fraction"] == pytest.approx(holes.mean(), abs=0.01) and record["set_depth"]
    after = set_projection.render_view(scene, b)
    kept = surface & ~holes
    assert np.abs(after[kept].astype(int) - before[kept]).max() <= 2  # what A painted is unchanged
    assert set_projection.render_view(scene, b, coverage=True)[surface].min() > 0.5  # no hole left
    # a third look from B: nothing to fill, its view of the set becomes the background at once
    assert bpy.ops.characterforge.fill_set() == {"FINISHED"} and not jobs.active()
    assert sets.shown_background(scene, "B")["characterforge_background"].endswith("set_view_B.png")
