"""Poses: the built-in pose library, and the JSON file format for saved poses.

A built-in pose is described for the CharacterForge rig as rotations of FK bones (Euler XYZ
degrees about the armature's axes, in the rest frame, so no bone-roll convention is involved)
plus offsets of the IK controls and hips from rest, in head units, so one pose fits every
height and proportion preset. A saved pose records every pose channel exactly.
"""

import json
import math
from dataclasses import dataclass, field

from ..errors import UserError
from .rig_layout import PROPORTIONS, SIDES

POSE_FORMAT = "characterforge.pose"
POSE_VERSION = 1

# name -> (label, description)
LIBRARY = {
    "T_POSE": ("T-pose", "Rest pose: arms straight out"),
    "A_POSE": ("A-pose", "Arms 45° down, the usual character-sheet stance"),
    "RELAXED": ("Relaxed standing", "Arms at the sides, soft elbows and fingers"),
    "STANDING": ("Standing, arms apart", "Relaxed standing, arms a little away from the body: the model-sheet stance"),
    "WALKING": ("Walking", "Mid-stride, left foot forward, arms swinging"),
    "SITTING": ("Sitting", "Seated on a knee-high surface, hands on the thighs"),
    "TURN_FRONT": ("Turnaround: front", "A-pose facing the front camera"),
    "TURN_THREE_QUARTER": ("Turnaround: 3/4 front", "A-pose turned 45°"),
    "TURN_SIDE": ("Turnaround: side", "A-pose turned 90°"),
    "TURN_THREE_QUARTER_BACK": ("Turnaround: 3/4 back", "A-pose turned 135°"),
    "TURN_BACK": ("Turnaround: back", "A-pose turned 180°"),
}
TURNAROUND = {"TURN_FRONT": 0, "TURN_THREE_QUARTER": 45, "TURN_SIDE": 90,
              "TURN_THREE_QUARTER_BACK": 135, "TURN_BACK": 180}


class PoseFileError(UserError):
    """A pose file that cannot be used; the message names the file, the field and the fix."""


@dataclass
class LibraryPose:
    rotations: dict = field(default_factory=dict)  # bone -> (x, y, z) degrees about armature axes
    offsets: dict = field(default_factory=dict)    # control bone -> (x, y, z) head units, armature space
    turn: float = 0.0                              # degrees about the vertical axis (root)


def _sign(side):
    return 1.0 if side == "L" else -1.0


def _arms_down(pose, p, degrees, bend=0.0, swing=None):
    """Lower both arms by `degrees` from horizontal; `bend` pulls the hand in (fraction of arm)."""
    arm = p["upper_arm"] + p["forearm"]
    reach = arm * (1.0 - bend)
    a = math.radians(degrees)
    for side in SIDES:
        s = _sign(side)
        forward = (swing or {}).get(side, 0.0) * arm
        x = s * (reach * math.cos(a) - arm)
        pose.offsets[f"hand_ik.{side}"] = (x, -forward, -reach * math.sin(a))


def _curl_fingers(pose, degrees):
    """Bend every finger joint towards the palm (palms face down in the rest T-pose)."""
    for side in SIDES:
        s = _sign(side)
        for finger in ("index", "middle", "ring", "pinky"):
            for i in (1, 2, 3):
                pose.rotations[f"{finger}_{i:02d}.{side}"] = (0.0, s * degrees, 0.0)
        pose.rotations[f"thumb_02.{side}"] = (0.0, s * degrees * 0.5, 0.0)


