"""Import Pose in Blender: a rig posed (built-in poses, random valid poses) exports its OpenPose
JSON through the scene camera; a fresh rig of the same proportions imports it and its own
re-export matches. Other proportions, a camera from above, a sequence, flips, several people,
a body-only file, malformed files, the panel and the headless script."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "blender_scripts")
POSES = ("T_POSE", "A_POSE", "RELAXED", "STANDING", "WALKING", "SITTING", "TURN_FRONT", "TURN_THREE_QUARTER",
         "TURN_SIDE", "TURN_THREE_QUARTER_BACK", "TURN_BACK")
HEIGHTS = {"ADULT": 1.75, "CHILD": 1.2, "CHIBI": 1.0}


def frame_rig(scene, height, above=False):
    """Point the 256x320 scene camera at a rig of `height` standing at the origin."""
    cam = scene.camera
    scene.render.resolution_x, scene.render.resolution_y = 256, 320
    distance = 2.6 * height + 0.5
    if above:
        cam.location = (0.0, -0.75 * distance, 0.5 * height + 0.8 * distance)
        cam.rotation_euler = (math.radians(42), 0.0, 0.0)
    else:
        cam.location = (0.0, -distance, 0.55 * height)
        cam.rotation_euler = (math.radians(90), 0.0, 0.0)


def export(bpy, scene, rig, path):
    """The rig's keypoints through the scene camera, as the control maps write them."""
    from characterforge_addon.blender.rig import joints
    from characterforge_addon.core.rig import keypoints
    bpy.context.view_layer.update()
    person, _ = joints.project_rig(scene, bpy.context.evaluated_depsgraph_get(), scene.camera,
                                   joints.camera_model(scene, scene.camera), rig)
    w, h = scene.render.resolution_x, scene.render.resolution_y
    with open(path, "w") as f:
        f.write(keypoints.to_openpose_json(w, h, [person]))
    return person


def remove(bpy, rig):
    for obj in list(rig.children) + [rig]:
        bpy.data.objects.remove(obj)


def fresh(bpy, name, preset):
    from characterforge_addon.blender.rig import posing, rig as rig_module
    made = rig_module.add_rig(bpy.context, name, HEIGHTS[preset], preset)
    posing.apply_library_pose(bpy.context, made, "A_POSE")
    for obj in bpy.context.selected_objects:
        obj.select_set(False)
    made.select_set(True)
    bpy.context.view_layer.objects.active = made
    return made


def round_trip(bpy, scene, tmp_path, preset, pose=None, randomize=None, above=False):
    """(fit of the re-export against the export, the import's report)."""
    from characterforge_addon.blender.rig import joints, posing
    from characterforge_addon.core.rig import pose_fit
    frame_rig(scene, HEIGHTS[preset], above)
    source = fresh(bpy, "Source", preset)
    if pose:
        posing.apply_library_pose(bpy.context, source, pose)
    if randomize is not None:
        random_valid_pose(bpy, source, randomize)
    path = str(tmp_path / "pose.json")
    exported = export(bpy, scene, source, path)
    remove(bpy, source)
    target = fresh(bpy, "Target", preset)
    assert bpy.ops.characterforge.import_pose(filepath=path) == {"FINISHED"}
    again, _ = joints.project_rig(scene, bpy.context.evaluated_depsgraph_get(), scene.camera,
                                  joints.camera_model(scene, scene.camera), target)
    fit = pose_fit.fit_figure(exported, again)
    assert target.characterforge.pose_import.fit == pose_fit.describe(fit)  # the panel's figure is this one
    remove(bpy, target)
    return fit


