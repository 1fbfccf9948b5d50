"""A set painted by camera projection: pictures generated for one camera each, projected onto
the set's geometry from where that camera stood, so every other camera sees the same set.

Each projection is a *layer*: its picture, the camera's model at the time, and a data image
in the camera's pixels (red: the planar depth of the surface that camera saw, 0 where it saw
none; green: 1 where that surface is painted well enough to keep). A point of the set shows
the first layer that paints it well, else the first layer that saw it at all (at a grazing
angle), else the hole colour. The add-on builds the same rule as shader nodes
(`blender/sets/set_projection.py`); `shader_constants` gives the numbers they use.
"""

import numpy as np

from ..maps.control_maps import BACKGROUND_DEPTH
from ..rig.projection import unproject

# Beyond about 75 degrees from the camera's ray a picture's pixel stretches over four pixels'
# width of surface: such a surface counts as not painted, and a later camera may paint it.
MIN_FACING = 0.26
# A point is the surface a camera saw where its depth from that camera matches the stored
# depth within this fraction (the depth image is sampled at the nearest pixel).
DEPTH_TOLERANCE = 0.02


def facing(camera, depth):
    """|cos| of the angle between each pixel's surface normal and the camera's ray (H, W), from
    a planar depth image (rows top-down); 0 where the pixel sees no surface or a depth edge."""
    surface = depth < BACKGROUND_DEPTH
    points = unproject(camera, np.where(surface, depth, 0.0))
    dx = np.gradient(points, axis=1)
    dy = np.gradient(points, axis=0)
    normal = np.cross(dx, dy)
    length = np.linalg.norm(normal, axis=-1)
    if camera.ortho:
        ray = np.broadcast_to(np.array([0.0, 0.0, -1.0]), points.shape)
    else:
        ray = points / np.maximum(np.linalg.norm(points, axis=-1, keepdims=True), 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.abs((normal * ray).sum(-1)) / length
    # a pixel next to a depth jump (or the sky) has no trustworthy normal
    whole = surface.copy()
    whole[1:] &= surface[:-1]
    whole[:-1] &= surface[1:]
    whole[:, 1:] &= surface[:, :-1]
    whole[:, :-1] &= surface[:, 1:]
    return np.where(whole & np.isfinite(cos), cos, 0.0)


def layer_data(camera, depth, claimed=None):
    """The layer's data image (H, W, 4) float32: red the depth (0: no surface), green 1 where the
    layer paints well (facing the camera enough, or `claimed`: the pixels a fill made, which no
    other layer painted), blue 0, alpha 1."""
    surface = depth < BACKGROUND_DEPTH
    good = facing(camera, depth) >= MIN_FACING
    if claimed is not None:
        good |= claimed
    data = np.zeros(depth.shape + (4,), np.float32)
    data[..., 0] = np.where(surface, depth, 0.0)
    data[..., 1] = good & surface
    data[..., 3] = 1.0
    return data


def shader_constants(camera):
    """(ax, bx, ay, by, ortho): a camera-space point (x, y, z) in front of the camera (d = -z)
    lands at image coordinates U = ax * q.x + bx, V = ay * q.y + by (0..1, V up), where q is
    (x, y) / d for a perspective camera and (x, y) for an orthographic one: `projection.project`
    in the form shader nodes compute."""
    w, h = camera.resolution
    ax_, ay_ = camera.pixel_aspect
    ycor = ay_ / ax_
    _, sensor, viewfac = camera._fit()
    pixsize = camera.ortho_scale / viewfac if camera.ortho else sensor / camera.lens / viewfac
    sx, sy = camera.shift
    return (1.0 / (pixsize * w), 0.5 - sx * viewfac / w, 1.0 / (pixsize * ycor * h), 0.5 - sy * viewfac / (ycor * h),
            camera.ortho)


def unpainted(surface, coverage):
    """The pixels a fill must make: set surface (bool) that no layer paints well (`coverage`,
    0..1 from the coverage render)."""
    return surface & (coverage < 0.5)
