"""The set's projection rule in numpy: view-dependent weights (each projector's own view gets
its own picture, views between blend smoothly), texel footprints, what a fill must make, and
the layer data (depth range, edges of what a camera saw)."""

import math

import numpy as np

from characterforge_addon.core.shots import set_projection as rule
from characterforge_addon.core.shots import view_blend


def unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def towards(angle_deg):
    """A unit direction in the ground plane, `angle_deg` round from +Y."""
    a = math.radians(angle_deg)
    return unit([math.sin(a), math.cos(a), 0.3])


def test_from_a_projectors_own_position_its_layer_is_all_there_is():
    projectors = np.array([towards(0), towards(1), towards(50)])
    # the other layers a hundred times sharper, this one at the very edge of what it saw
    feet = np.array([100.0, 1.0, 1.0])
    w = view_blend.weights(towards(0), projectors, feet, np.ones(3, bool), np.array([0.0, 1.0, 1.0]))
    assert w[0] > 1 - 1e-5 and abs(w.sum() - 1) < 1e-12
    # float noise in the direction (as a shader has) changes nothing
    noisy = unit(towards(0) + 1e-7)
    assert view_blend.weights(noisy, projectors, feet, np.ones(3, bool))[0] > 1 - 1e-5


def test_between_two_projectors_the_weights_change_smoothly_the_nearer_view_first():
    projectors = np.array([towards(0), towards(50)])
    feet = np.array([1.0, 1.0])
    shares = [view_blend.weights(towards(a), projectors, feet, np.ones(2, bool))[0] for a in np.arange(0, 50.01, 0.5)]
    shares = np.array(shares)
    assert shares[0] > 1 - 1e-9 and shares[-1] < 1e-9 and abs(shares[50] - 0.5) < 1e-9  # halfway: even
    assert (np.diff(shares) <= 1e-12).all()  # A's share only falls as the view turns towards B
    assert np.abs(np.diff(shares)).max() < 0.06  # no jump: at most 6 % per half degree
    # a sharper texel counts more: at the same angle, four times the weight for half the footprint
    w = view_blend.weights(towards(25), projectors, np.array([0.5, 1.0]), np.ones(2, bool))
    assert abs(w[0] / w[1] - 4.0) < 1e-9


def test_only_layers_that_saw_the_point_count_and_nothing_seen_gives_no_weight():
    projectors = np.array([towards(0), towards(50)])
    w = view_blend.weights(np.stack([towards(0), towards(10)]), projectors[:, None].repeat(2, 1),
                           np.ones((2, 2)), np.array([[False, False], [True, False]]))
    assert np.allclose(w[:, 0], [0.0, 1.0]) and np.allclose(w[:, 1], [0.0, 0.0])
    colours = np.array([[[1.0, 0.0, 0.0]] * 2, [[0.0, 0.0, 1.0]] * 2])
    assert np.allclose(view_blend.blend(colours, w), [[0, 0, 1], [0, 0, 0]])


def test_footprint_edge_fade_and_what_paints_acceptably():
    assert view_blend.footprint(10.0, 1.0, 0.001) == 0.01
    assert abs(view_blend.footprint(10.0, 0.5, 0.001) - 0.02) < 1e-12  # 60 degrees off: twice as wide
    assert view_blend.footprint(10.0, 0.0, 0.001) == 0.01 / view_blend.MIN_COS  # edge-on: huge, not infinite
    assert view_blend.footprint(10.0, 1.0, 0.01, ortho=True) == 0.01  # orthographic: depth does not matter
    fade = view_blend.edge_fade(np.array([0.5, 0.0, view_blend.EDGE / 2, 1.2]), np.array([0.5, 0.5, 0.5, 0.5]))
    assert np.allclose(fade, [1.0, 0.0, 0.5, 0.0])
    feet = np.array([[1.0, 1.0, 3.0], [5.0, 2.5, 2.0]])
    seen = np.array([[True, True, False], [True, True, True]])
    # one viewer pixel of width 1: a texel up to MAX_STRETCH (2) wide is acceptable
    assert view_blend.acceptable(feet, seen, np.ones(3)).tolist() == [True, True, True]
    assert view_blend.acceptable(feet, seen, np.full(3, 0.45)).tolist() == [False, False, False]


def test_depth_range_and_edges_of_what_a_camera_saw():
    # a floor seen from eye height: depth grows towards the horizon (row 20); a box in front
    h, w = 64, 64
    rows = np.arange(h)[:, None].repeat(w, 1)
    depth = np.where(rows > 20, 170.0 / np.maximum(rows - 20, 0.5), 1e10)
    depth[40:50, 20:30] = 4.0
    edges = rule.depth_edges(depth)
    box = np.zeros((h, w), bool)
    box[39:51, 19:31] = True
    assert edges[:21].all()  # the sky
    assert not edges[23:][~box[23:]].any()  # the floor runs to the horizon without an edge
    assert edges[40, 20] and edges[40, 25] and edges[45, 19] and not edges[45, 25]  # the box's outline
    near, far = rule.depth_range(depth)
    assert near[45, 25] == far[45, 25] == 4.0
    assert near[45, 30] == 4.0 and far[45, 30] == depth[44, 31]  # beside the box: both surfaces (the floor farther up)
    assert near[10, 10] == far[10, 10] == 0.0  # the sky: nothing saw there
    # a render's sample anywhere in a floor pixel passes the test; the box's depth behind it does not
    r = 30
    assert rule.saw(np.array([depth[r - 1, 5], depth[r + 1, 5]]), near[r, 5], far[r, 5]).all()
    assert not rule.saw(np.array([0.0, -1.0, depth[r, 5] * 1.5]), near[r, 5], far[r, 5]).any()
    inside = rule.inside_edges(depth)
    assert inside[45, 25] < inside[60, 5] == 1.0 and inside[40, 20] == 0.0
    data = rule.layer_data(depth)
    assert data.shape == (h, w, 4) and data.dtype == np.float32
    assert np.array_equal(data[..., 0], far.astype(np.float32)) and np.array_equal(data[..., 1], near.astype(np.float32))
