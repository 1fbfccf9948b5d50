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
                                "blender_scripts", "bench"))
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
    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.shots import set_projection as rule
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


def painted_from_a_and_b(bpy, folder):
    """set_scene's set painted from A (its picture) and filled from B (its view of the painted
    set, the holes given another picture, as a fill job returns it). Returns (scene, cameras,
    pictures, what A and B saw, A's view before B's fill)."""
    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.shots import set_projection as rule
    from characterforge_addon.core.image_io import encode_png
    scene, cameras = set_scene.build(bpy, (W, H))
    pictures = {"A": set_scene.picture(W, H, 1)}
    (folder / "A.png").write_bytes(encode_png(pictures["A"]))
    set_projection.project(bpy.context, cameras["A"], str(folder / "A.png"))
    a_before = set_projection.render_view(scene, cameras["A"])
    b = cameras["B"]
    seen = {name: set_projection.set_depth(scene, cameras[name]) < rule.BACKGROUND_DEPTH for name in "AB"}
    holes = rule.unpainted(seen["B"], set_projection.render_view(scene, b, coverage=True))
    made = set_projection.render_view(scene, b)
    made[holes] = set_scene.picture(W, H, 2)[holes]
    pictures["B"] = made
    (folder / "B.png").write_bytes(encode_png(made))
    set_projection.project(bpy.context, b, str(folder / "B.png"))
    return scene, cameras, pictures, seen, a_before


def test_from_each_camera_that_painted_the_set_a_plain_render_shows_its_picture(bpy, tmp_path):
    """The issue's case: a ground plane seen from eye height, A and B 50 degrees apart. A plain
    render (the scene's own Cycles settings: 16 samples, pixel filter) from A and from B shows
    that camera's picture under Standard and AgX (the view transform left as the user set it),
    and B's fill changed nothing A sees."""
    import user_render

    from characterforge_addon.blender.generation import view_colours
    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.shots import picture_match
    scene, cameras, pictures, seen, a_before = painted_from_a_and_b(bpy, tmp_path)
    after = set_projection.render_view(scene, cameras["A"])
    assert np.abs(after[seen["A"]].astype(int) - a_before[seen["A"]]).max() <= 1
    assert np.abs(a_before[seen["A"]].astype(int) - pictures["A"][seen["A"]]).max() <= 1
    for view, mean, p95 in (("Standard", 1.0, 6.0), ("AgX", 2.0, 12.0)):  # AgX's inverse is close, not exact
        scene.view_settings.view_transform = view
        view_colours.match(scene)  # what the UI's message bus does when the user picks another view
        for name in "AB":
            figure = picture_match.difference(user_render.render(bpy, scene, cameras[name]), pictures[name], seen[name])
            assert figure["mean"] <= mean and figure["p95"] <= p95, (view, name, figure)
        assert scene.view_settings.view_transform == view


def test_a_camera_between_two_painters_sees_the_rules_blend_without_seams(bpy, tmp_path):
    """Camera C, halfway between A and B: its view of the set is core.view_blend's blend of the two
    pictures (in linear light) worked in numpy; with A's picture all red and B's all blue, where
    both saw the surface no step between neighbouring pixels exceeds the stated figure."""
    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.shots import set_projection as rule
    from characterforge_addon.core.image_io import encode_png
    scene, cameras, pictures, _, _ = painted_from_a_and_b(bpy, tmp_path)
    c = cameras["C"]
    expected = set_scene.reference(bpy, scene, c, [cameras["A"], cameras["B"]])

    def linear(levels):
        v = np.asarray(levels, np.float64) / 255
        return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)

    def display(v):
        v = np.clip(v, 0, 1)
        return 255 * np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)
    colours = np.stack([linear(pictures[n][expected["where"][i]]) for i, n in enumerate("AB")])
    blend = display((colours * expected["weights"][..., None]).sum(0))
    shown = set_projection.render_view(scene, c).astype(np.float64)
    some = expected["trusted"] & (expected["seen"][0] | expected["seen"][1])
    diff = np.abs(shown - blend).mean(-1)[some]
    assert some.mean() > 0.8 and diff.mean() < 3.0 and np.percentile(diff, 90) < 6.0, (diff.mean(), np.percentile(diff, 90))

    for layer, colour in zip(set_projection.layers(scene), ((230, 20, 20), (20, 20, 230))):
        with open(layer["picture"], "wb") as f:
            f.write(encode_png(np.full((H, W, 3), colour, np.uint8)))
        bpy.data.images.load(layer["picture"], check_existing=True).reload()
    red = set_projection.render_view(scene, c)[..., 0].astype(int)
    both = ~rule.depth_edges(set_projection.set_depth(scene, c)) & expected["seen"][0] & expected["seen"][1]
    steps = np.concatenate([np.abs(np.diff(red, axis=axis))[np.take(both, range(0, both.shape[axis] - 1), axis=axis)
                                                            & np.take(both, range(1, both.shape[axis]), axis=axis)]
                            for axis in (0, 1)])
    assert both.mean() > 0.3 and np.percentile(steps, 99) <= SEAM, np.percentile(steps, 99)


SEAM = 80  # levels of red between neighbouring pixels (99th percentile, 128x96; measured 68): the old rule's switch, 210
