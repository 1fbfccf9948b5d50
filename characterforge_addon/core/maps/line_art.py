"""Line art from the mesh itself: outlines and creases found in a render's depth, normals and
object index, drawn as ControlNet line models take them (white lines on black, one pixel or
more wide).

A line is drawn where neighbouring pixels (right and below: the thin core of a Sobel filter,
exact on noise-free renders) show
  - the silhouette: one shows the object, the other nothing (drawn on the object's side);
  - an occluding edge: their depths jump by more than the local slope explains (drawn on the
    nearer pixel, where the front surface ends);
  - a crease: their normals turn by more than `crease_deg` (a cube's edges, a car's panels);
  - a seam between parts: different objects meet (a wheel against a body).
Smooth-shaded curved surfaces give no lines of their own, as an artist's line drawing would.
Inputs are top-down arrays of one render (see `control_maps`).
"""

import numpy as np

from .control_maps import BACKGROUND_DEPTH

CREASE_DEG = 40.0   # normals turning more than this between neighbours make a crease line
DEPTH_JUMP = 0.01   # a depth jump beyond the slope of this share of the depth is an occluding edge


def _pairs(a, axis):
    """(this pixel, the next one along `axis`) views of `a`."""
    if axis == 1:
        return a[:, :-1], a[:, 1:]
    return a[:-1], a[1:]


def _slope_break(depth, shown, axis):
    """How far the jump between neighbours is from the slope beside them, for each pair along
    `axis` (the side that explains it best): a plane, however oblique, explains its own jumps,
    and so does a pair beside an edge. Slopes are taken only across shown pixels."""
    pad = [(1, 1) if a == axis else (0, 0) for a in (0, 1)]
    d = np.pad(depth, pad, mode="edge")
    s = np.pad(shown, pad, constant_values=False)
    step = np.diff(d, axis=axis)  # step[i] = d[i+1] - d[i] on the padded axis
    valid = np.take(s, np.arange(0, s.shape[axis] - 1), axis=axis) & np.take(s, np.arange(1, s.shape[axis]),
                                                                                axis=axis)
    n = depth.shape[axis]

    def take(a, start):
        return np.take(a, np.arange(start, start + n - 1), axis=axis)

    before, jump, after = take(step, 0), take(step, 1), take(step, 2)
    ok_before, ok_after = take(valid, 0), take(valid, 2)
    # the side that explains the jump best: a pair next to an edge is explained by its other side
    off_before = np.where(ok_before, np.abs(jump - before), np.inf)
    off_after = np.where(ok_after, np.abs(jump - after), np.inf)
    best = np.minimum(off_before, off_after)
    return np.where(np.isfinite(best), best, 0.0)


def line_art(depth, normals=None, ids=None, crease_deg=CREASE_DEG, depth_jump=DEPTH_JUMP, width=1):
    """Line art (H x W uint8, 255 on the lines, 0 elsewhere) from a render's depth (planar
    camera depth, background at BACKGROUND_DEPTH or beyond), camera- or world-space unit
    `normals` (H x W x 3) and object `ids` (H x W ints); `width`: line width in pixels."""
    depth = np.asarray(depth, dtype=np.float64)
    shown = (depth < BACKGROUND_DEPTH) & (depth > 0)
    lines = np.zeros(depth.shape, dtype=bool)
    cos_limit = np.cos(np.radians(crease_deg))
    safe = np.where(shown, depth, 0.0)
    for axis in (0, 1):
        here, there = _pairs(shown, axis)
        mark_here, mark_there = _pairs(lines, axis)  # views: writing them marks `lines`
        # the silhouette, on the object's side
        mark_here |= here & ~there
        mark_there |= there & ~here
        both = here & there
        d0, d1 = _pairs(safe, axis)
        jump = _slope_break(safe, shown, axis) > depth_jump * np.minimum(d0, d1)
        occluding = both & jump
        mark_here |= occluding & (d0 <= d1)
        mark_there |= occluding & (d1 < d0)
        if normals is not None:
            n = np.asarray(normals, dtype=np.float64)
            n0, n1 = _pairs(n, axis)
            mark_here |= both & ~occluding & (np.einsum("...i,...i->...", n0, n1) < cos_limit)
        if ids is not None:
            i0, i1 = _pairs(np.asarray(ids), axis)
            seam = both & ~occluding & (i0 != i1)
            mark_here |= seam & (d0 <= d1)
            mark_there |= seam & (d1 < d0)
    if width > 1:
        grown = lines.copy()
        for dy in range(width):
            for dx in range(width):
                grown[dy:, dx:] |= lines[:lines.shape[0] - dy, :lines.shape[1] - dx]
        lines = grown
    return np.where(lines, np.uint8(255), np.uint8(0))


def line_width(side):
    """The line width that reads at a map of this many pixels a side (1 px up to 768, then 2)."""
    return 1 if side <= 768 else 2
