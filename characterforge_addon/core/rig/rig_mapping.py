"""Map OpenPose joints onto the bones of an existing armature (Rigify, Mixamo or by hand).

A mapping is {joint key: (bone name, "head" | "tail")}, with joint keys such as
"body.left_elbow", "left_hand.index_2" or "face.jaw_00". Joints left out are missing.
"""

import functools

from ..errors import UserError
from . import skeleton as sk
from .rig_layout import build_layout

PARTS = ("body", "left_hand", "right_hand", "face")
PART_JOINTS = {"body": sk.BODY_JOINTS, "left_hand": sk.HAND_JOINTS,
                "right_hand": sk.HAND_JOINTS, "face": sk.FACE_JOINTS}


class RigMappingError(UserError):
    """A mapping that names bones the armature lacks."""


def joint_keys(part=None):
    parts = PARTS if part is None else (part,)
    return [f"{p}.{j}" for p in parts for j in PART_JOINTS[p]]


@functools.lru_cache(maxsize=1)
def _characterforge_mapping():
    layout = build_layout()
    return tuple((f"{part}.{joint}", target)
                 for part in PARTS for joint, target in zip(PART_JOINTS[part], layout.joints[part]))


def characterforge_mapping():
    """Our rig's mapping (the same for every height and preset: only positions change)."""
    return dict(_characterforge_mapping())


def _rigify_names():
    body = {"neck": ("spine.004", "head"), "nose": ("nose.002", "head")}
    hands = {}
    for side, word in (("L", "left"), ("R", "right")):
        body.update({
            f"{word}_shoulder": (f"upper_arm.{side}", "head"), f"{word}_elbow": (f"forearm.{side}", "head"),
            f"{word}_wrist": (f"hand.{side}", "head"), f"{word}_hip": (f"thigh.{side}", "head"),
            f"{word}_knee": (f"shin.{side}", "head"), f"{word}_ankle": (f"foot.{side}", "head"),
            f"{word}_eye": (f"eye.{side}", "head"), f"{word}_ear": (f"ear.{side}", "head"),
        })
        hand = {"wrist": (f"hand.{side}", "head")}
        for finger in sk.FINGERS:
            stem = "thumb" if finger == "thumb" else f"f_{finger}"
            for i in (1, 2, 3):
                hand[f"{finger}_{i}"] = (f"{stem}.0{i}.{side}", "head")
            hand[f"{finger}_4"] = (f"{stem}.03.{side}", "tail")
        hands[f"{word}_hand"] = hand
    return body, hands


def _mixamo_names():
    body = {"neck": ("Neck", "head"), "nose": None}
    hands = {}
    for side, word in (("Left", "left"), ("Right", "right")):
        body.update({
            f"{word}_shoulder": (f"{side}Arm", "head"), f"{word}_elbow": (f"{side}ForeArm", "head"),
            f"{word}_wrist": (f"{side}Hand", "head"), f"{word}_hip": (f"{side}UpLeg", "head"),
            f"{word}_knee": (f"{side}Leg", "head"), f"{word}_ankle": (f"{side}Foot", "head"),
            f"{word}_eye": (f"{side}Eye", "head"), f"{word}_ear": None,
        })
        hand = {"wrist": (f"{side}Hand", "head")}
        for finger in sk.FINGERS:
            for i in (1, 2, 3, 4):
                hand[f"{finger}_{i}"] = (f"{side}Hand{finger.capitalize()}{i}", "head")
        hands[f"{word}_hand"] = hand
    return body, hands


def _match(bone_names, convention, name):
    """The armature's bone for a convention's bone `name`, or None."""
    if convention == "RIGIFY":
        for prefix in ("DEF-", "ORG-", ""):
            if prefix + name in bone_names:
                return prefix + name
        return None
    # Mixamo bones carry a namespace prefix such as "mixamorig:" or "mixamorig1:".
    for bone in bone_names:
        if bone == name or bone.rsplit(":", 1)[-1] == name:
            return bone
    return None


def detect_convention(bone_names):
    names = set(bone_names)
    if {"hand_ik.L", "face.jaw_00", "upper_arm.L"} <= names:
        return "CHARACTERFORGE"
    if _match(names, "RIGIFY", "upper_arm.L") and _match(names, "RIGIFY", "forearm.L"):
        return "RIGIFY"
    if _match(names, "MIXAMO", "LeftForeArm"):
        return "MIXAMO"
    return None


def auto_mapping(bone_names):
    """(convention, mapping) for an armature's bone names; joints without a bone are left out."""
    names = set(bone_names)
    convention = detect_convention(names)
    if convention == "CHARACTERFORGE":
        return convention, characterforge_mapping()
    if convention is None:
        return None, {}
    body, hands = (_rigify_names if convention == "RIGIFY" else _mixamo_names)()
    mapping = {}
    for part, table in (("body", body), ("left_hand", hands["left_hand"]), ("right_hand", hands["right_hand"])):
        for joint, target in table.items():
            bone = target and _match(names, convention, target[0])
            if bone:
                mapping[f"{part}.{joint}"] = (bone, target[1])
    return convention, mapping


def resolve(bone_names, overrides=(), rig_name="the armature"):
    """Automatic mapping with manual overrides applied; checks every named bone exists.

    `overrides`: (joint key, bone name, end) triples; an empty bone name unmaps that joint.
    """
    names = set(bone_names)
    convention, mapping = auto_mapping(names)
    valid_keys = set(joint_keys())
    for key, bone, end in overrides:
        if key not in valid_keys:
            raise RigMappingError(f"{rig_name}: joint mapping names unknown joint {key!r}; "
                                  f"use a key like 'body.left_elbow' or 'left_hand.index_2'")
        if end not in ("head", "tail"):
            raise RigMappingError(f"{rig_name}: joint {key} must use the bone's head or tail, got {end!r}")
        if bone:
            mapping[key] = (bone, end)
        else:
            mapping.pop(key, None)
    missing = sorted({bone for bone, _ in mapping.values() if bone not in names})
    if missing:
        raise RigMappingError(
            f"{rig_name} has no bone named {', '.join(repr(b) for b in missing)}, but the joint mapping uses "
            f"{'it' if len(missing) == 1 else 'them'}: fix or clear those rows in Pose > Own rig mapping")
    if not mapping:
        raise RigMappingError(f"{rig_name}: no OpenPose joint could be mapped (bone names are neither Rigify "
                              "nor Mixamo): map the joints by hand in Pose > Own rig mapping")
    return convention, mapping
