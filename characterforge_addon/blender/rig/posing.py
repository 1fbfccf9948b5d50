"""Apply built-in poses, and save and load poses as JSON, on armatures."""

import json
import math
import os

from mathutils import Euler, Matrix, Quaternion, Vector

from ...core.errors import UserError
from ...core.image_io import write_atomic
from ...core.rig import poses
from ...core.rig.rig_layout import build_layout
from .rig import is_characterforge_rig


def reset_pose(rig):
    for pb in rig.pose.bones:
        pb.location = (0.0, 0.0, 0.0)
        pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
        pb.rotation_euler = (0.0, 0.0, 0.0)
        pb.scale = (1.0, 1.0, 1.0)


def _armature_rotation_to_local(pb, rotation):
    """A rotation about armature axes (rest frame) as the bone's local pose rotation."""
    rest = pb.bone.matrix_local.to_3x3()
    return (rest.inverted() @ rotation @ rest).to_quaternion()


def _set_rotation(pb, quaternion):
    if pb.rotation_mode == "QUATERNION":
        pb.rotation_quaternion = quaternion
    elif pb.rotation_mode == "AXIS_ANGLE":
        axis, angle = quaternion.to_axis_angle()
        pb.rotation_axis_angle = (angle, *axis)
    else:
        pb.rotation_euler = quaternion.to_euler(pb.rotation_mode)


def apply_library_pose(context, rig, name):
    """Pose a CharacterForge rig with a built-in pose (scaled to its height and proportions)."""
    settings = rig.characterforge
    if not is_characterforge_rig(rig):
        raise UserError(f"'{rig.name}' is not a CharacterForge rig: built-in poses need its IK controls; "
                        "load a saved pose JSON instead, or add a rig with Pose > Add rig")
    pose = poses.library_pose(name, settings.preset)
    hu = build_layout(settings.height, settings.preset).head_unit
    reset_pose(rig)
    bones = rig.pose.bones
    for bone, degrees in pose.rotations.items():
        rotation = Euler([math.radians(d) for d in degrees], "XYZ").to_matrix()
        _set_rotation(bones[bone], _armature_rotation_to_local(bones[bone], rotation))
    for bone, offset in pose.offsets.items():
        pb = bones[bone]
        pb.location = pb.bone.matrix_local.to_3x3().inverted() @ (Vector(offset) * hu)
    if pose.turn:
        _set_rotation(bones["root"], _armature_rotation_to_local(bones["root"], Matrix.Rotation(math.radians(pose.turn), 3, "Z")))
    context.view_layer.update()


def pose_channels(rig):
    channels = {}
    for pb in rig.pose.bones:
        if pb.rotation_mode == "QUATERNION":
            q = pb.rotation_quaternion
        elif pb.rotation_mode == "AXIS_ANGLE":
            angle, *axis = pb.rotation_axis_angle
            q = Quaternion(axis, angle)
        else:
            q = pb.rotation_euler.to_quaternion()
        channels[pb.name] = {"location": [round(v, 6) for v in pb.location],
                             "rotation_quaternion": [round(v, 6) for v in q],
                             "scale": [round(v, 6) for v in pb.scale]}
    return channels


def apply_channels(rig, channels):
    """Pose `rig` with channels as pose_channels wrote them ({bone: location, quaternion,
    scale}); bones it lacks are skipped. Returns how many bones were posed."""
    reset_pose(rig)
    posed = 0
    for name, ch in channels.items():
        pb = rig.pose.bones.get(name)
        if pb is None:
            continue
        pb.location = Vector(ch["location"])
        _set_rotation(pb, Quaternion(ch["rotation_quaternion"]))
        pb.scale = ch["scale"]
        posed += 1
    return posed


def rig_height(rig):
    if rig.characterforge.is_rig and is_characterforge_rig(rig):
        return rig.characterforge.height
    zs = [b.head_local.z for b in rig.data.bones] + [b.tail_local.z for b in rig.data.bones]
    return max(max(zs) - min(zs), 1e-3)


def save_pose(rig, path, name=""):
    doc = poses.pose_document(name or os.path.splitext(os.path.basename(path))[0], rig_height(rig), pose_channels(rig))
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        write_atomic(path, json.dumps(doc, indent=1).encode("utf-8"))
    except OSError as exc:
        raise UserError(f"cannot write pose file {path} ({exc.strerror or exc}): choose another folder") from None


def load_pose(context, rig, path):
    """Apply a saved pose; returns the names of bones in the file that this rig lacks."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read pose file {path} ({getattr(exc, 'strerror', None) or exc})") from None
    doc = poses.parse_pose(text, source=f"pose file {path}")
    bones = rig.pose.bones
    known = [name for name in doc["bones"] if name in bones]
    if not known:
        raise UserError(f"pose file {path} names none of the bones of '{rig.name}': it was saved from another rig")
    scale = rig_height(rig) / doc["rig_height"]
    reset_pose(rig)
    for name in known:
        ch, pb = doc["bones"][name], bones[name]
        pb.location = Vector(ch["location"]) * scale
        _set_rotation(pb, Quaternion(ch["rotation_quaternion"]))
        pb.scale = ch["scale"]
    context.view_layer.update()
    return sorted(set(doc["bones"]) - set(known))
