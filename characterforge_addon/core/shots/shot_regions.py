"""Regions of a shot picked from the rig's keypoints (pure): the boxes the hands' fix pass
redraws and the face box an expression edit redraws, in the job's pixels."""

import numpy as np

HAND_PAD = 0.6     # around a hand's joints, as a share of their extent: fingers reach past them
FACE_PAD = 0.35
MIN_SIDE = 24      # smaller hands and faces are left alone: too few pixels to redraw


def _box(points, pad, width, height, sx, sy):
    present = points[points[:, 2] > 0]
    if len(present) < 2:
        return None
    xs, ys = present[:, 0] * sx, present[:, 1] * sy
    side = max(np.ptp(xs), np.ptp(ys)) * (1 + 2 * pad)
    if side < MIN_SIDE:
        return None
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    x0, y0 = max(0, int(np.floor(cx - side / 2))), max(0, int(np.floor(cy - side / 2)))
    x1, y1 = min(width, int(np.ceil(cx + side / 2))), min(height, int(np.ceil(cy + side / 2)))
    return [x0, y0, x1, y1] if x1 - x0 >= MIN_SIDE // 2 and y1 - y0 >= MIN_SIDE // 2 else None


def hand_boxes(people, width, height, source_size=None):
    """A box around each hand of each person (keypoints.Person), scaled from `source_size`
    (the maps' size) to width x height."""
    sx, sy = _scale(width, height, source_size)
    boxes = (_box(hand, HAND_PAD, width, height, sx, sy) for p in people for hand in (p.left_hand, p.right_hand))
    return [b for b in boxes if b]


def face_box(person, width, height, source_size=None):
    """The box around a person's face keypoints (or, without them, nose, eyes and ears), or None."""
    sx, sy = _scale(width, height, source_size)
    found = _box(person.face, FACE_PAD, width, height, sx, sy)
    if found is None:
        head = person.body[[0, 14, 15, 16, 17]]  # nose, eyes, ears
        found = _box(head, FACE_PAD * 2, width, height, sx, sy)
    return found


def _scale(width, height, source_size):
    if not source_size:
        return 1.0, 1.0
    return width / source_size[0], height / source_size[1]
