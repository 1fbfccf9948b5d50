"""Animated shots by a video model driven by the rig: the control videos match the single-frame
maps frame by frame, and batch.py's `kind = "animation"` runs end to end on both tiny video
profiles through the real backend, killed after a segment and resumed without redoing it."""

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "blender_scripts", "batch.py")
FRAMES = 13


@pytest.fixture(scope="module")
def walk_blend(tmp_path_factory, bpy):
    """A rig walking across a wall and floor painted from the camera (a gradient stands in for a
    generated set), playing the character Knight (a pack of random pictures), saved."""
    from characterforge_addon.blender.rig import posing, rig
    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.characters import identity_pack
    from characterforge_addon.core.image_io import encode_png
    folder = tmp_path_factory.mktemp("walk")
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 96, 96
    cam = bpy.data.objects.new("CamA", bpy.data.cameras.new("CamA"))
    scene.collection.objects.link(cam)
    cam.location, cam.rotation_euler = (0.0, -5.0, 0.9), (math.radians(90), 0.0, 0.0)
    scene.camera = cam
    hero = rig.add_rig(bpy.context, "Hero", 1.75, "ADULT", (0, 0, 0))
    posing.apply_library_pose(bpy.context, hero, "WALKING")
    for frame, x in ((1, -0.4), (FRAMES, 0.4)):
        hero.location = (x, 0, 0)
        hero.keyframe_insert("location", frame=frame)
    scene.frame_start, scene.frame_end = 1, FRAMES
    bpy.ops.mesh.primitive_plane_add(size=30, location=(0, 0, 0))
    bpy.ops.mesh.primitive_plane_add(size=30, location=(0, 4, 5), rotation=(math.pi / 2, 0, 0))
    yy, xx = np.mgrid[0:96, 0:96]
    (folder / "set.png").write_bytes(encode_png(np.stack([xx * 2, yy * 2, 128 + 0 * xx], -1).astype(np.uint8)))
    set_projection.project(bpy.context, cam, str(folder / "set.png"))
    rng = np.random.default_rng(0)
    png = encode_png(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))
    identity_pack.create_pack(str(folder / "characters"), "Knight", {"sheet": png, "view_front": png,
                                                                     "face_front": png})
    hero.characterforge.character = "Knight"
    hero.characterforge.prompt = "a knight in silver armour walking"
    path = str(folder / "walk.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    return path, str(folder / "characters")


def test_the_control_videos_match_the_single_frame_maps_frame_by_frame(walk_blend, bpy, tmp_path):
    from PIL import Image

    from characterforge_addon.blender.maps import controls
    from characterforge_addon.blender.shots import animation, moving_shots
    from characterforge_addon.core.shots import animation_maps
    from characterforge_addon.core.image_io import decode_png
    bpy.ops.wm.open_mainfile(filepath=walk_blend[0])
    scene = bpy.context.scene
    camera = scene.objects["CamA"]
    videos = [animation.render_frame(bpy.context, camera, f, str(tmp_path / "video" / f"{f}"), "replace")[0]
              for f in (1, 7, FRAMES)]
    for frame, maps in zip((1, 7, FRAMES), videos):
        scene.frame_set(frame)
        single = tmp_path / "single" / f"{frame}"
        manifest = controls.render_controls(bpy.context, str(single), camera, preview=False)
        for name in ("openpose", "depth"):
            assert np.array_equal(decode_png(maps[name]), decode_png((single / f"{name}.png").read_bytes())), name
        mask = decode_png((single / manifest["masks"]["Hero"]).read_bytes())
        assert np.array_equal(decode_png(maps["mask"]) > 127, mask > 127)
        assert np.array_equal(decode_png(maps["background"]), decode_png(moving_shots.background_png(scene, camera)))
        face = decode_png(maps["face"])
        assert face.shape == (animation_maps.FACE_SIDE, animation_maps.FACE_SIDE, 3) and face.any()
    xs = [np.nonzero(decode_png(v["mask"]).any(axis=0))[0].mean() for v in videos]
    assert xs[0] < xs[1] < xs[2]  # the rig walks left to right across the frame
    assert Image.open(tmp_path / "video" / "7" / "mask.png").size == (96, 96)


@pytest.fixture(scope="module")
def tiny_backend(tmp_path_factory):
    data = tmp_path_factory.mktemp("animation-backend")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "characterforge_addon.backend", "serve", "--port", str(port),
                             "--data", str(data), "--profile", "tiny-wan-vace", "--token", "animation-secret"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    from characterforge_addon.client.backend_client import BackendClient, BackendError
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            BackendClient(url, "animation-secret").health()
            break
        except BackendError:
            time.sleep(0.2)
    yield url, "animation-secret"
    proc.terminate()
    proc.wait()


def write_job(path, output, url, token, profile):
    path.write_text(f'[batch]\noutput = "{output}"\nframes = "1-{FRAMES}"\ncameras = ["CamA"]\nseeds = [3]\n'
                    f'kind = "animation"\nvideo = true\nbackends = ["{url}"]\ntoken = "{token}"\n'
                    f'[animation]\nprofile = "{profile}"\nsegment = 9\ncarry = 1\nheight = 64\n'
                    '[shot]\nprompt = "a courtyard"\nsteps = 2\n')


def run(blend, job, characters, *extra, timeout=600):
    return subprocess.run([sys.executable, SCRIPT, "--blend", blend, "--job", str(job), *extra], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout,
                          env=dict(os.environ, CHARACTERFORGE_CHARACTERS=characters, OMP_NUM_THREADS="1"))


@pytest.mark.parametrize("profile", ["tiny-wan-vace", "tiny-wan-animate"])
def test_an_animated_shot_killed_after_a_segment_and_resumed(walk_blend, tiny_backend, tmp_path, bpy, profile):
    """13 frames in segments of 9 carrying 1 over (1-9, 9-13): killed once the first segment is
    in, run again: the second segment only; every frame once in the sequence, its MP4, its
    sequence.json with the settings and the flicker, a plane playing it."""
    from PIL import Image
    blend, characters = walk_blend
    url, token = tiny_backend
    out, job = tmp_path / "out", tmp_path / "animation.toml"
    write_job(job, out, url, token, profile)
    proc = subprocess.Popen([sys.executable, SCRIPT, "--blend", blend, "--job", str(job)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, CHARACTERFORGE_CHARACTERS=characters, OMP_NUM_THREADS="1"))
    manifest = out / "manifest.json"
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None:
        if manifest.exists() and json.loads(manifest.read_text())["done"]:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    done = json.loads(manifest.read_text())["done"]
    assert list(done) == ["CamA/segment_000/seed_3"], err[-2000:]
    sequence = out / "CamA" / "seed_3_sequence"
    first = {f: (sequence / f"frame_{f:04d}.png").read_bytes() for f in range(1, 10)}
    result = run(blend, job, characters, "--save", str(tmp_path / "played.blend"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "1 already done" in result.stdout and "2/2 units" in result.stdout
    assert sorted(os.listdir(sequence)) == [f"frame_{f:04d}.png" for f in range(1, FRAMES + 1)] + [
        "sequence.json", "sequence.mp4"]
    assert all((sequence / f"frame_{f:04d}.png").read_bytes() == data for f, data in first.items())  # not redone
    record = json.loads((sequence / "sequence.json").read_text())
    assert record["segments"] == [{"index": 0, "first": 1, "last": 9, "carried": 0},
                                  {"index": 1, "first": 9, "last": 13, "carried": 1}]
    assert record["settings"]["profile"] == profile and len(record["flicker_per_frame"]) == FRAMES - 1
    frame = json.loads(Image.open(out / "CamA" / "frame_0012" / "seed_3" / "frame.png").text["characterforge"])
    assert frame["segment"] == {"index": 1, "count": 2, "first_frame": 9, "carried": 1, "frames": 5,
                                "model_frames": 5}
    assert frame["job"]["references"] >= 1 and frame["job"]["maps"] == ["background", "depth", "face", "mask",
                                                                         "openpose"]
    clip = bpy.data.movieclips.load(str(sequence / "sequence.mp4"))
    assert clip.frame_duration == FRAMES and tuple(clip.size) == (64, 64)
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "played.blend"))
    plane = bpy.data.objects["CamA seed 3 animation"]
    image = next(n for n in plane.active_material.node_tree.nodes if n.type == "TEX_IMAGE")
    assert image.image.source == "SEQUENCE" and image.image_user.frame_duration == FRAMES


def test_a_rerun_redoes_the_segments_whose_making_changed_and_keeps_the_rest(walk_blend, tiny_backend, tmp_path):
    """Re-runs of a finished animated shot: unchanged, nothing is made again (frames, sequence
    record and MP4 keep their bytes and times); a dry run after a new prompt plans both segments
    and touches nothing; the run remakes both and says why."""
    blend, characters = walk_blend
    url, token = tiny_backend
    out, job = tmp_path / "out", tmp_path / "animation.toml"
    write_job(job, out, url, token, "tiny-wan-vace")
    first = run(blend, job, characters)
    assert first.returncode == 0, first.stderr[-2000:]
    sequence = out / "CamA" / "seed_3_sequence"
    files = sorted(sequence.iterdir())
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    again = run(blend, job, characters)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "2 unchanged" in again.stdout and "sequence unchanged" in again.stdout, again.stdout[-1500:]
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(sequence.iterdir())} == before
    job.write_text(job.read_text().replace('prompt = "a courtyard"', 'prompt = "a glass castle"'))
    plan = run(blend, job, characters, "--dry-run")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "CamA/segment_000/seed_3" in plan.stdout and "the prompt changed" in plan.stdout, plan.stdout[-1500:]
    assert {p.name: p.stat().st_mtime_ns for p in sorted(sequence.iterdir())} == {
        n: t for n, (_, t) in before.items()}
    changed = run(blend, job, characters)
    assert changed.returncode == 0, changed.stderr[-2000:]
    assert "2 redone" in changed.stdout and "the prompt changed" in changed.stdout, changed.stdout[-1500:]
    assert all((sequence / n).stat().st_mtime_ns != t for n, (_, t) in before.items() if n.startswith("frame_"))


