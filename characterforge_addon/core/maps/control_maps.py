"""Turn a depth render into ControlNet control images (depth, normals).

Input arrays are top-down (row 0 is the top of the image). Blender hands buffers bottom-up;
the Blender layer flips them once before calling here.
"""

import numpy as np

# Depth renders put the background at 1e10, which a half-float EXR stores as its largest
# value, 65504: anything this far is empty.
BACKGROUND_DEPTH = 6.5e4
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

    Derived from depth, so it costs no extra render pass: the normal is the cross product of
    central differences along the row and up the column. Across a silhouette edge the
    neighbouring depth belongs to something else: such pixels face the camera.
    """
    p = np.asarray(points, dtype=np.float32)
    h, w = shown.shape
    out = np.zeros((h, w, 3), dtype=np.uint8)
    if h < 3 or w < 3:
        return out
    right = p[1:-1, 2:] - p[1:-1, :-2]
    up = p[:-2, 1:-1] - p[2:, 1:-1]
    n = np.empty_like(right)
    n[..., 0] = right[..., 1] * up[..., 2] - right[..., 2] * up[..., 1]
    n[..., 1] = right[..., 2] * up[..., 0] - right[..., 0] * up[..., 2]
    n[..., 2] = right[..., 0] * up[..., 1] - right[..., 1] * up[..., 0]
    depth = -p[..., 2]
    inner = shown[1:-1, 1:-1]
    smooth = inner & shown[1:-1, 2:] & shown[1:-1, :-2] & shown[2:, 1:-1] & shown[:-2, 1:-1]
    jump = np.maximum(np.abs(depth[1:-1, 2:] - depth[1:-1, :-2]), np.abs(depth[2:, 1:-1] - depth[:-2, 1:-1]))
    smooth &= jump < 0.1 * np.maximum(depth[1:-1, 1:-1], 1e-6)
    length = np.sqrt(np.einsum("...i,...i->...", n, n))
    smooth &= length > 1e-12
    n[~smooth] = (0.0, 0.0, 1.0)
    length[~smooth] = 1.0
    encoded = np.rint((n / length[..., None] + 1.0) * 127.5).astype(np.uint8)
    out[1:-1, 1:-1] = encoded
    out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = (128, 128, 255)  # the frame's edge faces the camera
    out[~shown] = 0
    return out


def encode_normals(normals, shown):
    """Camera-space unit normals (H x W x 3: x right, y up, z towards the camera, as Blender's
    Normal pass gives them once turned into the camera's frame) as RGB, the convention of
    `normal_image`; empty pixels black."""
    n = np.asarray(normals, dtype=np.float64)
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(length > 1e-9, n / np.maximum(length, 1e-9), (0.0, 0.0, 1.0))
    out = np.rint((n + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    out[~np.asarray(shown, dtype=bool)] = 0
    return out
