"""The CharacterForge rig in rest pose: bones, which bone end carries each OpenPose joint,
and the proxy body parts, for a height and a proportion preset.

Blender axes: Z up, the character faces -Y, its left side is +X (bones `.L`). Rest pose is a
T-pose. Lengths are worked out in head units, then scaled to the requested height.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from . import skeleton as sk

# Lengths in head units (one head = chin to crown). Each preset sums to its head count.
PROPORTIONS = {
    "ADULT": dict(heads=7.5, ankle=0.3, shin=1.75, thigh=1.85, torso=2.35, upper_arm=1.4,
                  forearm=1.2, hand=0.75, shoulder=0.95, hip=0.45, limb=1.0),
    "CHILD": dict(heads=5.5, ankle=0.25, shin=1.1, thigh=1.2, torso=1.7, upper_arm=0.95,
                  forearm=0.8, hand=0.55, shoulder=0.8, hip=0.4, limb=0.85),
    "CHIBI": dict(heads=3.0, ankle=0.12, shin=0.4, thigh=0.45, torso=0.8, upper_arm=0.45,
                  forearm=0.4, hand=0.3, shoulder=0.55, hip=0.3, limb=0.6),
}
PRESET_NAMES = {"ADULT": "Adult", "CHILD": "Child", "CHIBI": "Stylised (chibi)"}

HEAD_RADII = (0.36, 0.42, 0.5)  # half width, half depth, half height, in head units
SIDES = ("L", "R")  # bone suffixes; L is +X


@dataclass
class BoneSpec:
    name: str
    head: np.ndarray
    tail: np.ndarray
    parent: str = ""
    collection: str = "Body"
    deform: bool = True
    connect: bool = False


@dataclass
class ProxyPart:
    bone: str
    start: np.ndarray
    end: np.ndarray
    width: float          # half size across `side`
    depth: float          # half size across side x axis
    side: tuple = (1.0, 0.0, 0.0)
    cap: float = 0.3      # fraction of the length rounded off at each end (0.5 = ellipsoid)
    hands: bool = False   # hands go into their own object, for the hand depth map


@dataclass
class RigLayout:
    height: float
    preset: str
    head_unit: float
    bones: list = field(default_factory=list)
    # part ("body", "left_hand", "right_hand", "face") -> one (bone, "head"|"tail") per OpenPose joint
    joints: dict = field(default_factory=dict)
    parts: list = field(default_factory=list)

    def bone(self, name):
        return next(b for b in self.bones if b.name == name)


def _v(*xyz):
    return np.array(xyz, dtype=np.float64)


def _sign(side):
    return 1.0 if side == "L" else -1.0


def face_template():
    """The 70 OpenPose face points as (x, z, forward) on the face, in head-radius units.

    x runs towards the character's left (+X), z up from the head centre, forward is extra
    protrusion (nose, lips) in units of the head's half depth.
    """
    pts = []
    for i in range(17):  # jaw, from the character's right ear round the chin to its left
        a = math.pi * i / 16
        pts.append((-0.95 * math.cos(a), 0.12 - 1.1 * math.sin(a), 0.0))
    for sign in (-1, 1):  # right brow (image left) then left brow, inner to outer order as dlib
        xs = np.linspace(-0.78, -0.22, 5) if sign < 0 else np.linspace(0.22, 0.78, 5)
        for x in xs:
            pts.append((x, 0.3 + 0.07 * math.sin(math.pi * (abs(x) - 0.22) / 0.56), 0.02))
    for i in range(4):  # nose bridge, top down, more and more forward
        pts.append((0.0, 0.16 - 0.14 * i, 0.06 + 0.08 * i))
    for x in np.linspace(-0.2, 0.2, 5):  # nose base
        pts.append((x, -0.3 - 0.03 * (1 - abs(x) / 0.2), 0.08 * (1 - abs(x) / 0.2) + 0.02))
    angles6 = np.radians([180, 120, 60, 0, -60, -120])
    for cx in (-0.42, 0.42):  # eyes, from the image-left corner clockwise over the top
        for a in angles6:
            pts.append((cx + 0.17 * math.cos(a), 0.12 + 0.06 * math.sin(a), 0.0))
    for a in np.radians(np.arange(180, -180, -30)):  # outer lip
        pts.append((0.3 * math.cos(a), -0.55 + 0.12 * math.sin(a), 0.04))
    for a in np.radians(np.arange(180, -180, -45)):  # inner lip
        pts.append((0.2 * math.cos(a), -0.55 + 0.035 * math.sin(a), 0.04))
    pts.append((-0.42, 0.12, 0.01))  # right pupil
    pts.append((0.42, 0.12, 0.01))   # left pupil
    assert len(pts) == len(sk.FACE_JOINTS)
    return pts


def _on_head(center, hu, x, z, forward):
    """A point on the front of the head ellipsoid (slightly outside it, so it is seen)."""
    rx, ry, rz = (r * hu for r in HEAD_RADII)
    inside = max(0.0, 1.0 - x * x - z * z)
    y = -ry * (math.sqrt(inside) + forward + 0.03)
    return center + _v(x * rx, y, z * rz)


def _hand_vector(side, hu, p):
    """Wrist to the middle knuckle: the hand bone, and its IK control, which it copies."""
    return _v(_sign(side) * 0.46, -0.035, 0) * p["hand"] * hu


def _hand(layout, side, wrist, hu, p):
    """Finger bones in T-pose: palm down, fingers along ±X, thumb forward (-Y)."""
    s = _sign(side)
    length = p["hand"] * hu
    # (finger, knuckle x, knuckle y, segment lengths) as fractions of the hand length
    fingers = (
        ("thumb", 0.1, -0.12, (0.16, 0.13, 0.12)),
        ("index", 0.44, -0.11, (0.22, 0.13, 0.1)),
        ("middle", 0.46, -0.035, (0.24, 0.15, 0.11)),
        ("ring", 0.44, 0.04, (0.22, 0.14, 0.1)),
        ("pinky", 0.4, 0.11, (0.17, 0.1, 0.09)),
    )
    hand = f"hand.{side}"
    layout.bones.append(BoneSpec(hand, wrist, wrist + _hand_vector(side, hu, p), f"forearm.{side}"))
    joints = [(hand, "head")]
    for finger, kx, ky, segs in fingers:
        start = wrist + _v(s * kx * length, ky * length, -0.02 * length)
        # the thumb points forward and out; the fingers straight out
        direction = _v(s * 0.6, -0.8, -0.1) if finger == "thumb" else _v(s, 0, 0)
        direction /= np.linalg.norm(direction)
        parent = hand
        for i, seg in enumerate(segs, start=1):
            name = f"{finger}_{i:02d}.{side}"
            end = start + direction * seg * length
            layout.bones.append(BoneSpec(name, start, end, parent, "Fingers", connect=i > 1))
            joints.append((name, "head"))
            radius = (0.055 if finger == "thumb" else 0.045) * hu * p["limb"]
            layout.parts.append(ProxyPart(name, start, end, radius, radius, cap=0.45, hands=True))
            parent, start = name, end
        joints.append((parent, "tail"))
    palm_end = wrist + _v(s * 0.44 * length, -0.035 * length, -0.02 * length)
    layout.parts.append(ProxyPart(hand, wrist, palm_end, 0.2 * length, 0.07 * hu * p["limb"], side=(0, 1, 0), cap=0.3, hands=True))
    return joints


def build_layout(height=1.75, preset="ADULT"):
    if preset not in PROPORTIONS:
        raise ValueError(f"unknown proportion preset {preset!r}: use one of {', '.join(PROPORTIONS)}")
    if not 0.05 <= height <= 100:
        raise ValueError(f"rig height {height} m is outside 0.05-100 m")
    p = PROPORTIONS[preset]
    hu = height / p["heads"]
    limb = p["limb"]
    layout = RigLayout(height, preset, hu)
    add = layout.bones.append

    ankle_z = p["ankle"] * hu
    knee_z = ankle_z + p["shin"] * hu
    hip_z = knee_z + p["thigh"] * hu
    neck_z = hip_z + p["torso"] * hu
    head_center = _v(0, 0, height - HEAD_RADII[2] * hu)
    chin_z = head_center[2] - HEAD_RADII[2] * hu
    hips = _v(0, 0, hip_z)
    neck = _v(0, 0, neck_z)

    add(BoneSpec("root", _v(0, 0, 0), _v(0, 0, 0.6 * hu), collection="Controls", deform=False))
    add(BoneSpec("hips", hips, hips + _v(0, 0, 0.25 * p["torso"] * hu), "root"))
    spine_top = hips + _v(0, 0, 0.55 * p["torso"] * hu)
    add(BoneSpec("spine", hips + _v(0, 0, 0.25 * p["torso"] * hu), spine_top, "hips", connect=True))
    add(BoneSpec("chest", spine_top, neck, "spine", connect=True))
    add(BoneSpec("neck", neck, _v(0, 0, chin_z + 0.15 * hu), "chest", connect=True))
    add(BoneSpec("head", _v(0, 0, chin_z + 0.15 * hu), _v(0, 0, height), "neck", connect=True))

    face = [_on_head(head_center, hu, *pt) for pt in face_template()]
    nose_tip = face[sk.FACE_JOINTS.index("nose_bridge_03")] + _v(0, -0.02 * hu, 0)
    add(BoneSpec("nose", nose_tip, nose_tip + _v(0, -0.1 * hu, 0), "head", "Face", deform=False))
    for side in SIDES:
        s = _sign(side)
        eye = face[sk.FACE_JOINTS.index("left_pupil" if side == "L" else "right_pupil")]
        add(BoneSpec(f"eye.{side}", eye, eye + _v(0, -0.1 * hu, 0), "head", "Face", deform=False))
        ear = head_center + _v(s * HEAD_RADII[0] * hu * 1.02, 0.05 * hu, 0.02 * hu)
        add(BoneSpec(f"ear.{side}", ear, ear + _v(s * 0.1 * hu, 0, 0), "head", "Face", deform=False))
    for name, point in zip(sk.FACE_JOINTS, face):
        add(BoneSpec(f"face.{name}", point, point + _v(0, -0.04 * hu, 0), "head", "Face", deform=False))

    hand_joints = {}
    for side in SIDES:
        s = _sign(side)
        shoulder = neck + _v(s * p["shoulder"] * hu, 0, -0.05 * hu)
        # Elbows and knees are bent a little at rest so IK knows which way they fold.
        elbow = shoulder + _v(s * p["upper_arm"] * hu, 0.04 * hu, 0)
        wrist = shoulder + _v(s * (p["upper_arm"] + p["forearm"]) * hu, 0, 0)
        hip = hips + _v(s * p["hip"] * hu, 0, 0)
        knee = _v(hip[0], -0.04 * hu, knee_z)
        ankle = _v(hip[0], 0, ankle_z)
        toe = ankle + _v(0, -0.85 * hu * limb, -ankle_z * 0.8)
        add(BoneSpec(f"shoulder.{side}", neck, shoulder, "chest"))
        add(BoneSpec(f"upper_arm.{side}", shoulder, elbow, f"shoulder.{side}", connect=True))
        add(BoneSpec(f"forearm.{side}", elbow, wrist, f"upper_arm.{side}", connect=True))
        add(BoneSpec(f"thigh.{side}", hip, knee, "hips"))
        add(BoneSpec(f"shin.{side}", knee, ankle, f"thigh.{side}", connect=True))
        add(BoneSpec(f"foot.{side}", ankle, toe, f"shin.{side}", connect=True))
        # IK controls and poles (elbows bend backwards, knees forwards)
        add(BoneSpec(f"hand_ik.{side}", wrist, wrist + _hand_vector(side, hu, p), "root", "Controls", deform=False))
        add(BoneSpec(f"elbow_pole.{side}", elbow + _v(0, 2 * hu, 0), elbow + _v(0, 2.3 * hu, 0), "root", "Controls", deform=False))
        add(BoneSpec(f"foot_ik.{side}", ankle, toe, "root", "Controls", deform=False))
        add(BoneSpec(f"knee_pole.{side}", knee + _v(0, -2 * hu, 0), knee + _v(0, -2.3 * hu, 0), "root", "Controls", deform=False))
        hand_joints[side] = _hand(layout, side, wrist, hu, p)
        r = limb * hu
        layout.parts += [
            ProxyPart(f"upper_arm.{side}", shoulder, elbow, 0.2 * r, 0.2 * r),
            ProxyPart(f"forearm.{side}", elbow, wrist, 0.16 * r, 0.15 * r),
            ProxyPart(f"thigh.{side}", hip + _v(0, 0, 0.15 * hu), knee, 0.3 * r, 0.3 * r, cap=0.2),
            ProxyPart(f"shin.{side}", knee, ankle, 0.2 * r, 0.2 * r, cap=0.2),
            ProxyPart(f"foot.{side}", ankle + _v(0, 0.15 * hu, 0), toe, 0.16 * r, 0.12 * r, cap=0.35),
        ]

    torso_w = p["shoulder"] * hu
    layout.parts += [
        ProxyPart("head", head_center - _v(0, 0, HEAD_RADII[2] * hu), _v(0, 0, height),
                  HEAD_RADII[0] * hu, HEAD_RADII[1] * hu, cap=0.5),
        ProxyPart("neck", neck - _v(0, 0, 0.1 * hu), _v(0, 0, chin_z + 0.2 * hu), 0.17 * hu, 0.17 * hu, cap=0.2),
        ProxyPart("chest", spine_top - _v(0, 0, 0.15 * hu), neck + _v(0, 0, 0.1 * hu), 0.95 * torso_w, 0.45 * hu * limb, cap=0.3),
        ProxyPart("spine", hips, spine_top, 0.75 * torso_w, 0.4 * hu * limb, cap=0.3),
        ProxyPart("hips", hips - _v(0, 0, 0.45 * hu), hips + _v(0, 0, 0.3 * hu), (p["hip"] + 0.3 * limb) * hu, 0.42 * hu * limb, cap=0.4),
    ]

    body = {"nose": ("nose", "head"), "neck": ("neck", "head")}
    for side, word in (("R", "right"), ("L", "left")):
        body.update({
            f"{word}_shoulder": (f"upper_arm.{side}", "head"), f"{word}_elbow": (f"forearm.{side}", "head"),
            f"{word}_wrist": (f"hand.{side}", "head"), f"{word}_hip": (f"thigh.{side}", "head"),
            f"{word}_knee": (f"shin.{side}", "head"), f"{word}_ankle": (f"foot.{side}", "head"),
            f"{word}_eye": (f"eye.{side}", "head"), f"{word}_ear": (f"ear.{side}", "head"),
        })
    layout.joints = {
        "body": [body[name] for name in sk.BODY_JOINTS],
        "left_hand": hand_joints["L"],
        "right_hand": hand_joints["R"],
        "face": [(f"face.{name}", "head") for name in sk.FACE_JOINTS],
    }
    return layout


def joint_positions(layout):
    """Rest positions of every OpenPose joint, per part: {part: (N, 3) array}."""
    bones = {b.name: b for b in layout.bones}
    return {
        part: np.array([getattr(bones[bone], end) for bone, end in joints])
        for part, joints in layout.joints.items()
    }


SURFACE_JOINT_BONES = ("nose", "eye.L", "eye.R", "ear.L", "ear.R")


def is_surface_joint(part, bone):
    """Face points, nose, eyes and ears sit on the head's surface, not inside a limb."""
    return part == "face" or bone in SURFACE_JOINT_BONES


