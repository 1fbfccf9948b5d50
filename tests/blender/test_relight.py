"""Relighting from the sidebar and headless (tiny profile, real backend): a composite relit by the
scene's sun inside the characters' masks (every pixel outside kept, the original kept as a
variant), a moved sun changing it, one character alone, Composite Characters with Relight on,
Regenerate, the Shot section drawing it, and the refusals a user can meet: a camera moved since
the picture was made, a scene without light."""

import json
import math

import numpy as np
import pytest
from PIL import Image, ImageFilter

from test_panels import draw_all
from test_shots import run, shown, two_rigs


def lit_scene(bpy, scene, tmp_path):
    s = two_rigs(bpy, scene, tmp_path)
    bpy.ops.mesh.primitive_plane_add(size=20)  # the floor the characters stand on
    sun = bpy.data.objects.new("Key", bpy.data.lights.new("Key", "SUN"))
    scene.collection.objects.link(sun)
    sun.data.energy = 4.0
    sun.rotation_euler = (math.radians(50), 0.0, math.radians(-70))  # from the left, in front
    s.light_samples, s.light_scale = 2, 0.5
    bpy.context.view_layer.update()
    return s, sun


def pixels(obj):
    return np.asarray(Image.open(json.loads(obj["characterforge_files"])[0]).convert("RGB"))


def near(mask, px):
    return np.asarray(Image.fromarray(mask).filter(ImageFilter.MaxFilter(2 * px + 1))) > 0


def masks(tmp_path):
    folder = tmp_path / "results" / "Duel" / "relight" / "controls"
    return {name: np.asarray(Image.open(folder / f"mask_{name}.png")) > 0 for name in ("Hero", "Rival")}


def relight(bpy, obj):
    bpy.context.view_layer.objects.active = obj
    run(bpy, bpy.ops.characterforge.relight)


def test_relight_a_composite_with_the_scenes_sun(bpy, scene, tmp_path, backend_env):
    s, sun = lit_scene(bpy, scene, tmp_path)
    shot = bpy.data.collections["Duel"]
    run(bpy, bpy.ops.characterforge.make_shot)
    (composite,) = shown(shot, "picture")
    relight(bpy, composite)
    (relit,) = shown(shot, "picture")
    assert relit != composite and composite.hide_render and relit["characterforge_source"] == composite.name
    before, after = pixels(composite), pixels(relit)
    found = masks(tmp_path)
    touched = near(found["Hero"] | found["Rival"], s.composite_grow + s.composite_feather + 1)
    assert np.array_equal(before[~touched], after[~touched])  # every pixel outside the masks kept
    for mask in found.values():
        assert np.abs(before[mask].astype(int) - after[mask]).mean() > 2  # the characters relit
    record = json.loads(Image.open(json.loads(relit["characterforge_files"])[0]).text["characterforge"])["relight"]
    assert record["words"] == {"subject": "the characters", "light": "key light from the upper left"}
    assert record["steered_by"] == ["depth"] and set(record["identity"]["by_character"]) == {"Hero", "Rival"}
    assert record["agreement"]["reshaded"] > record["agreement"]["before"]
    job = json.loads(relit["characterforge_job"])
    assert job["kind"] == "relight" and job["light"]["view"]["camera"] == "Camera" and "image" not in job["light"]
    bpy.context.view_layer.objects.active = relit
    assert any(c[0] == "label" and "shading follows the light" in c[1] for c in draw_all(bpy)["Shot"])
    assert ("operator", "characterforge.relight") in draw_all(bpy)["Shot"]

    # the sun moved to the right: relit again from the same composite, the characters change
    sun.rotation_euler = (math.radians(50), 0.0, math.radians(70))
    bpy.context.view_layer.update()
    relight(bpy, composite)
    (moved,) = shown(shot, "picture")
    inside = found["Hero"] | found["Rival"]
    assert np.abs(pixels(moved)[inside].astype(int) - after[inside]).mean() > 1
    assert json.loads(Image.open(json.loads(moved["characterforge_files"])[0]).text["characterforge"])[
        "relight"]["words"]["light"] == "key light from the upper right"

    # one character only: the Rival stays as he was
    s.relight_target, s.relight_rig = "CHARACTER", "Hero"
    relight(bpy, composite)
    (hero_only,) = shown(shot, "picture")
    rival_only = found["Rival"] & ~near(found["Hero"], 12)
    assert np.array_equal(pixels(hero_only)[rival_only], before[rival_only])
    assert not np.array_equal(pixels(hero_only)[found["Hero"]], before[found["Hero"]])

    # Regenerate runs the relight again from its source picture
    bpy.ops.characterforge.show_result(name=hero_only.name)
    bpy.context.view_layer.objects.active = hero_only
    run(bpy, lambda: bpy.ops.characterforge.regenerate(new_seed=True))
    (again,) = shown(shot, "picture")
    assert json.loads(again["characterforge_job"])["kind"] == "relight" and again["characterforge_source"] == composite.name

    # refused with the reason: the camera moved since the composite was made, then no light at all
    s.relight_target = "CHARACTERS"
    scene.camera.location.x += 0.4
    bpy.context.view_layer.update()
    bpy.context.view_layer.objects.active = composite
    with pytest.raises(RuntimeError, match="has moved or turned since the picture was made"):
        bpy.ops.characterforge.relight()
    scene.camera.location.x -= 0.4
    sun.hide_render = True
    bpy.context.view_layer.update()
    with pytest.raises(RuntimeError, match="the scene has no light to relight with"):
        bpy.ops.characterforge.relight()
    sun.hide_render = False

    # Composite Characters with Relight on: the relit composite shown, the unlit one kept beside it
    s.relight_composite = True
    run(bpy, bpy.ops.characterforge.make_shot)
    (lit,) = shown(shot, "picture")
    unlit = next(o for o in shot.objects if o.get("characterforge_job_id") == lit["characterforge_job_id"]
                 and o != lit)
    assert unlit.name.startswith("Duel_shot_seed7_unlit")
    assert unlit.hide_render and json.loads(lit["characterforge_job"])["relight"]["light"]["white"] > 0
    assert not np.array_equal(pixels(lit), pixels(unlit)) and "characterforge_relight" in lit
