"""End to end: the add-on starts the real backend process (tiny profile), a posed rig's maps
go in, an image plane with the result comes back; cancel; a killed backend."""

import json
import os
import signal

import numpy as np
import pytest


def wait_running(settings, timeout=120):
    import time

    from characterforge_addon.blender.generation import jobs
    deadline = time.monotonic() + timeout
    while settings.job_state != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
        jobs.drain()
    assert settings.job_state == "running", settings.job_message


def posed_scene(bpy, scene, tmp_path, steps=3):
    from characterforge_addon.blender.rig import posing, rig
    scene.render.resolution_x, scene.render.resolution_y = 96, 128
    obj = rig.add_rig(bpy.context, "Hero", 1.75, "ADULT", (0, 0, 0))
    posing.apply_library_pose(bpy.context, obj, "RELAXED")
    s = scene.characterforge
    s.prompt, s.steps, s.random_seed, s.seed = "a knight in silver armour", steps, False, 7
    s.results_dir = str(tmp_path / "results")
    s.shot = "Shot 1"
    return obj


def test_generate_brings_back_a_plane_filling_the_frame(bpy, scene, tmp_path, backend_env):
    from bpy_extras.object_utils import world_to_camera_view

    from characterforge_addon.blender.generation import jobs
    posed_scene(bpy, scene, tmp_path)
    assert bpy.ops.characterforge.generate() == {"FINISHED"}
    jobs.wait_all(timeout=300)
    s = scene.characterforge
    assert s.job_state == "completed", s.job_message
    coll = bpy.data.collections["CharacterForge Shots"].children["Shot 1"]
    plane = next(iter(coll.objects))
    spec = json.loads(plane["characterforge_job"])
    assert spec["seed"] == 7 and spec["width"] == 96 and spec["height"] == 128 and spec["profile"] == "tiny"
    image_path = json.loads(plane["characterforge_files"])[0]
    assert os.path.isfile(image_path) and os.path.isdir(tmp_path / "results" / "Shot 1" / "controls")
    bpy.context.view_layer.update()
    # the plane's corners land on the image's corners
    xs = [v.co.x for v in plane.data.vertices]
    ys = [v.co.y for v in plane.data.vertices]
    for x in (min(xs), max(xs)):
        for y in (min(ys), max(ys)):
            v = world_to_camera_view(scene, scene.camera, plane.matrix_world @ __import__("mathutils").Vector((x, y, 0)))
            px, py = v.x * 96, (1 - v.y) * 128
            assert min(abs(px), abs(px - 96)) < 1 and min(abs(py), abs(py - 128)) < 1
    # our plane stays out of the next control maps
    assert plane["characterforge_role"] == "result_plane"
    # the rig's keypoints went out for the pose score; without detector weights it says which are missing
    from characterforge_addon.blender.generation.planes import score_lines
    job = json.loads(plane["characterforge_job"])
    assert set(job["keypoints"]) == {"Hero"} and len(job["keypoints"]["Hero"]) == 18
    assert "lllyasviel/Annotators" in json.loads(plane["characterforge_scores"])["pose"]["reason"]
    assert score_lines(plane)[0].startswith("Pose: unavailable: OpenPose detector")


def test_regenerate_same_seed_reproduces_the_image(bpy, scene, tmp_path, backend_env):
    from PIL import Image

    from characterforge_addon.blender.generation import jobs
    posed_scene(bpy, scene, tmp_path)
    bpy.ops.characterforge.generate()
    jobs.wait_all(timeout=300)
    first = next(iter(bpy.data.collections["CharacterForge Shots"].children["Shot 1"].objects))
    bpy.context.view_layer.objects.active = first
    assert bpy.ops.characterforge.regenerate(new_seed=False) == {"FINISHED"}
    jobs.wait_all(timeout=300)
    planes = list(bpy.data.collections["CharacterForge Shots"].children["Shot 1"].objects)
    assert len(planes) == 2
    a, b = (np.asarray(Image.open(json.loads(p["characterforge_files"])[0])) for p in planes)
    assert np.array_equal(a, b)


def test_a_draft_is_labelled_and_regenerates_as_the_final_with_its_seed(bpy, scene, tmp_path, backend_env):
    from PIL import Image

    from characterforge_addon.blender.generation import jobs, planes
    posed_scene(bpy, scene, tmp_path)
    s = scene.characterforge
    s.draft = True
    bpy.ops.characterforge.generate()
    jobs.wait_all(timeout=300)
    draft = next(iter(bpy.data.collections["CharacterForge Shots"].children["Shot 1"].objects))
    assert draft.name.endswith("(draft)") and draft[planes.DRAFT]
    path = json.loads(draft["characterforge_files"])[0]
    assert "Steps: 6, Sampler: TCD" in Image.open(path).text["parameters"]  # what ran, in the PNG
    bpy.context.view_layer.objects.active = draft
    assert bpy.ops.characterforge.regenerate(new_seed=False, final=True) == {"FINISHED"}
    jobs.wait_all(timeout=300)
    final = next(o for o in bpy.data.collections["CharacterForge Shots"].children["Shot 1"].objects if o != draft)
    assert not final[planes.DRAFT] and not s.draft and final["characterforge_seed"] == draft["characterforge_seed"]
    assert "Steps: 3" in Image.open(json.loads(final["characterforge_files"])[0]).text["parameters"]
    assert final.visible_get() and not draft.visible_get()  # the final shows in place of the draft


