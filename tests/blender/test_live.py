"""Live mode end to end (the add-on starts the real backend, tiny profiles): pose changes,
keyframes applied one after another and changes faster than the quiet time, give one job per
quiet period; older jobs are canceled; one live plane shows the last state; identity pictures go
once for many live jobs; Keep and Regenerate as Final; a profile without a draft setting is
refused with the reason; Live off cancels the running job; the fingerprint follows what a job
sends (camera, prompts, identity picks, profile, set meshes) and nothing else; the bench prints
the latency split.

Headless Blender has no event loop: the tests run the live timer's work by hand
(`Session.tick`) on a clock they step themselves, so the quiet time is exact however slow the
machine is; the backend runs in real time."""

import json
import os
import subprocess
import sys
import time
import types

import pytest

from test_generation_e2e import posed_scene
from test_panels import CheckingLayout

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "blender_scripts")
# A tiny profile whose drafts take 24 steps: a live job still runs when the next change comes
SLOW_DRAFT = "tiny-slow-draft"


def write_profile(data, name, drop_draft=False, draft_lora=None, draft_steps=None):
    from characterforge_addon.backend.models import profiles
    with open(os.path.join(profiles.BUILTIN_DIR, "tiny.toml")) as f:
        text = f.read().replace('name = "tiny"', f'name = "{name}"')
    if drop_draft:
        head, tail = text.split("[models.draft_lora]")
        text = head + "[" + tail.split("\n[", 1)[1]
    if draft_lora:  # a draft LoRA file, wherever it is (or is not)
        text = text.replace('tiny = "draft_lora_sdxl/pytorch_lora_weights.safetensors"', f'file = "{draft_lora}"')
    if draft_steps:
        text = text.replace("native_size = 256", f"native_size = 256\ndraft_steps = {draft_steps}")
    os.makedirs(os.path.join(data, "profiles"), exist_ok=True)
    with open(os.path.join(data, "profiles", f"{name}.toml"), "w") as f:
        f.write(text)


class Clock:
    """The session's clock, stepped by hand; `wait` lets real time pass for the backend."""

    def __init__(self, session):
        self.now = time.monotonic()
        self.session = session
        session.clock = lambda: self.now

    def step(self, seconds):
        self.now += seconds
        self.session.tick(__import__("bpy").context, self.now)

    def wait(self, done, timeout=300, what="the live picture"):
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"{what}: not within {timeout} s ({self.session.history})"
            time.sleep(0.05)
            self.step(0.05)


@pytest.fixture
def live_scene(bpy, scene, tmp_path, backend_env):
    from characterforge_addon.blender.generation import live
    write_profile(str(backend_env), SLOW_DRAFT, draft_steps=24)
    rig = posed_scene(bpy, scene, tmp_path, steps=2)
    s = scene.characterforge
    s.live_size = 128
    bpy.ops.characterforge.use_profile(name=SLOW_DRAFT)
    yield rig
    live.stop()
    bpy.ops.characterforge.use_profile(name="")


def client():
    from characterforge_addon.blender import preferences
    from characterforge_addon.blender.backend import backend_process
    prefs = preferences.get()
    return backend_process.wait_ready(f"http://127.0.0.1:{prefs.port}", preferences.data_dir(prefs))


def backend_status(job_id, until=("completed", "failed", "canceled"), timeout=120):
    deadline = time.monotonic() + timeout
    status = client().status(job_id)
    while status["status"] not in until and time.monotonic() < deadline:
        time.sleep(0.1)
        status = client().status(job_id)
    return status["status"]


def live_planes(bpy, shot):
    from characterforge_addon.blender.generation import live_plane
    return [o for o in bpy.data.collections["CharacterForge Shots"].children[shot].objects if live_plane.LIVE in o]


def move(rig, joint, dx):
    rig.pose.bones[joint].location.x += dx


