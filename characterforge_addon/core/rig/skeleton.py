"""The OpenPose keypoint spec: body-18 (COCO order), 21 points per hand, 70 face points.

Orders, limb sequences and colours follow controlnet_aux's drawing code, which is what
OpenPose ControlNets were trained on. Indices here are 0-based.
"""

BODY_JOINTS = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)

# controlnet_aux limbSeq, 0-based, in drawing order (the order decides overlaps).
BODY_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)

# One colour per limb and per joint (RGB), as controlnet_aux.
BODY_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
LIMB_INTENSITY = 0.6
BODY_STICK_WIDTH = 4
BODY_POINT_RADIUS = 4

FINGERS = ("thumb", "index", "middle", "ring", "pinky")
# wrist, then 4 points per finger from the palm outwards.
HAND_JOINTS = ("wrist",) + tuple(f"{finger}_{i}" for finger in FINGERS for i in range(1, 5))
HAND_EDGES = tuple(
    edge
    for f in range(5)
    for edge in ((0, 4 * f + 1), (4 * f + 1, 4 * f + 2), (4 * f + 2, 4 * f + 3), (4 * f + 3, 4 * f + 4))
)
HAND_POINT_COLOR = (0, 0, 255)
HAND_LINE_WIDTH = 2
HAND_POINT_RADIUS = 4

# 68 dlib/iBUG points plus the two pupils, as OpenPose's face model.
FACE_GROUPS = (
    ("jaw", 17), ("right_brow", 5), ("left_brow", 5), ("nose_bridge", 4), ("nose_base", 5),
    ("right_eye", 6), ("left_eye", 6), ("outer_lip", 12), ("inner_lip", 8),
    ("right_pupil", 1), ("left_pupil", 1),
)
FACE_JOINTS = tuple(
    name if count == 1 else f"{name}_{i:02d}" for name, count in FACE_GROUPS for i in range(count)
)
FACE_POINT_COLOR = (255, 255, 255)
FACE_POINT_RADIUS = 3

# controlnet_aux skips hand and face points at or left of/above this normalised coordinate.
EDGE_EPS = 0.01

assert len(BODY_JOINTS) == 18 and len(BODY_LIMBS) == 17
assert len(HAND_JOINTS) == 21 and len(HAND_EDGES) == 20
assert len(FACE_JOINTS) == 70


def hand_edge_color(index):
    """Colour of hand edge `index`: HSV hue index/20 at full saturation and value, as controlnet_aux."""
    h = index / float(len(HAND_EDGES)) * 6.0
    sector = int(h) % 6
    f = h - int(h)
    q, t = 1.0 - f, f
    rgb = ((1, t, 0), (q, 1, 0), (0, 1, t), (0, q, 1), (t, 0, 1), (1, 0, q))[sector]
    return tuple(c * 255.0 for c in rgb)