def random_valid_pose(bpy, rig, rng):
    """A pose within the joints' ranges, set the way an animator would: FK spine and head, IK
    hands and feet within reach, curled fingers."""
    from mathutils import Euler, Vector

    from characterforge_addon.blender.rig import posing
    from characterforge_addon.core.rig.rig_layout import build_layout
    u = rng.uniform
    layout = build_layout(rig.characterforge.height, rig.characterforge.preset)
    hu, bones = layout.head_unit, rig.pose.bones
    posing.reset_pose(rig)

    def turn(name, x, y, z):
        rotation = Euler([math.radians(v) for v in (x, y, z)], "XYZ").to_matrix()
        posing._set_rotation(bones[name], posing._armature_rotation_to_local(bones[name], rotation))

    def move(name, offset):
        pb = bones[name]
        pb.location = pb.bone.matrix_local.to_3x3().inverted() @ Vector(offset)

    turn("hips", u(-8, 8), u(-8, 8), u(-45, 45))
    move("hips", (u(-0.1, 0.1), u(-0.1, 0.1), u(-0.05, 0.0)))
    for name, m in (("spine", 10), ("chest", 10), ("neck", 12), ("head", 20)):
        turn(name, u(-m, m), u(-m, m), u(-m, m))
    arm = (layout.bone("upper_arm.L").tail - layout.bone("upper_arm.L").head)
    reach = float(np.linalg.norm(arm)) * 2.0
    for side, s in (("L", 1), ("R", -1)):
        # the hand somewhere in front of or beside the body, within reach of the shoulder
        shoulder = layout.bone(f"upper_arm.{side}").head
        wrist = layout.bone(f"hand.{side}").head
        a, b = math.radians(u(-70, 60)), math.radians(u(-80, 40))
        target = shoulder + reach * u(0.55, 0.9) * np.array([s * math.cos(a) * math.cos(b), -math.sin(a) * math.cos(b)
                                                               if a > 0 else -0.3 * math.sin(-a), math.sin(b)])
        move(f"hand_ik.{side}", target - wrist)
        turn(f"hand_ik.{side}", u(-40, 40), u(-40, 40), u(-30, 30))
        move(f"foot_ik.{side}", (u(-0.1, 0.1) * hu, u(-0.6, 0.6) * hu, u(0.0, 0.8) * hu))
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            for k in (1, 2, 3):
                turn(f"{finger}_{k:02d}.{side}", 0.0, s * u(0, 50), 0.0)
    bpy.context.view_layer.update()


@pytest.mark.parametrize("pose", POSES)
def test_built_in_poses_round_trip_through_the_rigs_own_export(bpy, scene, tmp_path, pose):
    fit = round_trip(bpy, scene, tmp_path, "ADULT", pose)
    assert fit["body"]["pck"] >= 0.95, fit
    assert fit["hands"]["pck"] >= 0.9 and fit["face"]["pck"] >= 0.95, fit


@pytest.mark.parametrize("preset, pose, above", [("CHILD", "WALKING", False), ("CHIBI", "SITTING", False),
                                                 ("CHIBI", "RELAXED", True), ("ADULT", "WALKING", True),
                                                 ("ADULT", "SITTING", True), ("CHILD", "TURN_THREE_QUARTER", True)])
def test_other_proportions_and_a_camera_from_above(bpy, scene, tmp_path, preset, pose, above):
    fit = round_trip(bpy, scene, tmp_path, preset, pose, above=above)
    assert fit["body"]["pck"] >= 0.95 and fit["hands"]["pck"] >= 0.9, fit


@pytest.mark.parametrize("preset, seed, above", [("ADULT", 1, False), ("ADULT", 2, True), ("CHILD", 3, False)])
def test_random_valid_poses_round_trip(bpy, scene, tmp_path, preset, seed, above):
    fit = round_trip(bpy, scene, tmp_path, preset, randomize=np.random.default_rng(seed), above=above)
    assert fit["body"]["pck"] >= 0.95 and fit["hands"]["pck"] >= 0.9, fit


def channels(rig, names):
    return {n: (tuple(rig.pose.bones[n].rotation_quaternion), tuple(rig.pose.bones[n].location)) for n in names}


