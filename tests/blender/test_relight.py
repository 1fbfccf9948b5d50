"""Relighting from the sidebar and headless (tiny profile, real backend): a composite relit by the
scene's sun inside the characters' masks (every pixel outside kept, the original kept as a
variant), a moved sun changing it, one character alone, a creature relit as a character,
Composite Characters with Relight on,
Regenerate, the Shot section drawing it, and the refusals a user can meet: a camera moved since
the picture was made, a scene without light."""

import json
import math
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image, ImageFilter

from test_panels import draw_all
from test_shots import run, shown, two_rigs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "blender_scripts")


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
    assert json.loads(again["characterforge_job"])["kind"] == "relight"
    assert again["characterforge_source"] == composite.name

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


def test_a_creature_in_the_shot_is_relit_as_a_character(bpy, scene, tmp_path, backend_env):
    """A creature marked as a character is relit with the rigs (its mask, its kind sent), and can
    be relit alone under Whose light, the rigs kept as they were; so can a collection character,
    picked by one of its parts."""
    from creature_scene import quadruped
    s, _ = lit_scene(bpy, scene, tmp_path)
    s.fix_hands = False
    beast = quadruped(location=(0.0, 0.6, 0.0))  # between the two rigs, behind them
    beast.characterforge.is_character, beast.characterforge.prompt = True, "a green lizard"
    shot = bpy.data.collections["Duel"]
    run(bpy, bpy.ops.characterforge.make_shot)
    (composite,) = shown(shot, "picture")
    relight(bpy, composite)
    (relit,) = shown(shot, "picture")
    sent = json.loads(relit["characterforge_job"])["characters"]
    assert {c["name"]: c["kind"] for c in sent} == {"Hero": "humanoid", "Rival": "humanoid", "Beast": "creature"}
    folder = tmp_path / "results" / "Duel" / "relight" / "controls"
    beast_mask = np.asarray(Image.open(folder / "mask_Beast.png")) > 0
    people = np.asarray(Image.open(folder / "mask_Hero.png")) > 0
    assert beast_mask.sum() > 50

    s.relight_target, s.relight_rig = "CHARACTER", "Beast"
    relight(bpy, composite)
    (beast_only,) = shown(shot, "picture")
    assert [c["name"] for c in json.loads(beast_only["characterforge_job"])["characters"]] == ["Beast"]
    before, after = pixels(composite), pixels(beast_only)
    away = people & ~near(beast_mask, s.composite_grow + s.composite_feather + 1)
    assert away.any() and np.array_equal(before[away], after[away])
    assert np.abs(before[beast_mask].astype(int) - after[beast_mask]).mean() > 2

    # a collection playing a character: offered under Whose light, and relit alone when one of
    # its parts is the active object (Whose light empty)
    from creature_scene import parts_collection
    cart = parts_collection("Cart", location=(-1.0, 2.0, 0.0))
    cart.characterforge.is_character, cart.characterforge.prompt = True, "a wooden cart"
    assert any(c[0] == "label" and c[1].startswith("Collections: Cart ") for c in draw_all(bpy)["Shot"])
    s.relight_rig = ""
    bpy.context.view_layer.objects.active = bpy.data.objects["Cart Wheel.L"]
    run(bpy, bpy.ops.characterforge.relight)
    (cart_only,) = shown(shot, "picture")
    assert [(c["name"], c["kind"]) for c in json.loads(cart_only["characterforge_job"])["characters"]] == [
        ("Cart", "object")]
    assert cart_only["characterforge_source"] == beast_only.name


@pytest.fixture
def lit_blend(bpy, scene, tmp_path):
    """The lit duel saved: the Hero walks from frame 1 to 2 while the sun swings from the left to
    the right (a light rig that moves), the background picture behind them."""
    s, sun = lit_scene(bpy, scene, tmp_path)
    s.steps, s.fix_hands = 2, False
    hero = scene.objects["Hero"]
    for frame, x, angle in ((1, -0.45, -70), (2, -0.35, 70)):
        hero.location.x = x
        hero.keyframe_insert("location", frame=frame)
        sun.rotation_euler = (math.radians(50), 0.0, math.radians(angle))
        sun.keyframe_insert("rotation_euler", frame=frame)
    scene.frame_set(1)
    path = tmp_path / "lit.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    return str(path)


