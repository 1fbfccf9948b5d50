"""Draw OpenPose skeletons with numpy alone (Blender's Python has neither cv2 nor PIL).

Reproduces controlnet_aux's drawing (util.draw_bodypose/draw_handpose/draw_facepose), the
pictures OpenPose ControlNets were trained on: the same colours, limb order, stick width,
0.6 limb intensity and integer rounding. Dots match cv2 pixel for pixel; limb ellipses and
hand edges differ from cv2's fixed-point scan conversion by at most a pixel along their edges.
"""

import math

import numpy as np

from . import skeleton as sk


def blank_canvas(width, height):
    return np.zeros((height, width, 3), dtype=np.uint8)


def draw_person(canvas, person):
    """Draw one person (a `keypoints.Person`) the way controlnet_aux's draw_poses does."""
    _draw_body(canvas, person.body)
    for hand in (person.left_hand, person.right_hand):
        _draw_hand(canvas, hand)
    _draw_face(canvas, person.face)
    return canvas


def draw_people(width, height, people):
    canvas = blank_canvas(width, height)
    for person in people:
        draw_person(canvas, person)
    return canvas


# ---------------------------------------------------------------------------------------------
# Parts

def _present(points):
    return points[:, 2] > 0


def _draw_body(canvas, body):
    present = _present(body)
    for (a, b), color in zip(sk.BODY_LIMBS, sk.BODY_COLORS):
        if not (present[a] and present[b]):
            continue
        xs = np.array([body[a, 0], body[b, 0]], dtype=np.float64)
        ys = np.array([body[a, 1], body[b, 1]], dtype=np.float64)
        length = math.hypot(xs[0] - xs[1], ys[0] - ys[1])
        angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
        polygon = ellipse_polygon(int(np.mean(xs)), int(np.mean(ys)), int(length / 2), sk.BODY_STICK_WIDTH, int(angle))
        fill_polygon(canvas, polygon, tuple(int(c * sk.LIMB_INTENSITY) for c in color), outline=True)
    for i, color in enumerate(sk.BODY_COLORS):
        if present[i]:
            fill_circle(canvas, int(body[i, 0]), int(body[i, 1]), sk.BODY_POINT_RADIUS, color)


def _visible_past_edge(point):
    # controlnet_aux tests the truncated pixel against eps, which drops points on the top/left edge.
    return int(point[0]) > sk.EDGE_EPS and int(point[1]) > sk.EDGE_EPS


def _draw_hand(canvas, hand):
    present = _present(hand)
    if not present.any():
        return
    for i, (a, b) in enumerate(sk.HAND_EDGES):
        if present[a] and present[b] and _visible_past_edge(hand[a]) and _visible_past_edge(hand[b]):
            color = tuple(int(np.rint(c)) for c in sk.hand_edge_color(i))
            thick_line(canvas, (int(hand[a, 0]), int(hand[a, 1])), (int(hand[b, 0]), int(hand[b, 1])), color)
    for point, ok in zip(hand, present):
        if ok and _visible_past_edge(point):
            fill_circle(canvas, int(point[0]), int(point[1]), sk.HAND_POINT_RADIUS, sk.HAND_POINT_COLOR)


def _draw_face(canvas, face):
    for point, ok in zip(face, _present(face)):
        if ok and _visible_past_edge(point):
            fill_circle(canvas, int(point[0]), int(point[1]), sk.FACE_POINT_RADIUS, sk.FACE_POINT_COLOR)


# ---------------------------------------------------------------------------------------------
# Rasterisation, after OpenCV's ellipse2Poly, fillConvexPoly, circle and thick line

_DEGREES = np.arange(0, 361)


def ellipse_polygon(cx, cy, half_length, half_width, angle_deg):
    """Integer polygon of an ellipse, as cv2.ellipse2Poly(center, axes, angle, 0, 360, 1)."""
    angle_deg %= 360
    alpha = np.float32(math.cos(math.radians(angle_deg)))
    beta = np.float32(math.sin(math.radians(angle_deg)))
    x = half_length * np.cos(np.radians(_DEGREES))
    y = half_width * np.sin(np.radians(_DEGREES))
    points = np.stack([np.rint(cx + x * alpha - y * beta), np.rint(cy + x * beta + y * alpha)], 1).astype(np.int64)
    keep = np.ones(len(points), dtype=bool)
    keep[1:] = np.any(points[1:] != points[:-1], axis=1)
    return points[keep]


