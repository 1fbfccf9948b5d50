"""Draw OpenPose skeletons with numpy alone (Blender's Python has neither cv2 nor PIL).

Reproduces controlnet_aux's drawing (util.draw_bodypose/draw_handpose/draw_facepose), the
pictures OpenPose ControlNets were trained on: the same colours, limb order, stick width,
0.6 limb intensity and integer rounding. Dots match cv2 pixel for pixel; limb ellipses and
hand edges differ from cv2's fixed-point scan conversion by about a pixel along their edges.

Each kind of primitive is computed for a whole part at once (vectorised), then written in
controlnet_aux's drawing order, so later strokes cover earlier ones exactly as there.
"""

import numpy as np

from ..rig import skeleton as sk


def blank_canvas(width, height):
    return np.zeros((height, width, 3), dtype=np.uint8)


def draw_people(width, height, people):
    canvas = blank_canvas(width, height)
    for person in people:
        draw_person(canvas, person)
    return canvas


def draw_person(canvas, person):
    """Draw one person (a `keypoints.Person`) the way controlnet_aux's draw_poses does."""
    _draw_body(canvas, person.body)
    for hand in (person.left_hand, person.right_hand):
        _draw_hand(canvas, hand)
    _draw_face(canvas, person.face)
    return canvas


# ---------------------------------------------------------------------------------------------
# Parts

_LIMB_A = np.array([a for a, _ in sk.BODY_LIMBS])
_LIMB_B = np.array([b for _, b in sk.BODY_LIMBS])
_LIMB_COLORS = [tuple(int(c * sk.LIMB_INTENSITY) for c in color) for color in sk.BODY_COLORS]
_HAND_EDGE_A = np.array([a for a, _ in sk.HAND_EDGES])
_HAND_EDGE_B = np.array([b for _, b in sk.HAND_EDGES])
_HAND_EDGE_COLORS = [tuple(int(np.rint(c)) for c in sk.hand_edge_color(i)) for i in range(len(sk.HAND_EDGES))]


def _draw_body(canvas, body):
    present = body[:, 2] > 0
    limbs = np.flatnonzero(present[_LIMB_A] & present[_LIMB_B])
    if len(limbs):
        a, b = body[_LIMB_A[limbs], :2], body[_LIMB_B[limbs], :2]
        # controlnet_aux's arithmetic: truncated centre, half length and angle in degrees
        centers = ((a + b) / 2.0).astype(np.int64)
        half_lengths = (np.hypot(*(a - b).T) / 2.0).astype(np.int64)
        angles = np.degrees(np.arctan2(a[:, 1] - b[:, 1], a[:, 0] - b[:, 0])).astype(np.int64)
        px, py = ellipse_polygons(centers, half_lengths, sk.BODY_STICK_WIDTH, angles)
        for limb, pixels in zip(limbs, convex_fill(canvas.shape, px, py)):
            _paint(canvas, pixels, _LIMB_COLORS[limb])
    dots = np.flatnonzero(present)
    for joint, pixels in zip(dots, discs(canvas.shape, body[dots, :2].astype(np.int64), sk.BODY_POINT_RADIUS)):
        _paint(canvas, pixels, sk.BODY_COLORS[joint])


def _past_edge(points):
    # controlnet_aux tests the truncated pixel against eps, which drops points on the top/left edge
    ints = points[:, :2].astype(np.int64)
    return (points[:, 2] > 0) & (ints[:, 0] > sk.EDGE_EPS) & (ints[:, 1] > sk.EDGE_EPS)


def _draw_hand(canvas, hand):
    shown = _past_edge(hand)
    if not shown.any():
        return
    edges = np.flatnonzero(shown[_HAND_EDGE_A] & shown[_HAND_EDGE_B])
    if len(edges):
        ints = hand[:, :2].astype(np.int64)
        strokes = thick_lines(canvas.shape, ints[_HAND_EDGE_A[edges]], ints[_HAND_EDGE_B[edges]])
        for edge, pixels in zip(edges, strokes):
            _paint(canvas, pixels, _HAND_EDGE_COLORS[edge])
    for pixels in discs(canvas.shape, hand[shown, :2].astype(np.int64), sk.HAND_POINT_RADIUS):
        _paint(canvas, pixels, sk.HAND_POINT_COLOR)


def _draw_face(canvas, face):
    shown = _past_edge(face)
    pixels = discs(canvas.shape, face[shown, :2].astype(np.int64), sk.FACE_POINT_RADIUS)
    if pixels:
        _paint(canvas, np.concatenate(pixels), sk.FACE_POINT_COLOR)


def _paint(canvas, flat_pixels, color):
    canvas.reshape(-1, 3)[flat_pixels] = color


# ---------------------------------------------------------------------------------------------
# Rasterisation, after OpenCV's ellipse2Poly, fillConvexPoly, circle and line.
# Each function takes many primitives and returns, per primitive, the flat indices of the
# canvas pixels it covers (clipped to the canvas).

