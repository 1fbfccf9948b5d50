"""Several pictures projected onto one surface, blended for the camera that looks at it
(view-dependent texture mapping).

Each projected picture (a *layer*) that saw a surface point gets a weight

    w = seen x max(fade, FLOOR) / (((1 - cos a)^2 + EPS) x footprint^2)

where `a` is the angle at the point between the direction to the viewer and the direction to
the layer's projector, `footprint` the width of one of the layer's pixels on the surface
(`footprint`: its depth over the cosine of incidence, so grazing and far layers count less),
and `fade` takes a layer out smoothly towards the edges of what it saw (the outer EDGE of its
frame, `edge_fade`, times the caller's own fade, e.g. towards occluding edges). The weights are
normalised per point. Seen from where a projector stood, `a` is 0 for its own layer, whose
weight is then about FLOOR/EPS times any other's: that camera sees its own picture (the
invariant: another layer 1 degree away whose texel is 100 times finer gets under 1e-5 of the
weight, even at the layer's own edges); between cameras the pictures
blend smoothly, the nearer view and the sharper texel first. The squared penalty keeps the
blend narrow (each picture dominates around its own camera), which keeps two pictures that
disagree in detail from ghosting.

The set material (`blender/set_projection.py`) computes the same weights in shader nodes; the
numbers here are the ones it uses. Arrays broadcast: (L, ...) per layer, (...) per point.
"""

import numpy as np

# The penalty's floor: above what float noise in the shader's directions (1e-7) makes of it
# (1e-29), below (1 - cos)^2 of two directions 0.01 degree apart (2.3e-16). 1 - cos is taken as
# |v - p|^2 / 2, which has no cancellation near 0.
EPS = 1e-20
EDGE = 0.12  # of the frame: a layer fades out over the outer 12 % of its picture, so no seam at its border
MIN_COS = 1e-3  # incidence below this counts as this (a surface edge-on to the projector)
FLOOR = 1e-3  # the least fade where a layer saw the point: its own camera still sees it alone there
# A layer paints a point acceptably for a viewer where one of its pixels covers at most this many
# of the viewer's pixels on the surface; a fill from that viewer generates the rest.
MAX_STRETCH = 2.0


def footprint(depth, cos_incidence, pixel, ortho=False):
    """The width (world units) one picture pixel covers on the surface: `depth` the point's
    planar depth from the camera, `cos_incidence` |cos| between the surface normal and the
    camera's ray, `pixel` the camera's pixel width at depth 1 (orthographic: the pixel's width)."""
    size = pixel if ortho else np.asarray(depth, np.float64) * pixel
    return size / np.maximum(np.abs(cos_incidence), MIN_COS)


def edge_fade(u, v):
    """1 inside the frame but its outer EDGE, falling linearly to 0 at the border; 0 outside.
    `u`, `v`: image coordinates 0..1."""
    edge = np.minimum(np.minimum(u, 1.0 - u), np.minimum(v, 1.0 - v))
    return np.clip(edge / EDGE, 0.0, 1.0)


def weights(view, projectors, footprints, seen, fade=1.0):
    """(L, ...) weights of L layers at each point, summing to 1 where some layer saw it, 0
    elsewhere. `view` (..., 3): unit directions from the point to the viewer; `projectors`
    (L, ..., 3): unit directions from the point to each layer's projector; `footprints` (L, ...)
    from `footprint`; `seen` (L, ...) whether each layer's camera saw the point (bool or 0..1);
    `fade` (L, ...) from `edge_fade`."""
    off = np.sum((np.asarray(view, np.float64)[None] - projectors) ** 2, axis=-1) / 2.0  # 1 - cos
    penalty = off ** 2 + EPS
    fade = np.maximum(np.clip(fade, 0.0, 1.0), FLOOR)
    raw = np.asarray(seen, np.float64) * fade / (penalty * np.asarray(footprints, np.float64) ** 2)
    total = raw.sum(axis=0)
    return np.where(total > 0, raw / np.where(total > 0, total, 1.0), 0.0)


def blend(colours, layer_weights):
    """The point's colour (..., C) from each layer's colour there (L, ..., C) and `weights`:
    blend linear colours (the set's shader blends scene-linear values, not sRGB levels)."""
    return np.sum(np.asarray(colours, np.float64) * layer_weights[..., None], axis=0)


def acceptable(footprints, seen, viewer_footprint):
    """(...) bool: some layer that saw the point paints it no coarser than MAX_STRETCH of the
    viewer's pixels there (`viewer_footprint`: `footprint` of the viewer's own pixel)."""
    sharp = np.asarray(footprints) <= MAX_STRETCH * np.asarray(viewer_footprint)
    return np.any(np.asarray(seen, bool) & sharp, axis=0)