def test_farm_chunks_make_a_segment_each_in_order(walk_blend, tiny_backend, tmp_path):
    """What each Flamenco task of an animated shot runs: --frames A-B makes the segment whose new
    frames start there (its own manifest), the next chunk the next segment, carried over from
    the frames the first one left in the sequence."""
    blend, characters = walk_blend
    url, token = tiny_backend
    out, job = tmp_path / "out", tmp_path / "animation.toml"
    write_job(job, out, url, token, "tiny-wan-vace")
    first = run(blend, job, characters, "--frames", "1-9")
    assert first.returncode == 0, first.stderr[-2000:]
    assert list(json.loads((out / "manifest.frames-1-9.json").read_text())["done"]) == ["CamA/segment_000/seed_3"]
    second = run(blend, job, characters, "--frames", "10-13")
    assert second.returncode == 0, second.stderr[-2000:]
    assert list(json.loads((out / "manifest.frames-10-13.json").read_text())["done"]) == ["CamA/segment_001/seed_3"]
    sequence = out / "CamA" / "seed_3_sequence"
    assert len(list(sequence.glob("frame_*.png"))) == FRAMES


@pytest.fixture(scope="module")
def ray_backend(tmp_path_factory):
    """`serve-ray` with two engine replicas on a local Ray cluster (two logical GPUs)."""
    import re

    import psutil
    data = tmp_path_factory.mktemp("animation-ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(data / "serve-ray.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "characterforge_addon.backend", "serve-ray", "--port", str(port),
                             "--data", str(data), "--profile", "tiny-wan-vace", "--token", "ray-secret", "--replicas",
                             "2", "--local-gpus", "2", "--cpus-per-replica", "0.5"], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
    from characterforge_addon.client.backend_client import BackendClient, BackendError
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            BackendClient(url, "ray-secret").health()
            break
        except BackendError:
            time.sleep(0.5)
    log.seek(0)
    address = re.search(r"Ray cluster at (\S+)", log.read()).group(1)
    yield address
    family = [proc] + psutil.Process(proc.pid).children(recursive=True)
    proc.terminate()
    _, alive = psutil.wait_procs(family, timeout=30)
    for leftover in alive:
        leftover.kill()


