"""The rig in real headless Blender: structure, IK, library poses, pose files, own rigs."""

import json

import numpy as np
import pytest

from characterforge_addon.core.rig import rig_layout
from characterforge_addon.core.errors import UserError


def add(bpy, preset="ADULT", height=1.75, name="Character"):
    s = bpy.context.scene.characterforge
    s.new_rig_preset, s.new_rig_height = preset, height
    assert bpy.ops.characterforge.add_rig(name=name) == {"FINISHED"}
    return bpy.context.active_object


def world(rig, bone, end="head"):
    pb = rig.pose.bones[bone]
    return np.array(rig.matrix_world @ (pb.head if end == "head" else pb.tail))


@pytest.mark.smoke
@pytest.mark.parametrize("preset", list(rig_layout.PROPORTIONS))
def test_rig_has_every_joint_and_the_height(bpy, scene, preset):
    rig = add(bpy, preset, 1.5)
    layout = rig_layout.build_layout(1.5, preset)
    assert {b.name for b in rig.data.bones} == {b.name for b in layout.bones}
    assert len([b for b in rig.data.bones if b.name.startswith("face.")]) == 70
    assert {c.name for c in rig.data.collections} == {"Body", "Fingers", "Controls", "Face"}
    bpy.ops.characterforge.apply_pose(pose="T_POSE")
    assert world(rig, "head", "tail")[2] == pytest.approx(1.5, abs=1e-4)
    meshes = [o for o in rig.children if o.type == "MESH"]
    assert sorted(o["characterforge_role"] for o in meshes) == ["proxy_body", "proxy_hands"]


@pytest.mark.smoke
def test_t_pose_is_the_rest_pose_under_ik(bpy, scene):
    rig = add(bpy)
    bpy.ops.characterforge.apply_pose(pose="T_POSE")
    for pb in rig.pose.bones:
        assert (pb.head - pb.bone.head_local).length < 1e-4, pb.name
        assert (pb.tail - pb.bone.tail_local).length < 1e-4, pb.name


def test_ik_hand_and_foot_follow_their_controls(bpy, scene):
    rig = add(bpy)
    bpy.ops.characterforge.apply_pose(pose="T_POSE")
    target = rig.pose.bones["hand_ik.L"]
    target.location = target.bone.matrix_local.to_3x3().inverted() @ __import__("mathutils").Vector((-0.3, -0.2, -0.4))
    bpy.context.view_layer.update()
    np.testing.assert_allclose(world(rig, "hand.L"), world(rig, "hand_ik.L"), atol=1e-3)


def test_library_poses_do_what_they_say(bpy, scene):
    rig = add(bpy)
    rest_hips = world(rig, "hips")[2]
    bpy.ops.characterforge.apply_pose(pose="A_POSE")
    shoulder, wrist = world(rig, "upper_arm.L"), world(rig, "hand.L")
    angle = np.degrees(np.arctan2(shoulder[2] - wrist[2], wrist[0] - shoulder[0]))
    assert angle == pytest.approx(45, abs=1)
    # fingers curl towards the palm (down, in a T-pose hand)
    assert world(rig, "middle_03.L", "tail")[2] < world(rig, "middle_01.L")[2]
    assert world(rig, "middle_03.R", "tail")[2] < world(rig, "middle_01.R")[2]

    bpy.ops.characterforge.apply_pose(pose="WALKING")
    assert world(rig, "foot.L")[1] < world(rig, "foot.R")[1] - 0.2  # left foot forward (-Y)
    assert world(rig, "hand.L")[1] > world(rig, "hand.R")[1]        # arms swing opposite

    bpy.ops.characterforge.apply_pose(pose="SITTING")
    assert world(rig, "hips")[2] < rest_hips - 0.3
    knee, hip = world(rig, "shin.L"), world(rig, "thigh.L")
    assert knee[1] < hip[1] - 0.3  # thighs forward

    bpy.ops.characterforge.apply_pose(pose="TURN_SIDE")
    nose = world(rig, "nose")
    assert abs(nose[1]) < 0.02 and abs(nose[0]) > 0.08  # facing sideways


def test_poses_scale_with_the_rig(bpy, scene):
    small = add(bpy, "CHIBI", 0.9, "Small")
    bpy.ops.characterforge.apply_pose(pose="SITTING")
    assert world(small, "hand.L")[2] > 0 and np.isfinite(world(small, "hand.L")).all()
    np.testing.assert_allclose(world(small, "hand.L"), world(small, "hand_ik.L"), atol=2e-3)


