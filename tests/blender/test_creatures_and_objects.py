"""Creatures and objects as characters: sheets of a four-legged creature (made here), a car-like
block mesh and a collection, each view filling its cell and no OpenPose map sent; depth,
normals and line art exact against a cube's own geometry; bad input refused with the fix; and
end to end through the tiny backend: a pack of each kind and a shot with a human and a
creature."""

import json
import math
import os

import numpy as np
import pytest

from creature_scene import car, cube, parts_collection, quadruped

SHEET = (768, 512)


def subject(bpy, thing):
    from characterforge_addon.blender.characters import subjects
    return subjects.subject_of(thing)


@pytest.mark.smoke
@pytest.mark.parametrize("kind", ["creature", "car", "collection"])
def test_object_sheets_fill_every_cell_and_carry_no_openpose(bpy, scene, tmp_path, kind):
    from characterforge_addon.blender.characters.object_sheet import render_object_sheet
    from characterforge_addon.core.characters import sheet_layout
    from characterforge_addon.core.image_io import decode_png
    thing = {"creature": quadruped, "car": car, "collection": parts_collection}[kind]()
    if kind == "creature":  # a posed creature: its sheet shows the pose its armature has
        thing.pose.bones["leg.FL"].rotation_mode = "XYZ"
        thing.pose.bones["leg.FL"].rotation_euler = (math.radians(50), 0, 0)
    objects = sorted(o.name for o in bpy.data.objects)
    record = render_object_sheet(bpy.context, subject(bpy, thing), str(tmp_path), *SHEET)
    assert sorted(o.name for o in bpy.data.objects) == objects  # the user's scene untouched
    assert record["files"] == ["depth.png", "lineart.png", "normal.png"]  # no OpenPose map
    assert record["kind"] == ("creature" if kind == "creature" else "object")
    whole = [v for v in record["views"] if v["kind"] == "body"]
    assert [v["name"] for v in whole][:4] == ["front", "three_quarter", "side", "back"]
    assert whole[-1]["name"] == "top" and whole[-1]["elevation"] == 90  # a broad footprint gains a top view
    depth = decode_png(open(tmp_path / "depth.png", "rb").read())
    for view in record["views"]:
        x0, y0, x1, y1 = view["cell"]
        shown = depth[y0:y1, x0:x1] > 0
        rows, cols = np.flatnonzero(shown.any(axis=1)), np.flatnonzero(shown.any(axis=0))
        fill = max((cols[-1] + 1 - cols[0]) / (x1 - x0), (rows[-1] + 1 - rows[0]) / (y1 - y0))
        assert fill >= sheet_layout.MIN_FILL, (view["name"], fill)  # measured on the rendered map itself
        assert view["fill"] == pytest.approx(fill, abs=0.01)
    details = [v for v in record["views"] if v["kind"] == "detail"]
    assert len(details) == 2 and details[0]["part"] == record["detail_part"]
    assert record["detail_part"] == {"creature": "spine", "car": "Car part 1", "collection": "Cart Box"}[kind]
    if kind == "creature":  # the raised leg reaches forward in the side view: the pose is followed
        side = next(v for v in whole if v["name"] == "side")
        assert side["box"][2] - side["box"][0] > 0


def test_the_sheet_job_sends_shape_maps_and_no_openpose(bpy, scene, tmp_path, monkeypatch):
    from characterforge_addon.blender.characters import characters
    from characterforge_addon.blender.generation import jobs
    from characterforge_addon.core.spec.job_spec import validate_job
    sent = []
    monkeypatch.setattr(jobs, "start", lambda context, spec, out_dir, done: sent.append(spec))
    monkeypatch.setenv("CHARACTERFORGE_CHARACTERS", str(tmp_path / "characters"))
    beast = quadruped()
    s = scene.characterforge
    s.character_name, s.prompt, s.results_dir = "Beast", "a green lizard", str(tmp_path / "results")
    s.sheet_width, s.sheet_height = SHEET
    bpy.context.view_layer.objects.active = beast.children[0]  # its body stands for the creature
    characters.make_sheet(bpy.context)
    spec = validate_job(sent[0])
    assert spec["subject"] == "creature" and set(spec["controls"]) == {"depth", "normal", "lineart"}
    assert "openpose" not in spec["controls"] and not spec["faces"]["enabled"]
    assert {v["kind"] for v in spec["views"]} == {"body", "detail"} and "creature design sheet" in spec["style"]