def test_cancel_mid_job(bpy, scene, tmp_path, backend_env):
    from characterforge_addon.blender.generation import jobs
    posed_scene(bpy, scene, tmp_path, steps=150)
    bpy.ops.characterforge.generate()
    s = scene.characterforge
    wait_running(s)
    import time
    deadline = time.monotonic() + 60
    while jobs.PREVIEW_IMAGE not in bpy.data.images and time.monotonic() < deadline:
        time.sleep(0.1)
        jobs.drain()
    preview = bpy.data.images[jobs.PREVIEW_IMAGE]  # the denoising shows while it runs
    assert tuple(preview.size) == (96, 128)  # decoded by the tiny profile's TAESD
    assert bpy.ops.characterforge.cancel_job() == {"FINISHED"}
    jobs.wait_all(timeout=120)
    assert s.job_state == "canceled"
    assert "CharacterForge Shots" not in bpy.data.collections or not bpy.data.collections["CharacterForge Shots"].children


def test_killed_backend_gives_a_clear_message(bpy, scene, tmp_path, backend_env):
    from characterforge_addon.blender.backend import backend_process
    from characterforge_addon.blender.generation import jobs
    posed_scene(bpy, scene, tmp_path, steps=150)
    bpy.ops.characterforge.generate()
    s = scene.characterforge
    wait_running(s)
    os.kill(backend_process._process.pid, signal.SIGKILL)
    jobs.wait_all(timeout=120)
    assert s.job_state == "failed"
    assert "cannot reach the backend" in s.job_message and "Backend panel" in s.job_message
    backend_process.stop()


def test_a_reference_picture_goes_with_the_job(bpy, scene, tmp_path, backend_env):
    from PIL import Image

    from characterforge_addon.blender.generation import jobs
    ref = tmp_path / "hero.jpg"
    Image.new("RGB", (40, 60), (180, 30, 30)).save(ref)
    posed_scene(bpy, scene, tmp_path)
    scene.characterforge.reference_image = str(ref)
    scene.characterforge.identity_scale = 0.8
    bpy.ops.characterforge.generate()
    jobs.wait_all(timeout=300)
    assert scene.characterforge.job_state == "completed", scene.characterforge.job_message
    plane = next(iter(bpy.data.collections["CharacterForge Shots"].children["Shot 1"].objects))
    img = Image.open(json.loads(plane["characterforge_files"])[0])
    assert json.loads(img.text["characterforge"])["job"]["identity"] == {"references": 1, "scale": 0.8, "embedding": False}
    scene.characterforge.reference_image = str(tmp_path / "missing.png")
    with pytest.raises(RuntimeError, match="missing.png not found"):
        bpy.ops.characterforge.generate()


def test_start_and_stop_buttons_and_the_results_folder(bpy, scene, tmp_path, backend_env, monkeypatch):
    """The backend starts with the preferences' options: a speed-up turned off, one turned on
    that is on by default only on GPUs (headless, the preferences come from CHARACTERFORGE_*)."""
    from characterforge_addon.blender.backend import backend_process
    from characterforge_addon.blender import preferences
    backend_process.stop()
    monkeypatch.setenv("CHARACTERFORGE_WITHOUT", "batched_hands")
    monkeypatch.setenv("CHARACTERFORGE_WITH", "fused_qkv")
    assert bpy.ops.characterforge.start_backend() == {"FINISHED"}
    assert backend_process.is_running()
    prefs = preferences.get()
    url = f"http://127.0.0.1:{prefs.port}"
    health = backend_process.wait_ready(url, preferences.data_dir(prefs)).health()
    assert health["status"] == "ok"
    assert "fused_qkv" in health["speedups"] and "batched_hands" not in health["speedups"]
    assert "skip_idle_controlnets" in health["speedups"]
    assert preferences.serve_options(prefs) == ["--memory", "auto", "--weights", "native", "--without", "batched_hands",
                                                "--with", "fused_qkv"]
    assert bpy.ops.characterforge.stop_backend() == {"FINISHED"}
    assert not backend_process.is_running()
    scene.characterforge.results_dir = str(tmp_path / "results here")
    assert bpy.ops.characterforge.open_results() == {"FINISHED"}  # (headless: no file browser to open)
    assert (tmp_path / "results here").is_dir()


def test_the_scenes_profile_runs_the_edit_family_end_to_end(bpy, scene, tmp_path, backend_env):
    """The profile chosen for the scene goes with the job: the Qwen-Image-Edit family draws the
    posed character from the reference picture and the rig's pose map."""
    from PIL import Image

    from characterforge_addon.blender.generation import jobs
    ref = tmp_path / "hero.png"
    Image.new("RGB", (64, 64), (180, 30, 30)).save(ref)
    posed_scene(bpy, scene, tmp_path, steps=2)
    scene.characterforge.reference_image = str(ref)
    bpy.ops.characterforge.use_profile(name="tiny-qwen-edit")
    try:
        assert bpy.ops.characterforge.generate() == {"FINISHED"}
        jobs.wait_all(timeout=300)
        assert scene.characterforge.job_state == "completed", scene.characterforge.job_message
    finally:
        bpy.ops.characterforge.use_profile(name="")
    plane = next(iter(bpy.data.collections["CharacterForge Shots"].children["Shot 1"].objects))
    assert json.loads(plane["characterforge_job"])["profile"] == "tiny-qwen-edit"
    record = json.loads(Image.open(json.loads(plane["characterforge_files"])[0]).text["characterforge"])
    assert record["profile"] == "tiny-qwen-edit" and record["face_pass"]["profile"] == "tiny"