def _row_spans(points, rows):
    """For each row, the leftmost and rightmost x where the closed polygon crosses it."""
    a = points.astype(np.float64)
    b = np.roll(a, -1, axis=0)
    r = rows[None, :]
    lo_y = np.minimum(a[:, 1], b[:, 1])[:, None]
    hi_y = np.maximum(a[:, 1], b[:, 1])[:, None]
    dy = b[:, 1] - a[:, 1]
    slope = np.divide(b[:, 0] - a[:, 0], dy, out=np.zeros_like(dy), where=dy != 0)[:, None]
    crosses = (r >= lo_y) & (r <= hi_y) & (dy != 0)[:, None]
    x = a[:, 0:1] + (r - a[:, 1:2]) * slope
    left = np.where(crosses, x, np.inf).min(axis=0)
    right = np.where(crosses, x, -np.inf).max(axis=0)
    # Horizontal edges and vertices lying exactly on a row count too.
    on_row = a[:, 1][:, None] == r
    left = np.minimum(left, np.where(on_row, a[:, 0:1], np.inf).min(axis=0))
    right = np.maximum(right, np.where(on_row, a[:, 0:1], -np.inf).max(axis=0))
    return np.ceil(left - 0.5), np.floor(right + 0.5)


def _outline(canvas, points, color):
    """The closed polygon's edges as 8-connected lines (cv2 draws them with the fill)."""
    a = points.astype(np.int64)
    d = np.roll(a, -1, axis=0) - a
    steps = np.maximum(np.abs(d).max(axis=1), 1)
    edge = np.repeat(np.arange(len(a)), steps + 1)
    t = (np.arange(edge.size) - np.repeat(np.cumsum(steps + 1) - (steps + 1), steps + 1)) / steps[edge]
    x = np.floor(a[edge, 0] + d[edge, 0] * t + 0.5).astype(np.int64)
    y = np.floor(a[edge, 1] + d[edge, 1] * t + 0.5).astype(np.int64)
    h, w = canvas.shape[:2]
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    canvas[y[inside], x[inside]] = color


def fill_polygon(canvas, points, color, outline=False):
    """Fill a (nearly) convex polygon: every row from its left to its right crossing, inclusive;
    `outline` also draws its edges as lines, as cv2.fillConvexPoly does for integer polygons."""
    if outline:
        _outline(canvas, points, color)
    h, w = canvas.shape[:2]
    top = max(int(math.ceil(points[:, 1].min() - 0.5)), 0)
    bottom = min(int(math.floor(points[:, 1].max() + 0.5)), h - 1)
    if top > bottom:
        return
    rows = np.arange(top, bottom + 1, dtype=np.float64)
    left, right = _row_spans(points, rows)
    ok = np.isfinite(left) & np.isfinite(right)
    if not ok.any():
        return
    x0 = max(int(left[ok].min()), 0)
    x1 = min(int(right[ok].max()), w - 1)
    if x0 > x1:
        return
    cols = np.arange(x0, x1 + 1)[None, :]
    mask = ok[:, None] & (cols >= left[:, None]) & (cols <= right[:, None])
    canvas[top:bottom + 1, x0:x1 + 1][mask] = color


def fill_circle(canvas, cx, cy, radius, color):
    """A filled circle as cv2.circle(..., thickness=-1): pixels with dx² + dy² <= r²."""
    h, w = canvas.shape[:2]
    y0, y1 = max(cy - radius, 0), min(cy + radius, h - 1)
    x0, x1 = max(cx - radius, 0), min(cx + radius, w - 1)
    if y0 > y1 or x0 > x1:
        return
    ys = np.arange(y0, y1 + 1)[:, None] - cy
    xs = np.arange(x0, x1 + 1)[None, :] - cx
    canvas[y0:y1 + 1, x0:x1 + 1][xs * xs + ys * ys <= radius * radius] = color


def thick_line(canvas, p0, p1, color, width=sk.HAND_LINE_WIDTH):
    """A line `width` pixels wide with round caps, as cv2.line(..., thickness=width)."""
    (x0, y0), (x1, y1) = p0, p1
    half = width / 2.0
    length = math.hypot(x1 - x0, y1 - y0)
    if length > 0:
        nx, ny = (y1 - y0) / length * half, (x0 - x1) / length * half
        quad = np.array([[x0 + nx, y0 + ny], [x0 - nx, y0 - ny], [x1 - nx, y1 - ny], [x1 + nx, y1 + ny]])
        fill_polygon(canvas, quad, color)
    cap = int(half + 0.5)
    fill_circle(canvas, x0, y0, cap, color)
    fill_circle(canvas, x1, y1, cap, color)