def test_pose_file_round_trip_across_heights(bpy, scene, tmp_path):
    rig = add(bpy)
    bpy.ops.characterforge.apply_pose(pose="WALKING")
    path = str(tmp_path / "walk.json")
    assert bpy.ops.characterforge.save_pose(filepath=path) == {"FINISHED"}
    doc = json.load(open(path))
    assert doc["format"] == "characterforge.pose" and "hand_ik.L" in doc["bones"]
    walking_foot = world(rig, "foot.L")
    bpy.ops.characterforge.apply_pose(pose="T_POSE")
    assert bpy.ops.characterforge.load_pose(filepath=path) == {"FINISHED"}
    np.testing.assert_allclose(world(rig, "foot.L"), walking_foot, atol=1e-4)

    tall = add(bpy, "ADULT", 3.5, "Tall")
    bpy.ops.characterforge.load_pose(filepath=path)
    np.testing.assert_allclose(world(tall, "foot.L"), walking_foot * 2, atol=2e-3)


def test_corrupt_pose_file_is_refused_and_pose_kept(bpy, scene, tmp_path):
    from characterforge_addon.blender.rig import posing
    rig = add(bpy)
    bpy.ops.characterforge.apply_pose(pose="WALKING")
    before = world(rig, "foot.L")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "characterforge.pose", "version": 1, "rig_height": 1.7, "bones": {"hips": {"location": [0, 0]}}}')
    with pytest.raises(UserError, match=r"bad.json.*location must be a list of 3"):
        posing.load_pose(bpy.context, rig, str(bad))
    with pytest.raises(RuntimeError, match="location must be a list of 3"):
        bpy.ops.characterforge.load_pose(filepath=str(bad))
    np.testing.assert_allclose(world(rig, "foot.L"), before)


def make_mixamo(bpy, scene, name="Mixamo"):
    """A small Mixamo-named armature with a mesh, built the way Mixamo exports lay bones out."""
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    chain = {"Hips": ((0, 0, 1.0), (0, 0, 1.2)), "Neck": ((0, 0, 1.45), (0, 0, 1.55)),
             "Head": ((0, 0, 1.55), (0, 0, 1.75))}
    for side, s in (("Left", 1), ("Right", -1)):
        chain.update({
            f"{side}Arm": ((0.2 * s, 0, 1.42), (0.45 * s, 0, 1.42)), f"{side}ForeArm": ((0.45 * s, 0, 1.42), (0.7 * s, 0, 1.42)),
            f"{side}Hand": ((0.7 * s, 0, 1.42), (0.8 * s, 0, 1.42)), f"{side}UpLeg": ((0.1 * s, 0, 0.95), (0.1 * s, 0, 0.5)),
            f"{side}Leg": ((0.1 * s, 0, 0.5), (0.1 * s, 0, 0.08)), f"{side}Foot": ((0.1 * s, 0, 0.08), (0.1 * s, -0.15, 0.0)),
        })
    for bone, (head, tail) in chain.items():
        eb = data.edit_bones.new(f"mixamorig:{bone}")
        eb.head, eb.tail = head, tail
    bpy.ops.object.mode_set(mode="OBJECT")
    bpy.ops.mesh.primitive_cylinder_add(radius=0.25, depth=1.7, location=(0, 0, 0.85))
    body = bpy.context.object
    body.parent = obj
    bpy.context.view_layer.objects.active = obj
    return obj


def test_own_mixamo_rig_is_mapped_and_errors_name_missing_bones(bpy, scene, tmp_path):
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.blender.rig import joints
    own = make_mixamo(bpy, scene)
    assert bpy.ops.characterforge.use_own_rig() == {"FINISHED"}
    assert own.characterforge.is_rig
    convention, mapping = joints.mapping_for(own)
    assert convention == "MIXAMO" and mapping["body.left_wrist"] == ("mixamorig:LeftHand", "head")
    manifest = controls.render_controls(bpy.context, str(tmp_path / "ok"))
    person = manifest["people"][0]
    assert person["visible"] + person["occluded"] == 15 and person["visible"] >= 6
    row = own.characterforge.joint_overrides.add()
    row.joint, row.bone, row.end = "body.nose", "mixamorig:Nose", "head"
    with pytest.raises(UserError, match="no bone named 'mixamorig:Nose'"):
        controls.render_controls(bpy.context, str(tmp_path / "bad"))
    assert not (tmp_path / "bad" / "controls.json").exists()
    with pytest.raises(UserError, match="not a CharacterForge rig"):
        from characterforge_addon.blender.rig import posing
        posing.apply_library_pose(bpy.context, own, "A_POSE")
