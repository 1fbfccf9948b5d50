"""The headless batch: frames x cameras x seeds, killed halfway and resumed, and run again after
changes: exactly the units a change touches made again, the rest kept byte for byte."""

import hashlib
import json
import re
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "blender_scripts", "batch.py")


@pytest.fixture(scope="module")
def two_camera_blend(tmp_path_factory, bpy):
    from characterforge_addon.blender.rig import posing, rig
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 96, 96
    for name, x in (("CamA", 0.0), ("CamB", 2.5)):
        cam = bpy.data.objects.new(name, bpy.data.cameras.new(name))
        scene.collection.objects.link(cam)
        cam.location = (x, -5.0, 0.9)
        cam.rotation_euler = (math.radians(90), 0.0, math.radians(25 if x else 0))
    scene.camera = bpy.data.objects["CamA"]
    hero = rig.add_rig(bpy.context, "Hero", 1.75, "ADULT", (0, 0, 0))
    posing.apply_library_pose(bpy.context, hero, "WALKING")
    hero.location = (-0.3, 0, 0)
    hero.keyframe_insert("location", frame=1)
    hero.location = (0.3, 0, 0)
    hero.keyframe_insert("location", frame=6)
    path = str(tmp_path_factory.mktemp("batch") / "scene.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    return path


@pytest.fixture(scope="module")
def tiny_backends(tmp_path_factory):
    """Two tiny backends sharing one token, as two machines would."""
    procs, urls, datas = [], [], []
    for i in range(2):
        data = tmp_path_factory.mktemp(f"batch-backend{i}")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        procs.append(subprocess.Popen([sys.executable, "-m", "characterforge_addon.backend", "serve", "--port",
                                       str(port), "--data", str(data), "--profile", "tiny", "--token", "shared-secret"],
                                      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        urls.append(f"http://127.0.0.1:{port}")
        datas.append(data)
    from characterforge_addon.client.backend_client import BackendClient, BackendError
    deadline = time.monotonic() + 120
    for url in urls:
        while time.monotonic() < deadline:
            try:
                BackendClient(url, "shared-secret").health()
                break
            except BackendError:
                time.sleep(0.2)
    yield urls, "shared-secret", datas
    for proc in procs:
        proc.terminate()
        proc.wait()


def write_job(path, output, urls=(), token="", generate=True, frames="1-6", draft=False, cameras=("CamA", "CamB"),
              seeds=(3,), prompt="a knight", steps=2, profile="tiny"):
    listed = ", ".join(f'"{u}"' for u in urls)
    backends = f'backends = [{listed}]\ntoken = "{token}"\n' if urls else ""
    path.write_text(f'[batch]\noutput = "{output}"\nframes = "{frames}"\ncameras = {json.dumps(list(cameras))}\n'
                    f'seeds = {json.dumps(list(seeds))}\ngenerate = {"true" if generate else "false"}\n{backends}'
                    f'[shot]\nprompt = "{prompt}"\nsteps = {steps}\nprofile = "{profile}"\n'
                    + ("draft = true\n" if draft else ""))


def outputs(out):
    """{file under `out`: (SHA-256, mtime)} of a batch's outputs (the manifest aside)."""
    found = {}
    for folder, _, files in os.walk(out):
        for name in files:
            path = os.path.join(folder, name)
            if name.startswith("manifest"):
                continue
            with open(path, "rb") as f:
                found[os.path.relpath(path, out)] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return found


def remade(before, after, suffix=".png"):
    """The unit folders whose result pictures (`suffix`, not the maps) were written again."""
    return sorted({os.path.dirname(f) for f in after if f.endswith(suffix) and "/controls/" not in f
                   and before.get(f) != after[f]})


def run(blend, job, *extra, timeout=600, **kw):
    return subprocess.run([sys.executable, SCRIPT, "--blend", blend, "--job", str(job), *extra], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout, **kw)


def test_killed_halfway_then_resumed_gives_every_output_once(two_camera_blend, tiny_backends, tmp_path):
    urls, token, datas = tiny_backends
    out = tmp_path / "out"
    job = tmp_path / "batch.toml"
    write_job(job, out, urls, token)
    proc = subprocess.Popen([sys.executable, SCRIPT, "--blend", two_camera_blend, "--job", str(job)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    manifest = out / "manifest.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if manifest.exists() and len(json.loads(manifest.read_text())["done"]) >= 4:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = json.loads(manifest.read_text())["done"]
    assert 4 <= len(first) < 12
    before = {f: os.path.getmtime(out / files[0]) for f, files in first.items()}

    result = run(two_camera_blend, job)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{len(first)} already done" in result.stdout and "12/12 units" in result.stdout
    done = json.loads(manifest.read_text())["done"]
    assert len(done) == 12
    for camera in ("CamA", "CamB"):
        for frame in range(1, 7):
            unit = out / camera / f"frame_{frame:04d}" / "seed_3"
            pngs = sorted(p for p in os.listdir(unit) if p.endswith(".png"))
            assert pngs == ["seed3.png"], (unit, pngs)
            assert (unit / "controls" / "openpose.png").exists()
    assert {f: os.path.getmtime(out / files[0]) for f, files in first.items()} == before  # not redone
    # both backends took a share of the work
    assert all(len(os.listdir(data / "results")) >= 2 for data in datas)


def test_a_rerun_redoes_exactly_the_units_whose_making_changed_and_says_what_changed(two_camera_blend, tiny_backends,
                                                                                      tmp_path):
    """Re-runs with the prompt, the steps, the seed list and the profile changed in turn: each
    redoes exactly the units that change touches (their pictures written again, made as now
    asked), keeps the rest byte for byte and untouched, and names the change."""
    from PIL import Image
    urls, token, _ = tiny_backends
    out, job = tmp_path / "out", tmp_path / "batch.toml"
    settings = dict(frames="1-2", cameras=("CamA",))

    def rerun(**change):
        settings.update(change)
        write_job(job, out, urls, token, **settings)
        before = outputs(out)
        result = run(two_camera_blend, job)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout, before, outputs(out)

    units = [f"CamA/frame_000{f}/seed_{s}" for f in (1, 2) for s in (3, 4)]
    stdout, _, _ = rerun()
    assert "batch: 2 made (not made before)" in stdout
    stdout, before, after = rerun()
    assert "batch: 2 unchanged\n" in stdout and after == before  # same bytes, same mtimes, maps included
    stdout, before, after = rerun(prompt="a dragon made of glass")
    assert "batch: 0 unchanged, 2 redone because the prompt changed" in stdout
    assert remade(before, after) == units[0::2]
    assert "CamA/frame_0001/seed_3: redo: the prompt changed" in stdout
    stdout, before, after = rerun(steps=1)
    assert "batch: 0 unchanged, 2 redone because the steps changed" in stdout and remade(before, after) == units[0::2]
    stdout, before, after = rerun(seeds=(3, 4))
    assert "batch: 2 unchanged, 2 made (not made before)" in stdout and remade(before, after) == units[1::2]
    assert {f: v for f, v in after.items() if "seed_3" in f} == {f: v for f, v in before.items() if "seed_3" in f}
    stdout, before, after = rerun(profile="tiny-union")
    assert "batch: 0 unchanged, 4 redone because the profile changed" in stdout and remade(before, after) == units
    for unit in units:
        record = json.loads(Image.open(out / unit / f"seed{unit.rsplit('_', 1)[1]}.png").text["characterforge"])
        assert record["profile"] == "tiny-union" and record["job"]["prompt"] == "a dragon made of glass"
        assert record["job"]["steps"] == 1


def test_a_moved_rig_an_old_manifest_keep_changed_and_a_dry_run(two_camera_blend, tiny_backends, tmp_path, bpy):
    """A rig moved at frame 2 only redoes frame 2; a manifest written before fingerprints is read
    and its units redone, saying why; --dry-run and --keep-changed change no file."""
    urls, token, _ = tiny_backends
    out, job = tmp_path / "out", tmp_path / "batch.toml"
    write_job(job, out, urls, token, frames="1-2", cameras=("CamA",))
    assert run(two_camera_blend, job).returncode == 0
    bpy.ops.wm.open_mainfile(filepath=two_camera_blend)
    hero = bpy.data.objects["Hero"]
    hero.location = (0.4, 0.3, 0)
    hero.keyframe_insert("location", frame=2)  # frame 1 stays where its key holds it
    moved = str(tmp_path / "moved.blend")
    bpy.ops.wm.save_as_mainfile(filepath=moved, copy=True)
    before = outputs(out)
    result = run(moved, job)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "batch: 1 unchanged, 1 redone because the control maps changed" in result.stdout
    after = outputs(out)
    assert remade(before, after) == ["CamA/frame_0002/seed_3"]
    assert {f: v for f, v in after.items() if "frame_0001" in f} == \
        {f: v for f, v in before.items() if "frame_0001" in f}

    manifest = out / "manifest.json"
    old = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({"done": old["done"]}))  # what the add-on wrote before fingerprints
    before = outputs(out)
    result = run(moved, job)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "batch: 0 unchanged, 2 redone because the manifest, written before fingerprints, has none for it" \
        in result.stdout
    assert len(remade(before, outputs(out))) == 2 and json.loads(manifest.read_text())["fingerprints"] == \
        old["fingerprints"]  # the same making as recorded before

    write_job(job, out, urls, token, frames="1-2", cameras=("CamA",), prompt="a dragon made of glass")
    before, recorded = outputs(out), manifest.read_bytes()
    dry = run(moved, job, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "CamA/frame_0001/seed_3: to redo: the prompt changed" in dry.stdout
    assert "dry run, nothing was run: 0 unchanged, 2 to redo because the prompt changed" in dry.stdout
    kept = run(moved, job, "--keep-changed")
    assert kept.returncode == 0, kept.stderr[-2000:]
    assert ("batch: 0 unchanged; 2 changed but kept on purpose (--keep-changed), their outputs made with other "
            "settings: CamA/frame_0001/seed_3: the prompt changed; CamA/frame_0002/seed_3: the prompt changed") \
        in kept.stdout
    assert outputs(out) == before and manifest.read_bytes() == recorded
    assert sorted(os.listdir(out)) == ["CamA", "manifest.json"]  # no staging left behind
    result = run(moved, job)
    assert "batch: 0 unchanged, 2 redone because the prompt changed" in result.stdout


def test_control_maps_only_and_clear_failures(two_camera_blend, tmp_path):
    job = tmp_path / "maps.toml"
    write_job(job, tmp_path / "maps", generate=False, frames="2-3")
    result = run(two_camera_blend, job)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(json.loads((tmp_path / "maps" / "manifest.json").read_text())["done"]) == 4
    bad = tmp_path / "bad.toml"
    bad.write_text("[batch\n")
    result = run(two_camera_blend, bad)
    assert result.returncode != 0 and "not valid TOML" in result.stderr
    bad.write_text('[batch]\ncameras = ["Nope"]\ngenerate = false\n')
    result = run(two_camera_blend, bad)
    assert result.returncode != 0 and "no camera named 'Nope'" in result.stderr


def test_an_unreachable_backend_fails_at_once(two_camera_blend, tmp_path):
    job = tmp_path / "down.toml"
    write_job(job, tmp_path / "down", ["http://127.0.0.1:9"], "x", frames="1")
    result = run(two_camera_blend, job)
    assert result.returncode != 0 and "cannot reach the backend" in result.stderr


def test_a_batch_of_drafts(two_camera_blend, tiny_backends, tmp_path):
    from PIL import Image
    urls, token, _ = tiny_backends
    job = tmp_path / "drafts.toml"
    write_job(job, tmp_path / "drafts", urls, token, frames="1", draft=True)
    result = run(two_camera_blend, job)
    assert result.returncode == 0, result.stderr[-2000:]
    for camera in ("CamA", "CamB"):
        png = tmp_path / "drafts" / camera / "frame_0001" / "seed_3" / "seed3.png"
        assert "Steps: 6, Sampler: TCD" in Image.open(png).text["parameters"]  # the draft's, not the batch's 2


@pytest.fixture(scope="module")
def ray_backend(tmp_path_factory):
    """`serve-ray`: a local Ray cluster with two logical GPUs, two engine replicas behind one URL."""
    import psutil
    data = tmp_path_factory.mktemp("batch-ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(data / "serve-ray.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "characterforge_addon.backend", "serve-ray", "--port", str(port),
                             "--data", str(data), "--profile", "tiny", "--token", "ray-secret", "--replicas", "2",
                             "--local-gpus", "2", "--cpus-per-replica", "0.5"],  # a CPU left for map tasks
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
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
    yield url, "ray-secret", address
    family = [proc] + psutil.Process(proc.pid).children(recursive=True)
    proc.terminate()
    _, alive = psutil.wait_procs(family, timeout=30)
    for leftover in alive:
        leftover.kill()


def test_a_batch_through_the_ray_ingress_keeps_both_replicas_busy(two_camera_blend, ray_backend, tmp_path):
    from PIL import Image
    url, token, _ = ray_backend
    out, job = tmp_path / "out", tmp_path / "batch.toml"
    write_job(job, out, [url], token, frames="1-2")
    result = run(two_camera_blend, job)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "4/4 units" in result.stdout
    workers = set()
    for camera in ("CamA", "CamB"):
        for frame in (1, 2):
            png = out / camera / f"frame_{frame:04d}" / "seed_3" / "seed3.png"
            workers.add(json.loads(Image.open(png).text["characterforge"])["worker"])
    assert len(workers) == 2, workers  # two units at a time, one per replica


def test_a_farm_chunk_runs_its_frames_with_a_manifest_of_its_own(two_camera_blend, tmp_path, bpy):
    """What each Flamenco task runs (blender_scripts/flamenco/characterforge_batch.js): run again,
    it keeps its finished units, and redoes those the .blend now renders otherwise."""
    out, job = tmp_path / "out", tmp_path / "batch.toml"
    write_job(job, out, generate=False, frames="1-6")
    result = run(two_camera_blend, job, "--frames", "2,5")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.name for p in (out / "CamA").iterdir()) == ["frame_0002", "frame_0005"]
    assert not (out / "manifest.json").exists()
    assert len(json.loads((out / "manifest.frames-2_5.json").read_text())["done"]) == 4
    before = outputs(out)
    again = run(two_camera_blend, job, "--frames", "2,5")
    assert again.returncode == 0 and "4 already done" in again.stdout and "batch: 4 unchanged\n" in again.stdout
    assert outputs(out) == before
    bpy.ops.wm.open_mainfile(filepath=two_camera_blend)
    bpy.data.objects["CamB"].data.lens = 35  # a wider lens on one camera
    wider = str(tmp_path / "wider.blend")
    bpy.ops.wm.save_as_mainfile(filepath=wider, copy=True)
    again = run(wider, job, "--frames", "2,5")
    assert again.returncode == 0 and "batch: 2 unchanged, 2 redone because the control maps changed" in again.stdout
    after = outputs(out)
    assert {f for f in after if after[f] != before[f]} == {f for f in after if f.startswith("CamB/")}


def test_a_batch_as_ray_tasks_renders_and_generates_every_unit_once(two_camera_blend, ray_backend, tmp_path):
    """batch.py --ray: the maps rendered by Ray tasks running the bpy module, the generations on
    the Serve application's replicas, the files where the manifest expects them; a re-run skips all."""
    from PIL import Image
    _, _, address = ray_backend
    out, job = tmp_path / "out", tmp_path / "batch.toml"
    write_job(job, out, frames="1-2")
    result = run(two_camera_blend, job, "--ray", address, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "4/4 units" in result.stdout
    done = json.loads((out / "manifest.json").read_text())["done"]
    assert sorted(done) == sorted(f"{c}/frame_{f:04d}/seed_3" for c in ("CamA", "CamB") for f in (1, 2))
    workers = set()
    for folder, files in done.items():
        assert files == [f"{folder}/seed3.png"]
        assert (out / folder / "controls" / "openpose.png").exists()
        workers.add(json.loads(Image.open(out / files[0]).text["characterforge"])["worker"])
    assert len(workers) == 2, workers
    before = outputs(out)
    again = run(two_camera_blend, job, "--ray", address, timeout=300)
    assert again.returncode == 0 and "4 already done, 0 to do" in again.stdout
    assert "batch: 4 unchanged\n" in again.stdout and outputs(out) == before  # decided by the tasks, nothing made
    write_job(job, out, frames="1-2", prompt="a dragon made of glass")
    again = run(two_camera_blend, job, "--ray", address, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert "batch: 0 unchanged, 4 redone because the prompt changed" in again.stdout
    assert remade(before, outputs(out)) == sorted(done)
    for folder in done:
        record = json.loads(Image.open(out / folder / "seed3.png").text["characterforge"])
        assert record["job"]["prompt"] == "a dragon made of glass"


def test_a_ray_worker_killed_mid_unit_is_retried_and_every_unit_done_once(two_camera_blend, ray_backend, tmp_path):
    import psutil
    url, _, address = ray_backend
    server = next(p for p in psutil.process_iter(["cmdline"]) if url.rsplit(":", 1)[1] in " ".join(p.info["cmdline"] or ()))
    out, job = tmp_path / "out", tmp_path / "batch.toml"
    write_job(job, out, frames="1-2")
    proc = subprocess.Popen([sys.executable, SCRIPT, "--blend", two_camera_blend, "--job", str(job), "--ray", address],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed, deadline = None, time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and proc.poll() is None:
        for child in server.children(recursive=True):  # a Ray worker running a unit task
            if "ray::unit" in " ".join(child.cmdline()):
                child.kill()
                killed = child.pid
                break
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=300)
    assert killed and proc.returncode == 0, (killed, stdout[-1500:], stderr[-2000:])
    done = json.loads((out / "manifest.json").read_text())["done"]
    assert len(done) == 4 and all(files == [f"{folder}/seed3.png"] for folder, files in done.items())
    for folder in done:
        assert sorted(p.name for p in (out / folder).iterdir()) == ["controls", "seed3.png"]


def set_picture(blue):
    from characterforge_addon.core.image_io import encode_png
    yy, xx = __import__("numpy").mgrid[0:96, 0:96]
    return encode_png(__import__("numpy").stack([xx * 2, yy * 2, blue + 0 * xx], -1).astype("uint8"))


def shot_scene(bpy, two_camera_blend, folder, character=None):
    """The walking Hero in front of a wall and floor painted from CamA (a gradient, `folder`/set.png,
    stands in for a generated background), playing `character`, saved: a moving shot's scene."""
    from characterforge_addon.blender.sets import set_projection
    bpy.ops.wm.open_mainfile(filepath=two_camera_blend)
    bpy.ops.mesh.primitive_plane_add(size=30, location=(0, 0, 0))
    bpy.ops.mesh.primitive_plane_add(size=30, location=(0, 4, 5), rotation=(math.pi / 2, 0, 0))
    (folder / "set.png").write_bytes(set_picture(128))
    set_projection.project(bpy.context, bpy.data.objects["CamA"], str(folder / "set.png"))
    if character:
        bpy.data.objects["Hero"].characterforge.character = character
    path = str(folder / "moving.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    return path


@pytest.fixture(scope="module")
def moving_shot_blend(two_camera_blend, tmp_path_factory, bpy):
    return shot_scene(bpy, two_camera_blend, tmp_path_factory.mktemp("moving"))


def write_shot_job(path, output, url, token, temporal=True, frames="1-6", video=True):
    path.write_text(f'[batch]\noutput = "{output}"\nframes = "{frames}"\ncameras = ["CamA"]\nseeds = [3]\n'
                    f'kind = "shot"\ntemporal = {str(temporal).lower()}\nvideo = {str(video).lower()}\n'
                    f'backends = ["{url}"]\ntoken = "{token}"\n'
                    '[shot]\nprompt = "a knight walking"\nsteps = 2\nprofile = "tiny"\n')


def test_a_moving_shot_frame_by_frame_killed_and_resumed(moving_shot_blend, tiny_backends, tmp_path, bpy):
    """Six frames of the shot: each after the first carried over from the one before (its
    record says so, with the strength), a kill after three frames and a resume that redoes
    none, the image sequence gathered, the flicker printed and recorded; the same seeds with
    every frame on its own for comparison."""
    from PIL import Image
    urls, token, _ = tiny_backends
    out, job = tmp_path / "out", tmp_path / "shot.toml"
    write_shot_job(job, out, urls[0], token)
    proc = subprocess.Popen([sys.executable, SCRIPT, "--blend", moving_shot_blend, "--job", str(job)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    manifest = out / "manifest.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if manifest.exists() and len(json.loads(manifest.read_text())["done"]) >= 3:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = json.loads(manifest.read_text())["done"]
    assert 3 <= len(first) < 6
    result = run(moving_shot_blend, job, "--save", str(tmp_path / "played.blend"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{len(first)} already done" in result.stdout and "6/6 units" in result.stdout
    sequence = out / "CamA" / "seed_3_sequence"
    assert sorted(os.listdir(sequence)) == [f"frame_{f:04d}.png" for f in range(1, 7)] + ["sequence.json",
                                                                                       "sequence.mp4"]
    clip = bpy.data.movieclips.load(str(sequence / "sequence.mp4"))
    assert clip.frame_duration == 6 and tuple(clip.size) == (96, 96)
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "played.blend"))
    plane = bpy.data.objects["CamA seed 3 sequence"]
    image = next(n for n in plane.active_material.node_tree.nodes if n.type == "TEX_IMAGE")
    assert image.image.source == "SEQUENCE" and image.image_user.frame_duration == 6
    for frame in range(1, 7):
        record = json.loads(Image.open(out / "CamA" / f"frame_{frame:04d}" / "seed_3" / "frame.png").text["characterforge"])
        assert ("previous" in record) == (frame > 1), frame
        if frame > 1:
            assert 0.35 <= record["previous"]["strength"] <= 0.75 and record["previous"]["newly_visible"] < 0.2
    flicker = float(re.search(r"flicker CamA seed 3: ([0-9.]+)", result.stdout).group(1))
    assert json.loads((sequence / "sequence.json").read_text())["flicker"] == pytest.approx(flicker, abs=0.01)

    # run again unchanged: every frame, the sequence, its record and its video kept as they are
    before = outputs(out)
    result = run(moving_shot_blend, job)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "batch: 6 unchanged\n" in result.stdout and "sequence unchanged" in result.stdout
    assert outputs(out) == before
    # the Hero turned at frame 3 only: frames 3 to 6 made again (each carries over the one before), 1 and 2 kept
    bpy.ops.wm.open_mainfile(filepath=moving_shot_blend)
    hero = bpy.data.objects["Hero"]
    interpolation = bpy.context.preferences.edit.keyframe_new_interpolation_type
    bpy.context.preferences.edit.keyframe_new_interpolation_type = "CONSTANT"
    try:
        for frame, turn in ((2, 0.0), (3, 0.6), (4, 0.0)):
            hero.rotation_euler = (0, 0, turn)
            hero.keyframe_insert("rotation_euler", frame=frame)
    finally:
        bpy.context.preferences.edit.keyframe_new_interpolation_type = interpolation
    turned = str(tmp_path / "turned.blend")
    bpy.ops.wm.save_as_mainfile(filepath=turned, copy=True)
    result = run(turned, job)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "batch: 2 unchanged, 4 redone: 1 because the control maps" in result.stdout
    assert "3 because the frame it carries over is made again" in result.stdout
    after = outputs(out)
    assert remade(before, after) == [f"CamA/frame_000{f}/seed_3" for f in range(3, 7)] + ["CamA/seed_3_sequence"]
    assert {f: v for f, v in after.items() if "frame_0001" in f or "frame_0002" in f} == \
        {f: v for f, v in before.items() if "frame_0001" in f or "frame_0002" in f}
    for name in ("sequence.json", "sequence.mp4"):  # the sequence's record and video follow its frames
        assert after[f"CamA/seed_3_sequence/{name}"] != before[f"CamA/seed_3_sequence/{name}"]

    alone = tmp_path / "alone.toml"
    write_shot_job(alone, tmp_path / "alone", urls[0], token, temporal=False)
    result = run(moving_shot_blend, alone)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "every frame on its own" in result.stdout
    record = json.loads(Image.open(tmp_path / "alone" / "CamA" / "frame_0004" / "seed_3" / "frame.png").text["characterforge"])
    assert "previous" not in record


def test_a_moving_shot_with_a_creature_beside_the_human(moving_shot_blend, tiny_backends, tmp_path, bpy):
    """A creature (an armature deforming its meshes) marked as a character plays in a moving shot
    as a human does (#30): each frame's maps give it its own mask, normal and line art beside the
    human's OpenPose, its mask follows it as it walks, and every frame's shot names both,
    carried over from the frame before."""
    from PIL import Image

    from characterforge_addon.core.image_io import decode_png
    from creature_scene import quadruped
    urls, token, _ = tiny_backends
    bpy.ops.wm.open_mainfile(filepath=moving_shot_blend)
    beast = quadruped(location=(0.6, 0.0, 0.0))
    beast.keyframe_insert("location", frame=1)
    beast.location = (1.1, 0.0, 0.0)
    beast.keyframe_insert("location", frame=3)
    beast.characterforge.is_character, beast.characterforge.prompt = True, "a green lizard"
    blend = str(tmp_path / "with_beast.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend, copy=True)
    out, job = tmp_path / "out", tmp_path / "shot.toml"
    write_shot_job(job, out, urls[0], token, frames="1-3", video=False)
    result = run(blend, job)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "3/3 units" in result.stdout
    columns = []
    for frame in range(1, 4):
        unit = out / "CamA" / f"frame_{frame:04d}" / "seed_3"
        controls = json.loads((unit / "controls" / "controls.json").read_text())
        assert controls["kinds"] == {"Hero": "humanoid", "Beast": "creature"}, controls["kinds"]
        assert {"openpose.png", "normal.png", "lineart.png"} <= set(controls["files"])
        assert set(controls["masks"]) == {"Hero", "Beast"}
        mask = decode_png((unit / "controls" / controls["masks"]["Beast"]).read_bytes()) > 127
        assert mask.any()
        columns.append(np.nonzero(mask.any(axis=0))[0].mean())
        record = json.loads(Image.open(unit / "frame.png").text["characterforge"])
        assert set(record["characters"]) == {"Hero", "Beast"}
        assert ("previous" in record) == (frame > 1)
    assert columns[0] < columns[1] < columns[2]  # the creature's mask walks right with it


def test_a_moving_shots_changed_identity_picture_or_background_redoes_its_frames(two_camera_blend, tiny_backends,
                                                                              tmp_path, bpy):
    """The Hero plays a character: a new face picture in its pack redoes every frame, and so does
    a new picture of the painted set (the frames' background); nothing else changes a frame."""
    import numpy as np
    from characterforge_addon.core.characters import identity_pack
    from characterforge_addon.core.image_io import encode_png
    urls, token, _ = tiny_backends
    packs, scene_dir = tmp_path / "characters", tmp_path / "scene"
    scene_dir.mkdir()

    def face(value):
        return encode_png(np.full((64, 64, 3), value, np.uint8), {"characterforge": json.dumps({"job": {}})})
    pack = identity_pack.create_pack(str(packs), "Hero", {"sheet": face(90), "face_front": face(90),
                                                          "view_front": face(90)})
    blend = shot_scene(bpy, two_camera_blend, scene_dir, character="Hero")
    out, job = tmp_path / "out", tmp_path / "shot.toml"
    write_shot_job(job, out, urls[0], token, temporal=False, frames="1-2", video=False)
    env = dict(os.environ, CHARACTERFORGE_CHARACTERS=str(packs))
    result = run(blend, job, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "batch: 2 made (not made before)" in result.stdout
    frames = ["CamA/frame_0001/seed_3", "CamA/frame_0002/seed_3", "CamA/seed_3_sequence"]
    for change, what in ((lambda: (Path(pack) / "faces" / "face_front.png").write_bytes(face(200)),
                          "the identity pictures changed"),
                         (lambda: (scene_dir / "set.png").write_bytes(set_picture(20)), "the background changed"),
                         (lambda: None, None)):
        change()
        before = outputs(out)
        result = run(blend, job, env=env)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        if what:
            assert f"batch: 0 unchanged, 2 redone because {what}" in result.stdout
            assert remade(before, outputs(out)) == frames
        else:
            assert "batch: 2 unchanged\n" in result.stdout and outputs(out) == before


def test_make_demo_with_another_profile_makes_its_moving_shot_anew(moving_shot_blend, tiny_backends, tmp_path, bpy,
                                                                   monkeypatch, capsys):
    """make demo's moving shot (make_demo.moving_shot: batch.py on the bundled backend) run again
    with another profile: every frame, the sequence and its video made again with that profile."""
    from PIL import Image
    from characterforge_addon.backend import tiny
    sys.path.insert(0, os.path.join(ROOT, "blender_scripts"))
    import make_demo
    data = tmp_path / "backend"
    data.mkdir()
    shared = tiny_backends[2][0] / "models"  # the tiny weights the other tests' backends use (made if not yet)
    tiny.ensure(str(shared))
    (data / "models").symlink_to(shared)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for name, value in (("CHARACTERFORGE_BACKEND_PYTHON", sys.executable), ("CHARACTERFORGE_DATA", str(data)),
                        ("CHARACTERFORGE_PORT", str(port))):
        monkeypatch.setenv(name, value)
    bpy.ops.wm.open_mainfile(filepath=moving_shot_blend)
    bpy.context.scene.characterforge.prompt = "a knight walking"
    make_demo.moving_shot(bpy, bpy.context.scene, str(tmp_path), "tiny", 1, frames=2)
    before = outputs(tmp_path / "walk")
    bpy.ops.wm.open_mainfile(filepath=moving_shot_blend)  # the same scene (moving_shot keys the Hero from where he is)
    bpy.context.scene.characterforge.prompt = "a knight walking"
    second = make_demo.moving_shot(bpy, bpy.context.scene, str(tmp_path), "tiny-union", 1, frames=2)
    assert second["rerun"] == "0 unchanged, 2 redone because the profile changed"
    assert "2 redone because the profile changed" in capsys.readouterr().out
    after = outputs(tmp_path / "walk")
    assert sorted(f for f in after if after[f] != before.get(f)) == sorted(after)  # nothing of the last demo's kept
    for frame in (1, 2):
        png = tmp_path / "walk" / "CamA" / f"frame_000{frame}" / "seed_1234" / "frame.png"
        assert json.loads(Image.open(png).text["characterforge"])["profile"] == "tiny-union"
