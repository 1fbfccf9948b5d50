"""Shots in Blender (tiny profile, real backend): two rigs composited into the background in
place and cut out, the planes where they belong, variants replacing each other per layer, an
expression edit that keeps the original, and the errors a user can run into."""

import json
import math

import numpy as np
import pytest
from PIL import Image, ImageFilter

from test_background import frame_corners_px


def two_rigs(bpy, scene, tmp_path):
    from characterforge_addon.blender.rig import rig
    from characterforge_addon.core.image_io import encode_png
    scene.render.resolution_x, scene.render.resolution_y = 192, 128
    scene.camera.location = (0.0, -2.6, 1.35)
    scene.camera.rotation_euler = (math.radians(90), 0.0, 0.0)
    rig.add_rig(bpy.context, "Hero", 1.75, "ADULT", (-0.45, 0, 0))
    rig.add_rig(bpy.context, "Rival", 1.75, "ADULT", (0.45, 0, 0))
    bpy.context.view_layer.update()
    picture = tmp_path / "courtyard.png"
    picture.write_bytes(encode_png(np.random.default_rng(0).integers(0, 255, (128, 192, 3), dtype=np.uint8)))
    s = scene.characterforge
    s.background_image, s.shot, s.results_dir = str(picture), "Duel", str(tmp_path / "results")
    s.prompt, s.steps, s.random_seed, s.seed = "a person", 2, False, 7
    s.composite_grow, s.composite_feather = 6, 3
    scene.objects["Hero"].characterforge.prompt = "a knight in silver armour"
    scene.objects["Rival"].characterforge.prompt = "a witch in a dark cloak"
    assert bpy.ops.characterforge.make_background() == {"FINISHED"}
    return s


def run(bpy, operator):
    from characterforge_addon.blender.generation import jobs
    assert operator() == {"FINISHED"}
    jobs.wait_all(timeout=600)
    s = bpy.context.scene.characterforge
    assert s.job_state == "completed", s.job_message


def shown(collection, layer):
    return [o for o in collection.objects if o.get("characterforge_layer", "").split(":")[0] == layer
            and not o.hide_render]