def _ray_box(origins, direction, half):
    """Distance along `direction` to an axis-aligned box of half-size `half` at the origin, and
    the face normal hit (slab method), for each origin (N, 3); inf where missed."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t0 = (-half - origins) / direction
        t1 = (half - origins) / direction
    near = np.minimum(t0, t1)
    far = np.maximum(t0, t1)
    t_in, t_out = near.max(axis=1), far.min(axis=1)
    hit = t_in <= t_out
    axis = near.argmax(axis=1)
    normal = np.zeros_like(origins)
    normal[np.arange(len(origins)), axis] = -np.sign(direction[axis])
    return np.where(hit, t_in, np.inf), normal


def test_depth_normals_and_line_art_are_exact_on_a_cube(bpy, scene, tmp_path):
    """A unit cube seen by an orthographic camera from above and to the side: every pixel's depth
    and normal equal the ray's own hit, and the line art lies on the cube's visible edges
    (its outline and the three edges it turns at)."""
    from mathutils import Matrix, Vector

    from characterforge_addon.blender.maps.passes import INDEX_BASE, render_passes
    from characterforge_addon.blender.maps.shape_maps import render_normals, shape_maps
    box = cube()
    cam = scene.camera
    cam.data.type, cam.data.ortho_scale = "ORTHO", 2.4
    scene.render.resolution_x = scene.render.resolution_y = 96
    direction = np.array((0.55, -0.7, 0.45))  # from the cube towards the camera
    direction /= np.linalg.norm(direction)
    right = np.cross(-direction, (0, 0, 1))
    right /= np.linalg.norm(right)
    up = np.cross(direction, right)
    cam.matrix_world = Matrix.Translation(Vector(direction * 6)) @ Matrix(
        (Vector(right), Vector(up), Vector(direction))).transposed().to_4x4()
    cam.data.clip_start, cam.data.clip_end = 0.1, 20
    bpy.context.view_layer.update()
    depth, index = render_passes(scene, cam, {box: INDEX_BASE + 1})
    normals = render_normals(scene, cam)
    shown = np.rint(index) == INDEX_BASE + 1

    n = 96
    pixel = 2.4 / n
    xs = (np.arange(n) + 0.5) * pixel - 1.2
    grid_x, grid_y = np.meshgrid(xs, -xs)  # rows top-down
    origins = direction * 6 + grid_x[..., None] * right + grid_y[..., None] * up
    t, normal = _ray_box(origins.reshape(-1, 3), -direction, np.full(3, 0.5))
    t, normal = t.reshape(n, n), normal.reshape(n, n, 3)
    hit = np.isfinite(t)
    assert np.array_equal(shown, hit)  # the silhouette, pixel for pixel
    assert np.abs(depth[hit] - t[hit]).max() < 2e-3 * 6  # planar depth (half-float EXR: 0.05 %)
    camera_normal = normal @ np.stack([right, up, direction], axis=1)  # into the camera's frame
    faces = hit & (np.abs(np.diff(t, axis=1, prepend=t[:, :1])) < pixel * 2)
    assert np.abs(normals[faces] - camera_normal[faces]).max() < 1e-4  # the true face normal, every pixel

    lines = shape_maps(depth, normals, np.rint(index).astype(int), shown)["lineart"] > 0
    # the true edges: where a pixel's hit face differs from its right or lower neighbour's, or
    # where the cube ends
    face_id = np.where(hit, np.argmax(np.abs(normal), axis=-1) * 2 + (normal.sum(-1) > 0), -1)
    edge = np.zeros_like(hit)
    edge[:, :-1] |= face_id[:, :-1] != face_id[:, 1:]
    edge[:, 1:] |= face_id[:, :-1] != face_id[:, 1:]
    edge[:-1] |= face_id[:-1] != face_id[1:]
    edge[1:] |= face_id[:-1] != face_id[1:]
    edge &= hit
    near = np.zeros_like(edge)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= np.roll(np.roll(edge, dy, 0), dx, 1)
    assert lines.sum() > 100 and not (lines & ~near).any()  # every line on a true edge
    found = np.zeros_like(lines)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            found |= np.roll(np.roll(lines, dy, 0), dx, 1)
    assert (edge & ~found).sum() <= 0.02 * edge.sum()  # and (almost) every true edge drawn


@pytest.mark.smoke
def test_bad_characters_are_refused_with_the_fix(bpy, scene, tmp_path):
    from mathutils import Vector

    from characterforge_addon.blender.characters import subjects
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.core.errors import UserError
    empty = bpy.data.collections.new("Empty")
    scene.collection.children.link(empty)
    with pytest.raises(UserError, match="collection 'Empty' holds no mesh"):
        subjects.subject_of(empty)
    mesh = bpy.data.meshes.new("Wire")
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 1, 0)], [(0, 1), (1, 2)], [])
    wire = bpy.data.objects.new("Wire", mesh)
    scene.collection.objects.link(wire)
    with pytest.raises(UserError, match="'Wire' has no faces.*fill it"):
        subjects.subject_of(wire)
    with pytest.raises(UserError, match="a camera.*armature with meshes, a mesh or a collection"):
        subjects.subject_of(scene.camera)
    bones = bpy.data.objects.new("Bones", bpy.data.armatures.new("Bones"))
    scene.collection.objects.link(bones)
    with pytest.raises(UserError, match="armature 'Bones' has no meshes"):
        subjects.subject_of(bones)
    box = car(location=tuple(scene.camera.location - Vector((0, 0, 0.65))))  # the camera sits inside its body
    box.characterforge.is_character = True
    with pytest.raises(UserError, match="camera 'Camera' is inside 'Car'"):
        controls.render_controls(bpy.context, str(tmp_path))


def test_shot_maps_of_a_human_and_a_posed_creature(bpy, scene, tmp_path):
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.blender.rig import rig
    from characterforge_addon.core.image_io import decode_png
    rig.add_rig(bpy.context, "Hero", 1.75, "ADULT", (-0.8, 0, 0))
    beast = quadruped(location=(1.0, 0, 0))
    beast.rotation_euler = (0, 0, math.radians(90))  # side on to the camera
    beast.characterforge.is_character = True
    manifest = controls.render_controls(bpy.context, str(tmp_path / "a"), preview=False)
    assert manifest["kinds"] == {"Hero": "humanoid", "Beast": "creature"}
    assert {"mask_Hero.png", "mask_Beast.png", "normal.png", "lineart.png", "openpose.png"} <= set(manifest["files"])
    assert [p["name"] for p in manifest["people"]] == ["Hero"]  # only the human has a skeleton

    def read(folder, name):
        return decode_png(open(tmp_path / folder / name, "rb").read())
    hero, creature = read("a", "mask_Hero.png") > 0, read("a", "mask_Beast.png") > 0
    lines = read("a", "lineart.png") > 0
    assert creature.sum() > 200 and not (hero & creature).any()
    assert lines[creature].any() and not lines[hero & ~np.roll(creature, 2, 1)].any()  # the creature's lines only
    beast.pose.bones["leg.FL"].rotation_mode = "XYZ"
    beast.pose.bones["leg.FL"].rotation_euler = (math.radians(60), 0, 0)  # posed: the maps follow the armature
    controls.render_controls(bpy.context, str(tmp_path / "b"), preview=False)
    moved = read("b", "mask_Beast.png") > 0
    assert (moved != creature).sum() > 20 and not np.array_equal(read("a", "normal.png"), read("b", "normal.png"))


def test_packs_of_each_kind_and_a_shot_with_a_human_and_a_creature(bpy, scene, tmp_path, backend_env, monkeypatch):
    """End to end on the tiny profile: a sheet and pack of a collection (an object) and of a
    creature, then a shot where the human and the creature each keep their own identity in
    their own mask, with the appearance score on the output."""
    from characterforge_addon.blender.characters import characters
    from characterforge_addon.blender.generation import jobs, planes
    from characterforge_addon.blender.rig import rig
    from characterforge_addon.core.characters import identity_pack
    monkeypatch.setenv("CHARACTERFORGE_CHARACTERS", str(tmp_path / "characters"))
    s = scene.characterforge
    s.steps, s.random_seed, s.seed, s.results_dir = 1, False, 3, str(tmp_path / "results")
    s.sheet_width, s.sheet_height, s.sheet_upscale, s.sheet_detail_views = 512, 256, 1.0, "front"
    cart = parts_collection(location=(4.0, 3.0, 0.0))
    beast = quadruped(location=(1.0, 0.0, 0.0))
    for name, thing, prompt in (("Cart", cart, "a wooden cart"), ("Beast", beast, "a green lizard")):
        s.character_name, s.prompt, s.sheet_subject = name, prompt, thing.name
        assert bpy.ops.characterforge.make_sheet() == {"FINISHED"}
        jobs.wait_all(timeout=600)
        assert s.job_state == "completed", s.job_message
    cart_pack = identity_pack.load_pack(str(tmp_path / "characters" / "Cart"))
    beast_pack = identity_pack.load_pack(str(tmp_path / "characters" / "Beast"))
    assert cart_pack["kind"] == "object" and beast_pack["kind"] == "creature"
    for pack in (cart_pack, beast_pack):
        assert pack["faces"] == [] and len(pack["details"]) == 1 and len(pack["views"]) >= 4
        assert all(len(v["appearance"]) == 32 for v in pack["views"]) and len(pack["appearance"]) == 32
    plane = bpy.data.collections[characters.SHEETS_COLLECTION].objects["Beast sheet"]
    assert planes.score_lines(plane)[-1].startswith("Appearance across views: mean ")

    # the shot: a human and the creature, each with its own pack
    bpy.data.objects.remove(bpy.data.objects["Cart Box"])
    s.sheet_subject = ""
    hero = rig.add_rig(bpy.context, "Hero", 1.75, "ADULT", (-0.9, 0, 0))
    beast.characterforge.is_character = True
    beast.characterforge.character, beast.characterforge.prompt = "Beast", "a green lizard"
    hero.characterforge.prompt = "a knight"
    scene.render.resolution_x = scene.render.resolution_y = 128
    s.background_image = str(tmp_path / "results" / "sheets" / "Cart" / "sheet.png")
    s.shot, s.background_use_set_depth, s.fix_hands = "Meeting", False, False
    assert bpy.ops.characterforge.make_background() == {"FINISHED"}
    jobs.wait_all(timeout=120)
    sent = []
    real = jobs.start
    monkeypatch.setattr(jobs, "start", lambda context, spec, *a, **k: sent.append(spec) or real(context, spec, *a, **k))
    assert bpy.ops.characterforge.make_shot() == {"FINISHED"}
    jobs.wait_all(timeout=600)
    assert s.job_state == "completed", s.job_message
    characters_sent = {c["name"]: c for c in sent[0]["characters"]}
    assert characters_sent["Beast"]["kind"] == "creature" and characters_sent["Hero"]["kind"] == "humanoid"
    assert characters_sent["Beast"]["identity"]["scale"] == 0 and "appearance" in characters_sent["Beast"]["identity"]
    assert "openpose" in sent[0]["controls"] and {"normal", "lineart"} <= set(sent[0]["controls"])
    shot = [o for o in bpy.data.collections["CharacterForge Shots"].children["Meeting"].objects
            if o.get(planes.LAYER) == planes.PICTURE][0]
    found = json.loads(shot["characterforge_scores"])
    assert set(found["appearance_by_character"]) == {"Beast"}  # the human's pack was none: no score
    assert found["appearance_by_character"]["Beast"]["status"] == "ok"
    assert isinstance(shot["characterforge_appearance"], float)
    assert os.path.isfile(planes.file_of(shot))


def test_make_sheet_object_headless(bpy, scene, tmp_path):
    """`make_sheet.py --object NAME` as users run it: a separate process on a saved .blend."""
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    car()
    blend = str(tmp_path / "car.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)

    def run(*args):
        return subprocess.run([sys.executable, os.path.join(root, "blender_scripts", "make_sheet.py"), "--blend", blend,
                               "--name", "Car", "--maps-only", "--out", str(tmp_path), "--width", "512", "--height",
                               "384", *args], capture_output=True, text=True, timeout=600, cwd=root)
    result = run("--object", "Car", "--detail-views", "front")
    assert result.returncode == 0, result.stderr
    record = json.load(open(tmp_path / "Car" / "maps" / "sheet.json"))
    assert record["kind"] == "object" and record["files"] == ["depth.png", "lineart.png", "normal.png"]
    assert [v["name"] for v in record["views"]][-1] == "detail_front" and "object 'Car'" in result.stdout
    bad = run("--object", "Boat")
    assert bad.returncode == 1 and "no object or collection named 'Boat'" in bad.stderr