def library_pose(name, preset="ADULT"):
    """The built-in pose `name` for a rig of proportion `preset`."""
    if name not in LIBRARY:
        raise KeyError(f"unknown pose {name!r}: use one of {', '.join(LIBRARY)}")
    p = PROPORTIONS[preset]
    pose = LibraryPose()
    if name == "A_POSE" or name in TURNAROUND:
        _arms_down(pose, p, 45)
        _curl_fingers(pose, 10)
        pose.turn = TURNAROUND.get(name, 0)
    elif name == "STANDING":  # the silhouette stays readable: hands clear of the hips
        _arms_down(pose, p, 70, bend=0.04)
        for side in SIDES:  # the hands hang in line with the forearms, palms towards the body
            pose.rotations[f"hand_ik.{side}"] = (0.0, _sign(side) * 70.0, 0.0)
        _curl_fingers(pose, 15)
    elif name == "RELAXED":
        _arms_down(pose, p, 78, bend=0.04)
        _curl_fingers(pose, 20)
        pose.rotations["head"] = (4.0, 0.0, 3.0)
        pose.offsets["hips"] = (0.0, 0.0, -0.02)
    elif name == "WALKING":
        leg = p["thigh"] + p["shin"]
        stride = 0.22 * leg
        pose.offsets["hips"] = (0.0, 0.0, -0.04 * leg)
        pose.offsets["foot_ik.L"] = (0.0, -stride, 0.02 * leg)
        pose.offsets["foot_ik.R"] = (0.0, stride, 0.06 * leg)
        pose.rotations["foot_ik.R"] = (-20.0, 0.0, 0.0)  # heel up on the back foot
        _arms_down(pose, p, 80, bend=0.06, swing={"L": -0.25, "R": 0.25})
        _curl_fingers(pose, 25)
        pose.rotations["spine"] = (4.0, 0.0, 0.0)
    elif name == "SITTING":
        drop = p["thigh"] * 0.92
        pose.offsets["hips"] = (0.0, 0.0, -drop)
        for side in SIDES:
            s = _sign(side)
            pose.offsets[f"foot_ik.{side}"] = (s * 0.1, -p["thigh"] * 0.95, 0.0)
            arm = p["upper_arm"] + p["forearm"]
            # wrists on the thighs, half way to the knees
            pose.offsets[f"hand_ik.{side}"] = (
                s * (p["hip"] + 0.1 - p["shoulder"] - arm),
                -p["thigh"] * 0.55,
                -(p["torso"] + drop) + 0.45,
            )
        pose.rotations["spine"] = (-4.0, 0.0, 0.0)
        _curl_fingers(pose, 30)
    return pose


# ---------------------------------------------------------------------------------------------
# Saved poses (JSON)

def pose_document(name, rig_height, channels):
    """A saved pose. `channels`: bone -> {"location", "rotation_quaternion", "scale"}."""
    return {"format": POSE_FORMAT, "version": POSE_VERSION, "name": name,
            "rig_height": rig_height, "bones": channels}


def _numbers(value, count, where):
    if not isinstance(value, list) or len(value) != count:
        raise PoseFileError(f"{where} must be a list of {count} numbers")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise PoseFileError(f"{where} must hold finite numbers, got {v!r}")
        out.append(float(v))
    return out


def parse_pose(text, source="pose file"):
    """Validate a saved pose; raises PoseFileError naming `source` and the bad field."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PoseFileError(f"{source} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                            "re-save the pose from CharacterForge or fix the file") from None
    if not isinstance(doc, dict) or doc.get("format") != POSE_FORMAT:
        raise PoseFileError(f"{source} is not a CharacterForge pose (\"format\" must be \"{POSE_FORMAT}\")")
    if doc.get("version") != POSE_VERSION:
        raise PoseFileError(f"{source} has pose version {doc.get('version')!r}; this add-on reads version {POSE_VERSION}")
    height = doc.get("rig_height")
    if isinstance(height, bool) or not isinstance(height, (int, float)) or not 0 < height < 1e4:
        raise PoseFileError(f"{source}: \"rig_height\" must be a positive number of metres, got {height!r}")
    bones = doc.get("bones")
    if not isinstance(bones, dict) or not bones:
        raise PoseFileError(f"{source}: \"bones\" must map bone names to their pose channels")
    channels = {}
    for bone, ch in bones.items():
        where = f"{source}: bones[{bone!r}]"
        if not isinstance(ch, dict):
            raise PoseFileError(f"{where} must be an object with location, rotation_quaternion and scale")
        channels[bone] = {
            "location": _numbers(ch.get("location", [0, 0, 0]), 3, f"{where}.location"),
            "rotation_quaternion": _numbers(ch.get("rotation_quaternion", [1, 0, 0, 0]), 4, f"{where}.rotation_quaternion"),
            "scale": _numbers(ch.get("scale", [1, 1, 1]), 3, f"{where}.scale"),
        }
    return pose_document(str(doc.get("name", "")), float(height), channels)
