"""A set that holds across cameras: a picture projected from camera A onto a floor, a box and
a wall; camera B's coverage and colours checked against the projection done in numpy; a
fill from B changes no painted pixel and paints every hole; the tiny backend's fill job;
the dome; removing the projection."""

import json
import math

import numpy as np
import pytest

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


def seen_from(bpy, scene, viewer, painter):
    """Where each pixel of `viewer` lands in `painter`'s picture, and whether `painter` paints
    it well: the projection rule worked in numpy from the two cameras' depth renders."""
    from characterforge_addon.blender.rig import joints
    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.rig import projection
    from characterforge_addon.core.shots import set_projection as rule
    mv, mp = joints.camera_model(scene, viewer), joints.camera_model(scene, painter)
    dv, dp = set_projection.set_depth(scene, viewer), set_projection.set_depth(scene, painter)
    surface = dv < rule.BACKGROUND_DEPTH
    points = projection.unproject(mv, np.where(surface, dv, 1.0)).reshape(-1, 3)
    to_world = np.linalg.inv(mv.world_to_camera)
    xy, d = projection.project(mp, points @ to_world[:3, :3].T + to_world[:3, 3])
    ix, iy = np.clip(xy[:, 0].astype(int), 0, W - 1), np.clip(xy[:, 1].astype(int), 0, H - 1)
    data = rule.layer_data(mp, dp)
    seen = projection.in_frame(xy, d, (W, H)) & (np.abs(d - data[iy, ix, 0]) < rule.DEPTH_TOLERANCE * d)
    seen = seen.reshape(H, W) & surface
    good = seen & (data[iy, ix, 1] > 0.5).reshape(H, W)
    return good, seen, (iy.reshape(H, W), ix.reshape(H, W)), surface


@pytest.mark.smoke
def test_a_projection_is_seen_by_a_second_camera_where_the_first_painted_and_a_fill_paints_only_the_holes(
        bpy, scene, tmp_path):
    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.shots import set_projection as rule
    from characterforge_addon.core.image_io import encode_png
    (a, b), wall, own = build_set(bpy, scene)
    picture = gradient(tmp_path / "a.png")
    set_projection.project(bpy.context, a, str(tmp_path / "a.png"))
    assert all(slot.material.name == set_projection.MATERIAL for o in set_projection.set_objects(scene)
               for slot in o.material_slots)

    # camera A sees its own picture back (one level of 8-bit rounding)
    back = set_projection.render_view(scene, a)
    good_a, _, _, _ = seen_from(bpy, scene, a, a)
    assert good_a.mean() > 0.8 and np.abs(back[good_a].astype(int) - picture[good_a]).max() <= 1

    # camera B: covered exactly where the rule says A paints well, with A's colours there
    coverage = set_projection.render_view(scene, b, coverage=True) > 0.5
    expected, seen, (iy, ix), surface = seen_from(bpy, scene, b, a)
    assert 0.2 < expected.mean() < 0.6 and (coverage == expected).mean() > 0.995
    before = set_projection.render_view(scene, b)
    both = coverage & expected
    assert np.percentile(np.abs(before[both].astype(int) - picture[iy, ix][both]), 99) <= 2
    holes = rule.unpainted(surface, set_projection.render_view(scene, b, coverage=True))
    assert (holes == (surface & ~coverage)).all() and holes.mean() > 0.2
    magenta = np.all(before == (255, 0, 255), -1)  # the hole colour: only where A paints nothing well
    assert magenta.mean() > 0.1 and not (magenta & ~holes).any() and (magenta & seen).mean() < 0.1

    # a fill from B: the picture a backend would return (context kept, holes made), projected
    made = before.copy()
    made[holes] = (20, 200, 40)
    (tmp_path / "b.png").write_bytes(encode_png(made))
    set_projection.project(bpy.context, b, str(tmp_path / "b.png"), claimed=holes)
    after = set_projection.render_view(scene, b)
    assert np.abs(after[~holes & surface].astype(int) - before[~holes & surface]).max() <= 1  # painted: unchanged
    assert (np.abs(after[holes].astype(int) - (20, 200, 40)).max(-1) <= 1).mean() > 0.995  # holes: filled
    assert set_projection.render_view(scene, b, coverage=True)[surface].min() > 0.5
    assert np.abs(set_projection.render_view(scene, a)[good_a].astype(int) - picture[good_a]).max() <= 1

    # removing the projection gives every object its own materials back
    set_projection.remove(scene)
    assert wall.material_slots[0].material == own and "characterforge_set_layers" not in scene
    assert not bpy.data.objects["Plane"].material_slots  # the floor had no material: it has none again
    assert set_projection.MATERIAL not in bpy.data.materials


@pytest.mark.smoke
def test_the_dome_makes_the_sky_part_of_the_set_but_stays_out_of_the_depth_control(bpy, scene, tmp_path):
    from characterforge_addon.blender.generation import generation
    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.shots import set_projection as rule
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

    from characterforge_addon.blender.generation import jobs
    from characterforge_addon.blender.sets import set_projection, sets
    from characterforge_addon.core.shots import set_projection as rule
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