def test_a_body_only_file_leaves_hands_and_face_as_they_were(bpy, scene, tmp_path):
    from characterforge_addon.blender.rig import posing
    frame_rig(scene, 1.75)
    source = fresh(bpy, "Source", "ADULT")
    posing.apply_library_pose(bpy.context, source, "WALKING")
    exported = export(bpy, scene, source, str(tmp_path / "full.json"))
    remove(bpy, source)
    doc = json.loads(open(tmp_path / "full.json").read())
    for key in ("hand_left_keypoints_2d", "hand_right_keypoints_2d", "face_keypoints_2d"):
        del doc["people"][0][key]
    (tmp_path / "body.json").write_text(json.dumps(doc))
    target = fresh(bpy, "Target", "ADULT")
    posing.apply_library_pose(bpy.context, target, "SITTING")  # fingers curled 30 degrees
    target.pose.bones["face.outer_lip_03"].location = (0.0, 0.0, 0.004)
    kept = [n for n in (b.name for b in target.pose.bones) if n.startswith(("index_", "thumb_", "face."))]
    before = channels(target, kept)
    bpy.context.view_layer.update()
    bones = target.pose.bones
    relative = {s: (bones[f"forearm.{s}"].matrix.inverted() @ bones[f"hand.{s}"].matrix).to_3x3() for s in "LR"}
    assert bpy.ops.characterforge.import_pose(filepath=str(tmp_path / "body.json")) == {"FINISHED"}
    assert channels(target, kept) == before
    for s in "LR":
        now = (target.pose.bones[f"forearm.{s}"].matrix.inverted() @ target.pose.bones[f"hand.{s}"].matrix).to_3x3()
        assert np.allclose(np.array(now), np.array(relative[s]), atol=1e-4)  # the hand kept its turn to the forearm
    state = target.characterforge.pose_import
    assert "kept as they were (not in the file): left hand and fingers, right hand and fingers, face" in state.left
    assert state.fit.startswith("body PCK@0.05 1.00") and "hands" not in state.fit
    assert exported.body[:, 2].all()


@pytest.mark.parametrize("content, message", [
    (b"this is not json", "is not valid JSON"),
    (b'{"canvas_width": 256, "canvas_height": 320, "people": [{"pose_keypoints_2d": [1, 2]}]}',
     "people[0].pose_keypoints_2d has 2 numbers"),
    (b'{"canvas_width": 256, "canvas_height": 320, "people": [{"pose_keypoints_2d": [NaN' + b", 1" * 53 + b"]}]}",
     "people[0].pose_keypoints_2d[0] is nan, not a finite number"),
    (b'{"canvas_width": 256, "canvas_height": 320, "people": []}', "people is empty"),
])
def test_malformed_files_are_refused_and_the_rig_is_untouched(bpy, scene, tmp_path, content, message):
    frame_rig(scene, 1.75)
    target = fresh(bpy, "Target", "ADULT")
    before = channels(target, [b.name for b in target.pose.bones])
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    from characterforge_addon.blender.rig import pose_import
    from characterforge_addon.core.errors import UserError
    with pytest.raises(UserError) as err:
        pose_import.import_files(bpy.context, [str(path)], target)
    assert message in str(err.value) and str(path) in str(err.value)
    with pytest.raises(RuntimeError, match="people is empty|not valid JSON|numbers|nan"):
        bpy.ops.characterforge.import_pose(filepath=str(path))  # the operator reports it as an error
    assert channels(target, list(before)) == before


def fcurves(obj):
    """The object's F-curves (Blender 4.4+ keeps them per action slot)."""
    action = obj.animation_data.action
    if hasattr(action, "fcurves"):
        return action.fcurves
    from bpy_extras import anim_utils
    return anim_utils.action_get_channelbag_for_slot(action, obj.animation_data.action_slot).fcurves