def test_on_ray_each_shots_segments_run_in_order_and_the_shots_side_by_side(walk_blend, ray_backend, tmp_path):
    blend, characters = walk_blend
    out, job = tmp_path / "out", tmp_path / "animation.toml"
    job.write_text(f'[batch]\noutput = "{out}"\nframes = "1-{FRAMES}"\ncameras = ["CamA"]\nseeds = [3, 4]\n'
                   'kind = "animation"\n[animation]\nprofile = "tiny-wan-vace"\nsegment = 9\ncarry = 1\nheight = 64\n'
                   '[shot]\nprompt = "a courtyard"\nsteps = 2\n')
    result = run(blend, job, characters, "--ray", ray_backend, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    done = json.loads((out / "manifest.json").read_text())["done"]
    assert sorted(done) == sorted(f"CamA/segment_00{i}/seed_{s}" for s in (3, 4) for i in (0, 1))
    for seed in (3, 4):
        sequence = out / "CamA" / f"seed_{seed}_sequence"
        assert len(list(sequence.glob("frame_*.png"))) == FRAMES
        assert (out / "CamA" / "frame_0012" / f"seed_{seed}" / "controls" / "openpose.png").exists()
        assert f"flicker CamA seed {seed}:" in result.stdout
    again = run(blend, job, characters, "--ray", ray_backend, timeout=300)
    assert again.returncode == 0 and "4 already done, 0 to do" in again.stdout


def test_animate_shot_in_the_sidebar_makes_the_segments_one_after_another(walk_blend, bpy, tmp_path, backend_env,
                                                                          monkeypatch):
    """The Shot section's Animate Shot through the bundled backend: segment 1, then (from the
    finished job's callback) segment 2, then the sequence, its MP4 and the plane playing it."""
    from characterforge_addon.blender.generation import jobs
    blend, characters = walk_blend
    monkeypatch.setenv("CHARACTERFORGE_CHARACTERS", characters)
    bpy.ops.wm.open_mainfile(filepath=blend)
    s = bpy.context.scene.characterforge
    s.video_profile, s.animation_segment, s.animation_carry, s.animation_height = "tiny-wan-vace", 9, 1, 64
    s.steps, s.random_seed, s.seed, s.results_dir, s.shot = 2, False, 5, str(tmp_path / "results"), "Walk"
    assert bpy.ops.characterforge.animate_shot() == {"FINISHED"}
    jobs.wait_all(timeout=400)
    assert s.job_state == "completed", s.job_message
    assert "segment 2 of 2 made; animated shot: 13 frames" in s.job_message
    sequence = tmp_path / "results" / "Walk" / "animation" / "CamA" / "seed_5_sequence"
    assert len(list(sequence.glob("frame_*.png"))) == FRAMES and (sequence / "sequence.mp4").exists()
    plane = bpy.data.collections["CharacterForge Shots"].children["Walk"].objects["CamA seed 5 animation"]
    image = next(n for n in plane.active_material.node_tree.nodes if n.type == "TEX_IMAGE")
    assert image.image.source == "SEQUENCE" and image.image_user.frame_duration == FRAMES