def test_pose_changes_give_one_job_per_quiet_period_and_one_plane_shows_the_last_state(bpy, live_scene, tmp_path):
    from characterforge_addon.blender.generation import live, planes
    from characterforge_addon.blender.generation.job_inputs import rig_keypoints
    from characterforge_addon.blender.maps import controls
    rig = live_scene
    assert bpy.ops.characterforge.live() == {"FINISHED"}
    session = live.session()
    clock = Clock(session)
    clock.step(0.0)  # Live on asks for the first picture at once
    assert session.generation == 1
    clock.wait(lambda: session.record(1).get("job_id") and client().status(session.record(1)["job_id"])["step"] > 0,
               what="the first live job running")
    # keyframes applied one after another, faster than the quiet time: one job for them all
    for frame, x in ((1, 0.0), (2, 0.1), (3, 0.2), (4, 0.3), (5, 0.4), (6, 0.5)):
        rig.pose.bones["hand_ik.L"].location.x = x
        rig.pose.bones["hand_ik.L"].keyframe_insert("location", frame=frame)
    for frame in (2, 3, 4):
        scene = bpy.context.scene
        scene.frame_set(frame)
        clock.step(0.1)
    assert session.generation == 1  # still within the quiet time of the last change
    clock.step(0.25)
    assert session.generation == 2
    # then one key at a time, each after a quiet time: a job each, the one before canceled
    for frame in (5, 6):
        bpy.context.scene.frame_set(frame)
        clock.step(0.05)
        assert session.generation == frame - 3
        clock.step(live.QUIET_S)
        assert session.generation == frame - 2
    clock.wait(lambda: session.shown == 4)
    clock.step(1.0)
    assert session.generation == 4  # nothing changed since: no job
    outcomes = [r["outcome"] for r in session.history]
    assert outcomes[-1] == "shown" and all(o in ("canceled", "dropped") for o in outcomes[:-1]), session.history
    sent = [r for r in session.history[:-1] if r.get("job_id")]
    assert sent and all(backend_status(r["job_id"]) == "canceled" for r in sent)
    health = client().health()
    assert health["pending"] == 0 and health["running"] == 0  # never more than the one live job
    # exactly one live plane, no other result, showing the state of frame 6
    shots = bpy.data.collections["CharacterForge Shots"].children["Shot 1"]
    (plane,) = shots.objects
    assert plane in live_planes(bpy, "Shot 1") and plane.visible_get()
    assert plane["characterforge_job_id"] == session.history[-1]["job_id"] and plane[planes.DRAFT]
    check = str(tmp_path / "check")
    with live.live_resolution(bpy.context.scene, bpy.context.scene.characterforge.live_size):
        manifest = controls.render_controls(bpy.context, check, preview=False)
    w, h = manifest["resolution"]
    assert json.loads(plane[planes.KEYPOINTS]) == rig_keypoints(check, w, h)
    shown = json.loads(plane["characterforge_files"])[0]
    assert os.path.isfile(shown) and sorted(f for f in os.listdir(os.path.dirname(shown)) if f.endswith(".png")) == [
        os.path.basename(shown)]  # the pictures it showed before are gone
    seconds = json.loads(plane["characterforge_live_seconds"])
    assert set(seconds) == set(live.STAGES) and seconds["quiet"] >= live.QUIET_S
    assert bpy.context.scene.characterforge.live_message.startswith("Live: ")


def test_identity_pictures_go_once_and_keep_makes_a_result_that_regenerates_as_final(bpy, live_scene, tmp_path):
    from PIL import Image

    from characterforge_addon.blender.generation import jobs, live, live_plane, planes
    from characterforge_addon.client.pictures import sender_for
    rig = live_scene
    reference = tmp_path / "hero.png"
    Image.new("RGB", (64, 64), (23, 140, 77)).save(reference)
    s = bpy.context.scene.characterforge
    s.reference_image = str(reference)
    bpy.ops.characterforge.live()
    session = live.session()
    clock = Clock(session)
    for i in range(3):
        if i:
            move(rig, "hand_ik.R", 0.15)
            bpy.context.view_layer.update()
            clock.step(live.QUIET_S + 0.01)
        clock.step(0.0)
        clock.wait(lambda: session.shown == session.generation == i + 1)
    import hashlib
    sha = hashlib.sha256(reference.read_bytes()).hexdigest()
    uploads = sender_for(client().url).uploads
    assert [u[0] for u in uploads].count(sha) == 1  # once, for three jobs
    later = [r["pictures"] for r in session.history[1:]]
    assert all(p["pictures"] == 4 and p["uploaded"] == 3 for p in later), later  # the maps changed, not the face
    assert client().has_picture(sha)
    record = json.loads(Image.open(json.loads(live_planes(bpy, "Shot 1")[0]["characterforge_files"])[0])
                        .text["characterforge"])
    assert record["job"]["identity"]["references"] == 1 and record["job"]["draft"]
    # Generate while Live is on makes a draft (this profile can draft)
    assert live.generate_drafts(bpy.context) and not s.draft
    assert bpy.ops.characterforge.generate() == {"FINISHED"}
    jobs.wait_all(timeout=300)
    generated = [o for o in bpy.data.collections["CharacterForge Shots"].children["Shot 1"].objects
                 if live_plane.LIVE not in o]
    assert len(generated) == 1 and generated[0][planes.DRAFT] and generated[0].name.endswith("(draft)")
    # Keep: the live picture becomes a normal result, which Regenerate as Final makes again in full
    bpy.ops.characterforge.live()  # off: the live plane stays
    assert live.session() is None and len(live_planes(bpy, "Shot 1")) == 1
    assert bpy.ops.characterforge.live_keep() == {"FINISHED"}
    kept = bpy.context.active_object
    assert not live_planes(bpy, "Shot 1") and kept[planes.DRAFT] and kept.visible_get()
    assert os.path.isfile(planes.file_of(kept)) and os.path.basename(os.path.dirname(planes.file_of(kept))) == "Shot 1"
    assert bpy.ops.characterforge.regenerate(new_seed=False, final=True) == {"FINISHED"}
    jobs.wait_all(timeout=300)
    assert s.job_state == "completed", s.job_message
    final = bpy.context.scene.objects[[o.name for o in bpy.data.collections["CharacterForge Shots"].children["Shot 1"]
                                       .objects if o.visible_get()][0]]
    assert not final[planes.DRAFT] and final["characterforge_seed"] == kept["characterforge_seed"] and final != kept