_DEGREES = np.radians(np.arange(0, 361))
_COS, _SIN = np.cos(_DEGREES), np.sin(_DEGREES)


def ellipse_polygons(centers, half_lengths, half_width, angles_deg):
    """Integer polygons (x, y), one row per ellipse, as cv2.ellipse2Poly(c, axes, angle, 0, 360, 1).

    cv2 drops repeated consecutive points; repeats change nothing for filling, so they stay.
    """
    angles = np.radians(np.asarray(angles_deg) % 360)
    alpha = np.cos(angles).astype(np.float32)[:, None]
    beta = np.sin(angles).astype(np.float32)[:, None]
    x = half_lengths[:, None] * _COS[None, :]
    y = half_width * _SIN[None, :]
    px = np.rint(centers[:, 0:1] + x * alpha - y * beta).astype(np.int64)
    py = np.rint(centers[:, 1:2] + x * beta + y * alpha).astype(np.int64)
    return px, py


def _line_pixels(x0, y0, x1, y1):
    """8-connected lines between integer points: (x, y, index of the line) for every pixel."""
    dx, dy = x1 - x0, y1 - y0
    steps = np.maximum(np.maximum(np.abs(dx), np.abs(dy)), 1)
    line = np.repeat(np.arange(len(x0)), steps + 1)
    t = (np.arange(line.size) - np.repeat(np.cumsum(steps + 1) - (steps + 1), steps + 1)) / steps[line]
    x = np.floor(x0[line] + dx[line] * t + 0.5).astype(np.int64)
    y = np.floor(y0[line] + dy[line] * t + 0.5).astype(np.int64)
    return x, y, line


def _split_flat(shape, x, y, owner, count):
    """Keep in-canvas pixels, turn them into flat indices and split them per owner."""
    h, w = shape[:2]
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    flat, owner = y[inside] * w + x[inside], owner[inside]
    order = np.argsort(owner, kind="stable")
    return np.split(flat[order], np.cumsum(np.bincount(owner, minlength=count))[:-1])


def convex_fill(shape, px, py):
    """Fill closed integer polygons (rows of px, py) as cv2.fillConvexPoly: the edges drawn as
    8-connected lines and each row filled between its outermost edge pixels."""
    n, m = px.shape
    x, y, edge = _line_pixels(px.ravel(), py.ravel(), np.roll(px, -1, axis=1).ravel(), np.roll(py, -1, axis=1).ravel())
    poly = edge // m
    top = py.min(axis=1)
    span = int((py.max(axis=1) - top).max()) + 1
    key = poly * span + (y - top[poly])
    left = np.full(n * span, np.iinfo(np.int64).max)
    right = np.full(n * span, np.iinfo(np.int64).min)
    np.minimum.at(left, key, x)
    np.maximum.at(right, key, x)
    h, w = shape[:2]
    rows = np.tile(np.arange(span), n) + np.repeat(top, span)
    owner = np.repeat(np.arange(n), span)
    left, right = np.maximum(left, 0), np.minimum(right, w - 1)
    ok = (left <= right) & (rows >= 0) & (rows < h)
    rows, left, right, owner = rows[ok], left[ok], right[ok], owner[ok]
    lengths = right - left + 1
    flat = np.repeat(rows * w + left, lengths) + (np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    owner = np.repeat(owner, lengths)
    return np.split(flat, np.cumsum(np.bincount(owner, minlength=n))[:-1])


_DISC_OFFSETS = {}


def discs(shape, centers, radius):
    """Filled circles as cv2.circle(..., thickness=-1): pixels with dx² + dy² <= r²."""
    if radius not in _DISC_OFFSETS:
        r = np.arange(-radius, radius + 1)
        dy, dx = np.nonzero(r[:, None] ** 2 + r[None, :] ** 2 <= radius * radius)
        _DISC_OFFSETS[radius] = (dx - radius, dy - radius)
    if len(centers) == 0:
        return []
    dx, dy = _DISC_OFFSETS[radius]
    x = (centers[:, 0:1] + dx[None, :]).ravel()
    y = (centers[:, 1:2] + dy[None, :]).ravel()
    return _split_flat(shape, x, y, np.repeat(np.arange(len(centers)), len(dx)), len(centers))


_PLUS = (np.array([0, 1, -1, 0, 0]), np.array([0, 0, 0, 1, -1]))


def thick_lines(shape, starts, ends):
    """Lines two pixels wide with round ends, like cv2.line(..., thickness=2): 8-connected
    lines stamped with a radius-1 disc."""
    x, y, line = _line_pixels(starts[:, 0], starts[:, 1], ends[:, 0], ends[:, 1])
    dx, dy = _PLUS
    return _split_flat(shape, (x[:, None] + dx).ravel(), (y[:, None] + dy).ravel(),
                       np.repeat(line, len(dx)), len(starts))
