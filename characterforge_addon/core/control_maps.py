"""Turn a depth render into ControlNet control images (depth, normals).

Input arrays are top-down (row 0 is the top of the image). Blender hands buffers bottom-up;
the Blender layer flips them once before calling here.
"""

import numpy as np

# Depth renders put the background at 1e10; anything this far is empty.
BACKGROUND_DEPTH = 1e9
# The farthest foreground gets this level so it stays distinct from the black background.
FAR_LEVEL = 20


def depth_image(depth, mask=None):
    """Depth as depth ControlNets expect it: inverse depth, near white, far dark, empty black.

    Normalised over the pixels shown (all geometry, or only `mask`), so the map uses the full range.
    """
    depth = np.asarray(depth, dtype=np.float64)
    shown = (depth < BACKGROUND_DEPTH) & (depth > 0)
    if mask is not None:
        shown &= mask
    out = np.zeros(depth.shape, dtype=np.uint8)
    if not shown.any():
        return out
    inverse = 1.0 / depth[shown]
    lo, hi = inverse.min(), inverse.max()
    scaled = (inverse - lo) / (hi - lo) if hi > lo else np.ones_like(inverse)
    out[shown] = np.rint(FAR_LEVEL + scaled * (255 - FAR_LEVEL)).astype(np.uint8)
    return out


def normal_image(points, shown):
    """Camera-space normals as RGB (x right, y up, z towards the camera), from the camera-space
    points of a depth render (`projection.unproject`); empty pixels black.

    Derived from depth, so it costs no extra render pass. Across a silhouette edge the
    neighbouring depth belongs to something else: such pixels face the camera.
    """
    p = np.asarray(points, dtype=np.float64)
    d_right = np.gradient(p, axis=1)
    d_up = -np.gradient(p, axis=0)
    n = np.cross(d_right, d_up)
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.divide(n, length, out=np.zeros_like(n), where=length > 1e-12)
    neighbours_shown = shown.copy()
    neighbours_shown[1:] &= shown[:-1]
    neighbours_shown[:-1] &= shown[1:]
    neighbours_shown[:, 1:] &= shown[:, :-1]
    neighbours_shown[:, :-1] &= shown[:, 1:]
    depth = -p[..., 2]
    jump = np.zeros_like(depth)
    jump[:, 1:-1] = np.abs(depth[:, 2:] - depth[:, :-2])
    jump[1:-1] = np.maximum(jump[1:-1], np.abs(depth[2:] - depth[:-2]))
    smooth = neighbours_shown & (jump < 0.1 * np.maximum(depth, 1e-6))
    n[~smooth] = (0.0, 0.0, 1.0)
    out = np.rint((n + 1.0) * 127.5).astype(np.uint8)
    out[~shown] = 0
    return out