def test_a_live_shot_sends_the_background_once_and_composites_on_it(bpy, live_scene, tmp_path):
    """Live picture 'Characters in the shot': the shot's job on its background, which goes by
    hash after the first picture."""
    import hashlib

    from PIL import Image

    from characterforge_addon.blender.generation import generation, live, planes
    from characterforge_addon.client.pictures import sender_for
    rig = live_scene
    scene = bpy.context.scene
    s = scene.characterforge
    background = tmp_path / "harbour.png"
    Image.new("RGB", (96, 128), (40, 90, 160)).save(background)
    generation.place_background_picture(bpy.context, str(background), scene.camera, "Shot 1")
    s.live_job, s.fix_hands, s.background_prompt = "SHOT", False, "a harbour at dawn"
    bpy.ops.characterforge.live()
    session = live.session()
    clock = Clock(session)
    clock.step(0.0)
    clock.wait(lambda: session.shown == 1)
    move(rig, "hand_ik.L", -0.2)
    bpy.context.view_layer.update()
    clock.step(live.QUIET_S)
    clock.wait(lambda: session.shown == session.generation == 2)
    sha = hashlib.sha256(background.read_bytes()).hexdigest()
    assert [u[0] for u in sender_for(client().url).uploads].count(sha) == 1
    (plane,) = live_planes(bpy, "Shot 1")
    record = json.loads(Image.open(planes.file_of(plane)).text["characterforge"])
    assert record["job"]["kind"] == "shot" and record["job"]["draft"]
    assert plane.visible_get() and plane.location.z == pytest.approx(-planes.distance_for(scene.camera, planes.PICTURE))


def test_turning_live_off_cancels_the_running_job(bpy, live_scene):
    from characterforge_addon.blender.generation import live
    bpy.ops.characterforge.live()
    session = live.session()
    clock = Clock(session)
    clock.step(0.0)
    clock.wait(lambda: session.record(1).get("job_id") and client().status(session.record(1)["job_id"])["step"] > 0,
               what="the live job running")
    assert bpy.ops.characterforge.live() == {"FINISHED"}
    assert live.session() is None and not bpy.context.scene.characterforge.live
    session.worker.thread.join(timeout=30)
    assert not session.worker.alive()
    assert backend_status(session.record(1)["job_id"]) == "canceled"


def test_live_on_a_profile_without_a_draft_setting_is_refused_with_the_reason(bpy, scene, tmp_path, backend_env):
    from characterforge_addon.blender.generation import live
    from characterforge_addon.blender.generation.live_operators import CHARACTERFORGE_OT_live
    from characterforge_addon.blender.ui import live_panel
    from characterforge_addon.core.errors import UserError
    write_profile(str(backend_env), "tiny-no-draft", drop_draft=True)
    posed_scene(bpy, scene, tmp_path)
    bpy.ops.characterforge.use_profile(name="tiny-no-draft")
    try:
        assert not CHARACTERFORGE_OT_live.poll(bpy.context)  # greyed in the panel and the header
        with pytest.raises(RuntimeError, match="draft setting"):
            bpy.ops.characterforge.live()
        with pytest.raises(UserError) as refused:
            live.start(bpy.context)
        assert "tiny-no-draft" in str(refused.value) and "draft_lora" in str(refused.value)
        assert "Download Models" in str(refused.value) and live.session() is None
        assert not live.generate_drafts(bpy.context)  # nor does Generate draft
        calls = []
        live_panel.draw(CheckingLayout(bpy, calls), bpy.context)
        text = " ".join(t for kind, t in calls if kind == "label")
        assert "Live needs a profile with a draft setting" in text and "draft_lora" in text
        # a profile naming a draft model this machine lacks: the backend's refusal stops Live, saying which
        write_profile(str(backend_env), "tiny-draft-missing", draft_lora=str(tmp_path / "no_such_draft_lora.safetensors"))
        bpy.ops.characterforge.use_profile(name="tiny-draft-missing")
        assert bpy.ops.characterforge.live() == {"FINISHED"}
        session = live.session()
        Clock(session).wait(lambda: live.session() is None, timeout=180, what="the refusal")
        message = scene.characterforge.live_message
        assert message.startswith("Live stopped") and "draft_lora" in message and scene.characterforge.live_failed
    finally:
        live.stop()
        bpy.ops.characterforge.use_profile(name="")