@pytest.mark.smoke  # keys and actions differ between Blender 4.2 and 5
def test_a_sequence_of_files_keys_one_frame_each_and_a_flip_turns_a_limb(bpy, scene, tmp_path):
    from characterforge_addon.blender.rig import joints, posing
    from characterforge_addon.core.rig import pose_fit
    frame_rig(scene, 1.75)
    source = fresh(bpy, "Source", "ADULT")
    people = []
    for n, pose in enumerate(("A_POSE", "WALKING", "SITTING")):
        posing.apply_library_pose(bpy.context, source, pose)
        people.append(export(bpy, scene, source, str(tmp_path / f"pose_{n:02d}.json")))
    remove(bpy, source)
    target = fresh(bpy, "Target", "ADULT")
    scene.frame_set(5)
    files = [str(tmp_path / f"pose_{n:02d}.json") for n in range(3)]
    assert bpy.ops.characterforge.import_pose(directory=str(tmp_path), files=[{"name": os.path.basename(f)}
                                                                              for f in reversed(files)]) == {"FINISHED"}
    hips = fcurves(target).find('pose.bones["hips"].location', index=2)
    assert [k.co[0] for k in hips.keyframe_points] == [5.0, 6.0, 7.0]
    for n, frame in enumerate((5, 6, 7)):  # each frame plays back its own file's pose
        scene.frame_set(frame)
        again, _ = joints.project_rig(scene, bpy.context.evaluated_depsgraph_get(), scene.camera,
                                      joints.camera_model(scene, scene.camera), target)
        assert pose_fit.fit_figure(people[n], again)["body"]["pck"] >= 0.95
    # flip the left thigh of the last frame: another depth, the same picture
    chosen = json.loads(target.characterforge.pose_import.choices)["thigh.L"]
    knee = target.pose.bones["shin.L"].head.copy()
    assert bpy.ops.characterforge.flip_limb(limb="thigh.L") == {"FINISHED"}
    assert json.loads(target.characterforge.pose_import.choices)["thigh.L"] != chosen
    assert (target.pose.bones["shin.L"].head - knee).length > 0.05
    assert target.characterforge.pose_import.flips == 1 << 4
    assert target.characterforge.pose_import.fit.startswith("body PCK@0.05 1.00")


def test_several_people_one_rig_each_by_name(bpy, scene, tmp_path):
    from characterforge_addon.blender.rig import posing
    from characterforge_addon.core.rig import keypoints
    frame_rig(scene, 1.75)
    scene.camera.location.y -= 1.0
    hero, kid = fresh(bpy, "Hero", "ADULT"), fresh(bpy, "Kid", "CHILD")
    kid.location = (0.8, 0.4, 0.0)
    posing.apply_library_pose(bpy.context, hero, "WALKING")
    posing.apply_library_pose(bpy.context, kid, "SITTING")
    from characterforge_addon.blender.rig import joints
    bpy.context.view_layer.update()
    people = [joints.project_rig(scene, bpy.context.evaluated_depsgraph_get(), scene.camera,
                                 joints.camera_model(scene, scene.camera), r)[0] for r in (kid, hero)]
    (tmp_path / "two.json").write_text(keypoints.to_openpose_json(256, 320, people))
    for r in (hero, kid):
        posing.apply_library_pose(bpy.context, r, "A_POSE")
    hero.select_set(True)
    kid.select_set(True)
    bpy.context.view_layer.objects.active = hero
    s = scene.characterforge.pose_import
    s.people = "EACH"
    assert bpy.ops.characterforge.import_pose(filepath=str(tmp_path / "two.json")) == {"FINISHED"}
    for r in (hero, kid):
        fit = r.characterforge.pose_import.fit
        assert fit.startswith("body PCK@0.05 1.00"), (r.name, fit)
    assert s.last_people.startswith(("Hero", "Kid")) and len(s.last_people.split("|")) == 2
    s.people = "ONE"
    assert bpy.ops.characterforge.import_pose_person(number=2) == {"FINISHED"}  # the smaller one onto Hero
    assert s.person == 2
    with pytest.raises(RuntimeError, match="Person 3 does not exist"):
        bpy.ops.characterforge.import_pose_person(number=3)


def test_the_import_pose_panel_draws_people_fit_and_flips(bpy, scene, tmp_path):
    import types

    from test_panels import CheckingLayout

    from characterforge_addon.blender.ui import pose_import_panel
    frame_rig(scene, 1.75)
    round_trip_rig = fresh(bpy, "Hero", "ADULT")
    calls = []
    panel = pose_import_panel.CHARACTERFORGE_PT_pose_import
    assert panel.poll(bpy.context)
    panel.draw(types.SimpleNamespace(layout=CheckingLayout(bpy, calls)), bpy.context)
    assert ("operator", "characterforge.import_pose") in calls and ("prop", "picture") in calls
    assert not any(c == ("operator", "characterforge.flip_limb") for c in calls)
    export(bpy, scene, round_trip_rig, str(tmp_path / "self.json"))
    assert bpy.ops.characterforge.import_pose(filepath=str(tmp_path / "self.json")) == {"FINISHED"}
    calls.clear()
    panel.draw(types.SimpleNamespace(layout=CheckingLayout(bpy, calls)), bpy.context)
    assert sum(c == ("operator", "characterforge.flip_limb") for c in calls) == 10
    assert ("operator", "characterforge.import_pose_person") in calls
    assert any(c[0] == "label" and c[1].startswith("body PCK@0.05 1.00") for c in calls)


