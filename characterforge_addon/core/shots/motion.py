"""Frames that hold together over an animation, from Blender's own motion: the Vector pass
says where each pixel of this frame was in the previous one, so the previous frame's result
can be carried over (warped) and only what changed generated again.

Blender's Vector pass (towards the previous frame) is (dx, dy) in pixels with y up: the
pixel at column c, row r (rows top-down) was at column c + dx, row r - dy.
"""

import numpy as np

# A frame after the first is redrawn from its warped predecessor at a strength between these,
# rising with the share of the characters' pixels that were hidden in the previous frame
# (those are generated in full first); 1.0 of that share or more gives the highest.
LOW_STRENGTH, HIGH_STRENGTH = 0.35, 0.75
# A pixel keeps its predecessor only where it shows the same object at about the same depth
DEPTH_TOLERANCE = 0.05


def previous_positions(vectors):
    """(H, W, 2) float (column, row) of each pixel in the previous frame, from the Vector pass."""
    h, w = vectors.shape[:2]
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([cols + vectors[..., 0], rows - vectors[..., 1]], axis=-1)


def warp(image, positions):
    """`image` (H, W[, C]) sampled at `positions` (bilinear; outside the frame: the nearest
    edge pixel, which `holes` marks anyway). Returns the image's dtype."""
    h, w = image.shape[:2]
    x = np.clip(positions[..., 0], 0, w - 1)
    y = np.clip(positions[..., 1], 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    if image.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    data = image.astype(np.float64)
    top = data[y0, x0] * (1 - fx) + data[y0, x1] * fx
    bottom = data[y1, x0] * (1 - fx) + data[y1, x1] * fx
    out = top * (1 - fy) + bottom * fy
    return np.clip(np.rint(out), 0, 255).astype(image.dtype) if image.dtype == np.uint8 else out.astype(image.dtype)


def _nearest(image, positions):
    h, w = image.shape[:2]
    x = np.clip(np.rint(positions[..., 0]).astype(int), 0, w - 1)
    y = np.clip(np.rint(positions[..., 1]).astype(int), 0, h - 1)
    return image[y, x]


def holes(positions, index, depth, previous_index, previous_depth):
    """(H, W) bool: pixels with nothing to carry over: they came from outside the frame, or the
    previous frame showed another object (or another depth) there: disoccluded."""
    h, w = index.shape
    outside = ((positions[..., 0] < -0.5) | (positions[..., 0] > w - 0.5) |
               (positions[..., 1] < -0.5) | (positions[..., 1] > h - 0.5))
    other = _nearest(previous_index, positions) != index
    was = _nearest(previous_depth, positions)
    with np.errstate(invalid="ignore"):
        moved = np.abs(was - depth) > DEPTH_TOLERANCE * np.maximum(depth, 1e-6) + _depth_step(depth)
    return outside | other | moved


def _depth_step(depth):
    """How much the depth changes from a pixel to its neighbours (a moving surface's depth at
    the warped position differs by about that much)."""
    gy, gx = np.gradient(np.where(np.isfinite(depth), depth, 0.0))
    return np.abs(gx) + np.abs(gy)


def frame_strength(hidden_share):
    """The redraw strength of a frame whose characters' region had `hidden_share` (0..1) of
    its pixels hidden in the previous frame."""
    return float(LOW_STRENGTH + (HIGH_STRENGTH - LOW_STRENGTH) * min(1.0, max(0.0, hidden_share)))


def flicker(frames, positions, valid):
    """The flicker of a sequence: for each frame after the first, the mean absolute difference
    (0..255) between it and its predecessor warped onto it, over the pixels that stay visible
    (`valid[i]`: bool (H, W) for frame i+1). Returns (per-frame figures, their mean)."""
    figures = []
    for i in range(1, len(frames)):
        keep = valid[i - 1]
        if not keep.any():
            continue
        carried = warp(frames[i - 1], positions[i - 1])
        diff = np.abs(frames[i].astype(np.float64) - carried.astype(np.float64))
        figures.append(float(diff[keep].mean()))
    return figures, (float(np.mean(figures)) if figures else 0.0)