def see_through_bones(layout):
    """Per part, for each joint, the bones whose proxy flesh a camera ray may pass on its way
    to the joint: its own limbs (`own_bones`) and any part that encloses it at rest (the hip
    joints sit inside the pelvis). Anything else in front of the joint hides it.

    Face points, nose, eyes and ears sit on the head's surface: nothing is looked through.
    """
    bones = {b.name: b for b in layout.bones}
    out = {}
    for part, joints in layout.joints.items():
        sets = []
        for bone, end in joints:
            if is_surface_joint(part, bone):
                sets.append(frozenset())
                continue
            point = getattr(bones[bone], end)
            through = own_bones(bones, bone, end)
            for p in layout.parts:
                axis = p.end - p.start
                t = np.clip(np.dot(point - p.start, axis) / np.dot(axis, axis), 0.0, 1.0)
                if np.linalg.norm(point - (p.start + t * axis)) <= max(p.width, p.depth):
                    through.add(p.bone)
            sets.append(frozenset(through))
        out[part] = sets
    return out


def own_bones(bones, bone, end):
    """Bones whose flesh surrounds a joint: the bone and, at its head, its parent; at its
    tail, its children. A camera ray looks through these on its way to the joint.

    `bones`: name -> object with `.parent` (a name) — a BoneSpec here, or Blender's bones
    adapted by the caller.
    """
    own = {bone}
    if end == "head" and bones[bone].parent:
        own.add(bones[bone].parent)
    if end == "tail":
        own.update(name for name, b in bones.items() if b.parent == bone)
    return own
