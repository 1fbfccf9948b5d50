"""A set painted by camera projection: pictures generated for one camera each, projected onto
the set's geometry from where that camera stood, so every other camera sees the same set.

Each projection is a *layer*: its picture, the camera's model at the time, and a data image
in the camera's pixels (red and green: the farthest and nearest planar depth of the surfaces
that camera saw in and around the pixel, 0 where it saw none, `depth_range`; blue: how far
inside what it saw, 0 at an occlusion edge, 1 from EDGE_PIXELS in; alpha 1). A point of the set shows the layers that saw it,
blended for the camera looking at it (`core.view_blend`: seen from a layer's own camera, that
layer's picture exactly), else the hole colour. The add-on builds the same rule as shader
nodes (`blender/sets/set_projection.py`); `shader_constants` gives the numbers they use.
"""

import numpy as np

from ..maps.control_maps import BACKGROUND_DEPTH
from ..rig.projection import unproject

# A point is a surface a camera saw where its depth from that camera lies within the depth range
# stored for the pixel it lands on (`depth_range`, sampled at the nearest pixel), give or take
# this fraction.
DEPTH_TOLERANCE = 0.02
# A layer fades out over this many of its pixels towards the edge of what its camera saw (an
# occluding edge, the sky), so a camera between two painters sees no seam there.
EDGE_PIXELS = 16


def normals(camera, depth):
    """Unit surface normals (H, W, 3) in the camera's space, from a planar depth image (rows
    top-down), and whether each is trustworthy (H, W): not at a depth edge or the sky."""
    surface = depth < BACKGROUND_DEPTH
    points = unproject(camera, np.where(surface, depth, 0.0))
    normal = np.cross(np.gradient(points, axis=1), np.gradient(points, axis=0))
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    # a pixel next to a depth jump (or the sky) has no trustworthy normal
    whole = surface.copy()
    whole[1:] &= surface[:-1]
    whole[:-1] &= surface[1:]
    whole[:, 1:] &= surface[:, :-1]
    whole[:, :-1] &= surface[:, 1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = normal / length
    whole &= np.isfinite(unit).all(-1) & (length[..., 0] > 0)
    return np.where(whole[..., None], unit, 0.0), whole


def facing(camera, depth):
    """|cos| of the angle between each pixel's surface normal and the camera's ray (H, W), from
    a planar depth image (rows top-down); 0 where the pixel sees no surface or a depth edge."""
    normal, whole = normals(camera, depth)
    points = unproject(camera, np.where(depth < BACKGROUND_DEPTH, depth, 0.0))
    if camera.ortho:
        ray = np.broadcast_to(np.array([0.0, 0.0, -1.0]), points.shape)
    else:
        ray = points / np.maximum(np.linalg.norm(points, axis=-1, keepdims=True), 1e-12)
    return np.where(whole, np.abs((normal * ray).sum(-1)), 0.0)


def depth_edges(depth):
    """(H, W) bool: pixels at the edge of what the camera saw: no surface, or a depth jump to a
    neighbour (a step larger than DEPTH_TOLERANCE of the depth plus twice the steps beside it,
    so a floor running to the horizon is no edge, an occluding box is)."""
    surface = depth < BACKGROUND_DEPTH
    edge = ~surface
    d = np.where(surface, depth, 0.0)
    for axis in (0, 1):
        n = d.shape[axis]
        step = np.abs(np.diff(d, axis=axis))
        pad = [(0, 0), (0, 0)]
        pad[axis] = (1, 1)
        beside = np.pad(step, pad, mode="edge")
        before = np.take(beside, range(0, n - 1), axis=axis)
        after = np.take(beside, range(2, n + 1), axis=axis)
        first, second = np.take(d, range(0, n - 1), axis=axis), np.take(d, range(1, n), axis=axis)
        jump = step > DEPTH_TOLERANCE * np.minimum(first, second) + 2.0 * np.minimum(before, after)
        lead = [slice(None), slice(None)]
        lead[axis] = slice(0, -1)
        trail = [slice(None), slice(None)]
        trail[axis] = slice(1, None)
        edge[tuple(lead)] |= jump
        edge[tuple(trail)] |= jump
    return edge


def depth_range(depth):
    """(near, far) (H, W): the nearest and farthest surface depth among each pixel and its eight
    neighbours (0, 0 where none is surface). A render samples the whole pixel, not its centre:
    a point some sample hits may be any surface the pixel touches (a floor at a grazing angle
    changes depth fast across one pixel; a silhouette's pixel holds two surfaces)."""
    surface = depth < BACKGROUND_DEPTH
    h, w = depth.shape
    near = np.pad(np.where(surface, depth, np.inf), 1, constant_values=np.inf)
    far = np.pad(np.where(surface, depth, -np.inf), 1, constant_values=-np.inf)
    shifted = [(dy, dx) for dy in range(3) for dx in range(3)]
    lo = np.min([near[dy:dy + h, dx:dx + w] for dy, dx in shifted], axis=0)
    hi = np.max([far[dy:dy + h, dx:dx + w] for dy, dx in shifted], axis=0)
    found = np.isfinite(lo)
    return np.where(found, lo, 0.0), np.where(found, hi, 0.0)


def saw(d, near, far):
    """Whether a layer's camera saw a point at planar depth `d` from it, given the `depth_range`
    at the pixel it lands on (the data image's green and red, sampled at the nearest pixel)."""
    return (d > 0) & (d > near * (1.0 - DEPTH_TOLERANCE)) & (d < far * (1.0 + DEPTH_TOLERANCE))


def inside_edges(depth):
    """(H, W) 0..1: how far each pixel is inside what the camera saw, in EDGE_PIXELS (city-block
    distance to the nearest `depth_edges` pixel, or the frame's border counts not: the frame
    fades by `view_blend.edge_fade`)."""
    inside = ~depth_edges(depth)
    steps = np.zeros(depth.shape, np.float32)
    for _ in range(EDGE_PIXELS):
        steps += inside
        shrunk = inside.copy()
        shrunk[1:] &= inside[:-1]
        shrunk[:-1] &= inside[1:]
        shrunk[:, 1:] &= inside[:, :-1]
        shrunk[:, :-1] &= inside[:, 1:]
        inside = shrunk
    return steps / EDGE_PIXELS


def layer_data(depth):
    """The layer's data image (H, W, 4) float32: red and green the `depth_range` (far, near; 0
    where the camera saw no surface near the pixel), blue `inside_edges`, alpha 1."""
    data = np.zeros(depth.shape + (4,), np.float32)
    near, far = depth_range(depth)
    data[..., 0], data[..., 1] = far, near
    data[..., 2] = inside_edges(depth)
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


def pixel_width(camera):
    """The camera's pixel width at depth 1 (orthographic: the pixel's width), as
    `view_blend.footprint` takes it."""
    return 1.0 / (shader_constants(camera)[0] * camera.resolution[0])


def unpainted(surface, coverage):
    """The pixels a fill must make: set surface (bool) that no layer paints acceptably from the
    filling camera's view (`coverage`, 0..1 from the coverage render, `view_blend.acceptable`)."""
    return surface & (coverage < 0.5)