def test_composite_cutout_and_expression(bpy, scene, tmp_path, backend_env):
    from characterforge_addon.blender.generation import planes
    s = two_rigs(bpy, scene, tmp_path)
    shot = bpy.data.collections["Duel"]
    run(bpy, bpy.ops.characterforge.make_shot)
    (composite,) = shown(shot, "picture")
    bpy.context.view_layer.update()
    assert composite.location.z == pytest.approx(-scene.camera.data.clip_start * planes.NEAR["picture"])
    corners = frame_corners_px(bpy, scene, composite)
    assert np.abs(np.sort(corners[:, 0]) - [0, 0, 192, 192]).max() < 1
    assert np.abs(np.sort(corners[:, 1]) - [0, 0, 128, 128]).max() < 1
    assert shown(shot, "background")  # the background stays behind the composite
    job = json.loads(composite["characterforge_job"])
    assert [c["name"] for c in job["characters"]] == ["Hero", "Rival"] and job["kind"] == "shot"
    assert job["characters"][1]["prompt"] == "a witch in a dark cloak" and job["hands"]["boxes"]
    record = json.loads(Image.open(json.loads(composite["characterforge_files"])[0]).text["characterforge"])
    assert record["mode"] == "inpaint" and record["hands"]["redrawn"]
    assert json.loads(composite["characterforge_scores"])["pose"]  # scores kept on the plane with the job

    s.composite_mode = "CUTOUT"
    run(bpy, bpy.ops.characterforge.make_shot)
    hero_cut, rival_cut = sorted(shown(shot, "cutout"), key=lambda o: o.name)
    assert hero_cut.name.endswith("_cutout_Hero") and rival_cut.name.endswith("_cutout_Rival")
    (new_composite,) = shown(shot, "picture")
    assert new_composite != composite and composite.hide_render  # the earlier variant kept, hidden
    bpy.context.view_layer.update()
    for cut in (hero_cut, rival_cut):  # between the composite and the background, filling the frame
        assert cut.location.z == pytest.approx(-scene.camera.data.clip_start * planes.NEAR["cutout"])
        corners = frame_corners_px(bpy, scene, cut)
        assert np.abs(np.sort(corners[:, 0]) - [0, 0, 192, 192]).max() < 1
        assert np.abs(np.sort(corners[:, 1]) - [0, 0, 128, 128]).max() < 1
    cut_pixels = np.asarray(Image.open(json.loads(hero_cut["characterforge_files"])[0]))
    assert cut_pixels.shape[2] == 4 and 0 < (cut_pixels[..., 3] > 0).mean() < 0.4
    hero_mask = np.asarray(Image.open(tmp_path / "results" / "Duel" / "controls" / "mask_Hero.png")) > 0
    near = np.asarray(Image.fromarray(hero_mask).filter(ImageFilter.MaxFilter(13))) > 0  # 6 px around
    assert not cut_pixels[..., 3][~near].any()  # the Hero's cut-out holds the Hero only (edge + feather)

    bpy.ops.characterforge.show_result(name=composite.name)
    s.expression, s.expression_rig = "SAD", "Hero"
    run(bpy, bpy.ops.characterforge.make_expression)
    (sad,) = shown(shot, "picture")
    assert sad.name.endswith("_sad") and composite.hide_render and composite.name in shot.objects
    before = np.asarray(Image.open(json.loads(composite["characterforge_files"])[0]).convert("RGB"))
    after_file = json.loads(sad["characterforge_files"])[0]
    after = np.asarray(Image.open(after_file).convert("RGB"))
    edit = json.loads(Image.open(after_file).text["characterforge"])
    x0, y0, x1, y1 = edit["changed_within"]
    inside = np.zeros(before.shape[:2], bool)
    inside[y0:y1, x0:x1] = True
    assert np.array_equal(before[~inside], after[~inside]) and not np.array_equal(before[inside], after[inside])
    assert x1 <= 96 and edit["expression"] == "sad"  # Hero's face, on the left half

    # Regenerate runs each plane's own kind of job again
    bpy.ops.characterforge.show_result(name=sad.name)
    run(bpy, lambda: bpy.ops.characterforge.regenerate(new_seed=True))
    (again,) = shown(shot, "picture")
    assert again != sad and json.loads(again["characterforge_job"])["kind"] == "expression"
    assert again["characterforge_source"] == composite.name
    bpy.ops.characterforge.show_result(name=new_composite.name)
    run(bpy, lambda: bpy.ops.characterforge.regenerate(new_seed=False))
    (redone,) = shown(shot, "picture")
    assert json.loads(redone["characterforge_job"])["kind"] == "shot" and redone["characterforge_seed"] == 7


def test_shot_errors_say_what_to_do(bpy, scene, tmp_path):
    from characterforge_addon.blender.rig import rig
    rig.add_rig(bpy.context, "Hero", 1.75, "ADULT", (0, 0, 0))
    s = scene.characterforge
    s.shot, s.results_dir = "Empty", str(tmp_path / "r")
    with pytest.raises(RuntimeError, match="has no background yet"):
        bpy.ops.characterforge.make_shot()
    s.background_image = str(tmp_path / "bg.png")
    from characterforge_addon.core.image_io import encode_png
    (tmp_path / "bg.png").write_bytes(encode_png(np.zeros((64, 64, 3), np.uint8)))
    bpy.ops.characterforge.make_background()
    scene.objects["Hero"].characterforge.character = "Nobody"
    with pytest.raises(RuntimeError, match="plays character 'Nobody', which is not in Characters"):
        bpy.ops.characterforge.make_shot()
    scene.objects["Hero"].location.x = 40.0  # out of the camera's view
    with pytest.raises(RuntimeError, match="sees none of the rigs"):
        bpy.ops.characterforge.make_shot()


def test_new_seeds_fit_blenders_int_properties(bpy, scene):
    """A random seed becomes the Seed field and a custom property of the plane: both signed 32-bit."""
    from characterforge_addon.blender.generation import job_inputs
    s = scene.characterforge
    s.random_seed = True
    seeds = [job_inputs.pick_seed(s) for _ in range(2000)]
    assert all(0 <= seed < 2**31 for seed in seeds) and max(seeds) > 2**30  # the whole range, not a corner
    s.seed = max(seeds)
    scene["characterforge_seed"] = max(seeds)
