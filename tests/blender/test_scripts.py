"""The headless scripts, run as users run them: separate processes, real files, exit codes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "blender_scripts")


def run(script, *args, timeout=600):
    return subprocess.run([sys.executable, os.path.join(SCRIPTS, script), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def demo_blend(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    result = run("make_demo.py", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "control maps:" in result.stdout and os.path.exists(out / "demo.blend")
    assert {"openpose.png", "depth.png", "mask_Hero.png", "mask_Kid.png"} <= set(os.listdir(out / "controls"))
    return str(out / "demo.blend")


@pytest.mark.smoke
def test_single_frame(demo_blend, tmp_path):
    result = run("render_controls.py", "--blend", demo_blend, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "[1/1]" in result.stdout
    manifest = json.load(open(tmp_path / "controls.json"))
    assert sorted(p["name"] for p in manifest["people"]) == ["Hero", "Kid"]


def test_frames_each_get_a_folder_and_a_progress_line(demo_blend, tmp_path):
    # `--` first, as under `blender -b FILE -P render_controls.py -- ...`
    result = run("render_controls.py", "--", "--blend", demo_blend, "--out", str(tmp_path), "--frames", "3-5",
                 "--camera", "Camera", "--drop-occluded")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["frame_0003", "frame_0004", "frame_0005"]
    assert [line.split("]")[0] for line in result.stdout.splitlines() if line.startswith("[")] == ["[1/3", "[2/3", "[3/3"]
    manifest = json.load(open(tmp_path / "frame_0004" / "controls.json"))
    assert manifest["frame"] == 4 and manifest["drop_occluded"]


@pytest.mark.parametrize("args,message", [
    (["--blend", "/nonexistent/x.blend"], "no such file"),
    (["--camera", "Nope"], "no camera named 'Nope'"),
    (["--frames", "9-2"], "last frame is before the first"),
])
def test_failures_exit_non_zero_with_one_line(demo_blend, tmp_path, args, message):
    base = ["--blend", demo_blend] if "--blend" not in args else []
    result = run("render_controls.py", *base, "--out", str(tmp_path / "o"), *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert not os.path.exists(tmp_path / "o" / "controls.json")


def test_make_sheet_maps_only_from_a_blend_and_its_errors(demo_blend, tmp_path):
    result = run("make_sheet.py", "--", "--blend", demo_blend, "--rig", "Kid", "--name", "Kid", "--maps-only",
                 "--out", str(tmp_path), "--width", "768", "--height", "512", "--face-views", "front, side")
    assert result.returncode == 0, result.stderr
    record = json.load(open(tmp_path / "Kid" / "maps" / "sheet.json"))
    assert record["character"] == "Kid" and record["size"] == [768, 512]
    assert [v["name"] for v in record["views"]][-2:] == ["face_front", "face_side"]
    assert all(v["box"] for v in record["views"])

    bad = run("make_sheet.py", "--blend", demo_blend, "--name", "Kid", "--maps-only", "--out", str(tmp_path))
    assert bad.returncode == 1 and "select the rig" in bad.stderr  # two rigs: which one?
    bad = run("make_sheet.py", "--blend", demo_blend, "--rig", "Hero", "--name", "Hero", "--maps-only",
              "--width", "1000", "--out", str(tmp_path))
    assert bad.returncode == 1 and "multiple of 64" in bad.stderr


def test_make_shot_headless_from_a_blend(demo_blend, tmp_path):
    from characterforge_addon.core.image_io import encode_png
    picture = tmp_path / "set.png"
    picture.write_bytes(encode_png(np.full((96, 96, 3), 120, np.uint8)))
    common = ["--blend", demo_blend, "--profile", "tiny", "--steps", "2", "--data", str(tmp_path / "backend"),
              "--characters", str(tmp_path / "characters"), "--out", str(tmp_path / "out")]
    result = run("make_shot.py", "--", *common, "--background-image", str(picture), "--rig-prompt", "Kid=a child",
                 "--no-hands", "--expression", "surprised", "--expression-rig", "Hero", "--draft", "--save",
                 str(tmp_path / "shot.blend"), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "shot 'Shot':" in result.stdout and os.path.exists(tmp_path / "shot.blend")
    made = sorted(os.listdir(tmp_path / "out" / "Shot"))
    assert "shot_seed0.png" in made and "shot_seed0_surprised.png" in made
    from PIL import Image
    for name in ("shot_seed0.png", "shot_seed0_surprised.png"):  # --draft: both jobs ran as drafts
        assert "Draft: yes" in Image.open(tmp_path / "out" / "Shot" / name).text["parameters"]
    bad = run("make_shot.py", *common, "--character", "Nobody=Hero")
    assert bad.returncode == 1 and "the scene has no rig 'Nobody'" in bad.stderr
    bad = run("make_shot.py", *common, "--shot", "Other", "--character", "Hero=Missing")
    assert bad.returncode == 1 and "has no background yet" in bad.stderr
    bad = run("make_shot.py", *common, "--background-image", str(picture), "--character", "Hero=Missing")
    assert bad.returncode == 1 and "plays character 'Missing', which is not in Characters" in bad.stderr


def test_make_set_paints_one_set_for_two_cameras_headless(demo_blend, tmp_path):
    two = tmp_path / "two_cameras.blend"
    add_camera = ("import bpy, sys; bpy.ops.wm.open_mainfile(filepath=sys.argv[1]); s = bpy.context.scene; "
                  "c = bpy.data.objects.new('Side', bpy.data.cameras.new('Side')); s.collection.objects.link(c); "
                  "c.location = (4.4, -2.6, 1.4); c.rotation_euler = (1.35, 0, 1.0); "
                  "bpy.ops.wm.save_as_mainfile(filepath=sys.argv[2])")
    made = subprocess.run([sys.executable, "-c", add_camera, demo_blend, str(two)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-2000:]
    common = ["--blend", str(two), "--profile", "tiny", "--steps", "2", "--data", str(tmp_path / "backend"),
              "--out", str(tmp_path / "out"), "--no-sharp"]
    result = run("make_set.py", *common, "--cameras", "Camera,Side", "--prompt", "a quiet yard", "--dome",
                 "--save", str(tmp_path / "set.blend"), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Projected 'background_seed0.png' onto 3 set object(s) from Camera" in result.stdout
    assert "of Side's view of the set; the rest kept as painted" in result.stdout
    assert os.path.exists(tmp_path / "out" / "Side" / "set_fill_Side_seed0.png") and os.path.exists(tmp_path / "set.blend")
    bad = run("make_set.py", *common, "--cameras", "Camera,Nowhere")
    assert bad.returncode == 1 and "no camera named 'Nowhere'" in bad.stderr


def test_make_docs_makes_the_guides_pictures_as_they_are(tmp_path):
    """The guide's pictures are what `make docs` makes from today's code: each made again into a
    folder of its own matches the file docs/ holds (same size; Cycles' renders may differ by a
    level across CPUs, drawings not at all), and its record names the same files."""
    from PIL import Image
    result = run(os.path.join("dev", "make_docs.py"), "--out", str(tmp_path), timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    kept = json.loads(open(os.path.join(ROOT, "docs", "img", "pictures.json")).read())["pictures"]
    made = json.loads((tmp_path / "img" / "pictures.json").read_text())["pictures"]
    assert set(made) == set(kept)
    for name in kept:
        now = np.asarray(Image.open(tmp_path / "img" / name).convert("RGB")).astype(int)
        then = np.asarray(Image.open(os.path.join(ROOT, "docs", "img", name)).convert("RGB")).astype(int)
        assert now.shape == then.shape, f"{name}: {now.shape} made, {then.shape} in docs/img: run make docs"
        assert np.abs(now - then).mean() <= 1.0, f"{name} differs from what make docs makes today: run make docs"


def test_make_demo_on_the_tiny_profile_makes_every_part(tmp_path):
    """README's offline run, `make demo PROFILE=tiny`, end to end (about 5 minutes here): the
    sheets and packs, the shot, the set from a second camera, the moving shot and the animated
    shot each made (its animated walk once failed unseen: only a soak made the demo)."""
    out = tmp_path / "demo"
    result = run("make_demo.py", "--out", str(out), "--profile", "tiny", timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    summary = json.loads((out / "demo.json").read_text())
    assert summary["profile"] == "tiny" and len(summary["set"]) == 2 and len(summary["shown"]) == 2
    assert os.path.isdir(summary["character"]) and os.path.isdir(summary["object_character"])
    assert summary["moving_shot"]["frames"] == 4 and summary["animated_shot"]["frames"] == 5
    for blend in ("demo.blend", "walk_played.blend", "walk_video_played.blend"):
        assert (out / blend).is_file()
    videos = [os.path.join(folder, f) for folder, _, files in os.walk(summary["animated_shot"]["folder"])
              for f in files if f == "sequence.mp4"]
    assert len(videos) == 1 and os.path.getsize(videos[0]) > 0