def script(name, *args, timeout=900):
    env = dict(os.environ, CHARACTERFORGE_PORT=str(free_port()), OMP_NUM_THREADS="1")  # never the default port
    return subprocess.run([sys.executable, os.path.join(SCRIPTS, name), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=env)


def test_relight_headless_after_moving_the_light(lit_blend, bpy, tmp_path):
    common = ["--profile", "tiny", "--steps", "2", "--data", str(tmp_path / "backend"), "--characters",
              str(tmp_path / "characters"), "--out", str(tmp_path / "results"), "--shot", "Duel", "--no-hands",
              "--light-samples", "2"]
    result = script("make_shot.py", "--blend", lit_blend, *common, "--relight", "--save", str(tmp_path / "a.blend"))
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "results" / "Duel"
    assert {"shot_seed0.png", "shot_seed0_unlit.png"} <= set(os.listdir(folder))
    first = json.loads(Image.open(folder / "shot_seed0.png").text["characterforge"])["relight"]
    assert first["words"]["light"] == "key light from the upper left"
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "a.blend"))
    bpy.context.scene.frame_set(2)  # the sun has swung to the right
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "b.blend"))
    result = script("make_shot.py", "--blend", str(tmp_path / "b.blend"), *common, "--relight-only",
                    "--relight-target", "character", "--relight-rig", "Rival")
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads(Image.open(folder / "shot_seed0_relit.png").text["characterforge"])["relight"]
    assert again["words"] == {"subject": "the character", "light": "key light from the upper right"}
    assert list(again["identity"]["by_character"]) == ["Rival"]


def test_a_moving_shot_relit_frame_by_frame(lit_blend, tmp_path):
    port = free_port()
    backend = subprocess.Popen([sys.executable, "-m", "characterforge_addon.backend", "serve", "--port", str(port),
                                "--data", str(tmp_path / "backend"), "--profile", "tiny", "--token", "secret"],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        job = tmp_path / "shot.toml"
        job.write_text(f'[batch]\noutput = "{tmp_path / "out"}"\nframes = "1-2"\nseeds = [3]\nkind = "shot"\n'
                       f'relight = true\nbackends = ["http://127.0.0.1:{port}"]\ntoken = "secret"\n'
                       '[shot]\nprompt = "two people in a courtyard"\nsteps = 2\nprofile = "tiny"\n')
        wait_for(port)
        result = script("batch.py", "--blend", lit_blend, "--job", str(job))
    finally:
        backend.terminate()
        backend.wait()
    assert result.returncode == 0, result.stderr[-3000:]
    words, whites = [], []
    for frame in (1, 2):
        unit = tmp_path / "out" / "Camera" / f"frame_{frame:04d}" / "seed_3"
        record = json.loads(Image.open(unit / "frame.png").text["characterforge"])
        assert "relight" in record and (unit / "seed3_unlit.png").is_file()
        light = json.loads((unit / "light" / "light.json").read_text())  # a light reference per frame
        words.append(light["words"])
        whites.append(light["white"])
    assert words == ["from the upper left", "from the upper right"]  # the light rig as it moves
    assert whites[0] == whites[1]  # one white for the whole sequence: the light does not flicker
    sequence = json.loads((tmp_path / "out" / "Camera" / "seed_3_sequence" / "sequence.json").read_text())
    assert sequence["relight"] is True and sequence["frames"] == [1, 2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, timeout=120):
    from characterforge_addon.client.backend_client import BackendClient, BackendError
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return BackendClient(f"http://127.0.0.1:{port}", "secret").health()
        except BackendError:
            time.sleep(0.2)
    raise AssertionError("the backend did not start")