def test_batch_units_draft_only_when_the_batch_file_says_so(bpy, scene, tmp_path):
    sys.path.insert(0, SCRIPTS)
    import batch
    from batch_units import unit_spec

    from characterforge_addon.blender.generation import live
    from characterforge_addon.blender.maps import controls
    posed_scene(bpy, scene, tmp_path)
    s = scene.characterforge
    s.draft = s.live = True  # the scene drafts (Live on): its batch renders do not
    assert live.generate_drafts(bpy.context)
    manifest = controls.render_controls(bpy.context, str(tmp_path / "maps"), preview=False)
    shot = types.SimpleNamespace(**dict(batch.SHOT_DEFAULTS, prompt="a knight"))
    assert unit_spec(shot, str(tmp_path / "maps"), manifest, 1)["draft"] is False
    shot.draft = True
    assert unit_spec(shot, str(tmp_path / "maps"), manifest, 1)["draft"] is True
    s.live = s.draft = False


def test_the_fingerprint_changes_with_what_a_live_job_sends_and_only_with_that(bpy, scene, tmp_path):
    """The live session redraws on a change of its fingerprint: every setting the job sends counts
    (camera, prompt, a rig's character and its identity picks, the profile, a set mesh moved), our
    own result planes and unsent settings do not."""
    from characterforge_addon.blender.generation import live
    from characterforge_addon.blender.rig.rig import ROLE
    rig = posed_scene(bpy, scene, tmp_path)
    s = scene.characterforge
    pack = s.characters.add()
    pack.name = "Hero pack"
    for _ in range(2):
        pack.faces.add()
    rig.characterforge.character = "Hero pack"
    wall = bpy.data.objects.new("Wall", bpy.data.meshes.new("Wall"))
    plane = bpy.data.objects.new("Result", bpy.data.meshes.new("Result"))
    plane[ROLE] = "result_plane"
    for obj in (wall, plane):
        scene.collection.objects.link(obj)
    camera = scene.camera

    def print_of(profile="tiny"):
        bpy.context.view_layer.update()
        return live.fingerprint(scene, profile=profile)

    changes = {
        "camera moved": lambda: setattr(camera, "location", (0.2, -5.0, 0.9)),
        "lens": lambda: setattr(camera.data, "lens", 50),
        "prompt": lambda: setattr(s, "prompt", "a knight in gold armour"),
        "rig's prompt": lambda: setattr(rig.characterforge, "prompt", "a bard"),
        "identity pick": lambda: setattr(pack.faces[1], "use", False),
        "resolution": lambda: setattr(scene.render, "resolution_x", 128),
        "set mesh moved": lambda: setattr(wall, "location", (0.0, 3.0, 0.0)),
        "pose": lambda: move(rig, rig.pose.bones[0].name, 0.05),
    }
    before = print_of()
    assert print_of() == before, "nothing changed, yet the fingerprint did"
    assert print_of(profile="tiny-other") != before, "the profile"
    for what, change in changes.items():
        change()
        after = print_of()
        assert after != before, what
        before = after
    plane.location = (0.0, 1.0, 0.0)  # our own plane: the live picture itself moves nothing
    s.results_dir = str(tmp_path / "elsewhere")  # where results go: not what the job sends
    assert print_of() == before


def test_the_bench_prints_the_latency_split_on_the_tiny_profile(tmp_path):
    root = os.path.dirname(SCRIPTS)
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    for key in ("CHARACTERFORGE_DATA", "CHARACTERFORGE_PORT", "CHARACTERFORGE_PROFILE"):
        env.pop(key, None)
    done = subprocess.run([sys.executable, os.path.join(SCRIPTS, "bench", "bench_live.py"), "--profile", "tiny",
                           "--size", "64", "--changes", "2", "--data", str(tmp_path / "data")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    from characterforge_addon.blender.generation.live import STAGES
    for stage in STAGES:
        assert f"{stage:<10}" in out, out
    assert "pose change -> new plane" in out and "warm" in out