def test_the_headless_script_imports_a_sequence_and_refuses_a_bad_file(bpy, scene, tmp_path):
    from characterforge_addon.blender.rig import posing
    frame_rig(scene, 1.75)
    source = fresh(bpy, "Source", "ADULT")
    for n, pose in enumerate(("RELAXED", "WALKING")):
        posing.apply_library_pose(bpy.context, source, pose)
        export(bpy, scene, source, str(tmp_path / f"walk_{n}.json"))
    out = tmp_path / "posed.blend"
    run = subprocess.run([sys.executable, os.path.join(SCRIPTS, "import_pose.py"), "--frames",
                          str(tmp_path / "walk_*.json"), "--start", "10", "--save", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=os.path.dirname(SCRIPTS))
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stdout.splitlines() if line.startswith("[pose]")]
    assert "walk_0.json -> Character frame 10: body PCK@0.05" in lines[0] and "frame 11" in lines[1], lines
    assert os.path.isfile(out)
    (tmp_path / "bad.json").write_text('{"people": []}')
    run = subprocess.run([sys.executable, os.path.join(SCRIPTS, "import_pose.py"), str(tmp_path / "bad.json")],
                         capture_output=True, text=True, timeout=600, cwd=os.path.dirname(SCRIPTS))
    assert run.returncode == 1 and run.stderr.strip().splitlines()[-1].startswith("error: pose file"), run.stderr


def test_pose_from_picture_end_to_end_on_the_tiny_profile(bpy, scene, tmp_path, backend_env):
    """A drawn OpenPose picture (a rig's own control map) goes to the backend's detector (the
    test profile's stand-in reads drawings through controlnet_aux's own code) and the people it
    finds land on another rig, with the fit figure."""
    from characterforge_addon.blender.generation import jobs
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.blender.rig import joints, posing
    from characterforge_addon.core.rig import keypoints, pose_fit
    frame_rig(scene, 1.75)
    scene.camera.location = (0.0, -2.1, 0.9)  # the figure fills the picture: the stand-in reads its strokes
    source = fresh(bpy, "Source", "ADULT")
    posing.apply_library_pose(bpy.context, source, "STANDING")
    truth = export(bpy, scene, source, str(tmp_path / "truth.json"))
    controls.render_controls(bpy.context, str(tmp_path / "maps"), preview=False)
    remove(bpy, source)
    target = fresh(bpy, "Target", "ADULT")
    s = scene.characterforge
    s.results_dir = str(tmp_path / "results")
    s.pose_import.picture = str(tmp_path / "maps" / "openpose.png")
    assert bpy.ops.characterforge.pose_from_picture() == {"FINISHED"}
    jobs.wait_all(timeout=600)
    assert s.job_state == "completed", s.job_message
    assert s.job_message.startswith("Pose from openpose.png: body PCK@0.05")
    found = tmp_path / "results" / "poses" / "openpose" / "pose.json"
    doc = json.loads(found.read_text())
    assert doc["detector"].startswith("tiny stand-in") and len(doc["people"]) == 1
    assert s.pose_import.last_file == str(found) and s.pose_import.last_people.startswith("Person 1 (middle")
    state = target.characterforge.pose_import
    assert state.source == "pose.json" and state.fit.startswith("body PCK@0.05")
    # what the detector found is where the source rig's joints were, and the target now shows it
    again, _ = joints.project_rig(scene, bpy.context.evaluated_depsgraph_get(), scene.camera,
                                  joints.camera_model(scene, scene.camera), target)
    detected = np.asarray(doc["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    assert (detected[:, 2] > 0).sum() >= 12
    fit = pose_fit.fit_figure(keypoints.Person(body=np.where(detected[:, 2:] > 0, truth.body, 0.0)), again)
    assert fit["body"]["pck"] >= 0.9, fit
