"""The rule that paints a model from its sheet, without Blender: a view's weights and colours,
the blend that prefers the view seeing a surface best, depth and silhouette tests, holes and
the cameras that fill them, the texture's gutters."""

import math

import numpy as np
import pytest

from characterforge_addon.core.characters import model_paint as rule
from characterforge_addon.core.characters import sheet_layout
from characterforge_addon.core.maps.control_maps import BACKGROUND_DEPTH

UP, FRONT = np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])


def camera_towards(direction, target=(0, 0, 0), scale=2.0, size=(64, 64), distance=5.0):
    matrix = sheet_layout.look_from(np.asarray(target, float), direction, UP, distance)
    return rule.ortho_camera(matrix, scale, size)


def plane_points(n=21, z=0.0, half=0.5):
    """A square of texels in the plane y = 0, facing -Y (the front), and its normals."""
    u = np.linspace(-half, half, n)
    x, zz = np.meshgrid(u, u)
    points = np.stack([x.ravel(), np.zeros(x.size), zz.ravel() + z], 1)
    return points, np.tile([0.0, -1.0, 0.0], (len(points), 1))


def flat_view(name, camera, depth_value, picture=None, **kw):
    """A projection of a ramp picture (4 levels a pixel) whose depth is `depth_value` everywhere."""
    w, h = camera.resolution
    if picture is None:
        yy, xx = np.mgrid[0:h, 0:w]
        picture = np.stack([xx * 4, yy * 4, np.full_like(xx, 100)], -1).astype(np.uint8)
    return rule.Projection(name, "body", camera, picture, np.full((h, w), float(depth_value)), **kw)


def test_a_view_paints_the_pixels_it_sees_at_their_projection():
    camera = camera_towards(FRONT)
    points, normals = plane_points()
    view = flat_view("front", camera, depth_value=5.0)
    weights, colours = rule.view_weights(points, normals, view, rule.best_density([view]))
    assert (weights > 0.99).all()  # square on, the densest view, far from any edge
    from characterforge_addon.core.rig.projection import project
    xy, _ = project(camera, points)
    # the picture is a ramp: 4 levels a pixel, read bilinearly at each point's projection
    np.testing.assert_allclose(colours[:, 0], (xy[:, 0] - 0.5) * 4, atol=1e-6)
    np.testing.assert_allclose(colours[:, 1], (xy[:, 1] - 0.5) * 4, atol=1e-6)


def test_a_view_does_not_paint_what_it_did_not_see():
    camera = camera_towards(FRONT)
    points, normals = plane_points()
    near = flat_view("front", camera, depth_value=4.0)  # something stood 1 m in front of the plane
    assert not rule.view_weights(points, normals, near, 1.0)[0].any()
    away = flat_view("front", camera, depth_value=5.0)
    assert not rule.view_weights(points, -normals, away, 1.0)[0].any()  # the plane's back
    empty = flat_view("front", camera, depth_value=BACKGROUND_DEPTH * 2)
    assert not rule.view_weights(points, normals, empty, 1.0)[0].any()


def test_paint_fades_out_towards_a_views_silhouette():
    camera = camera_towards(FRONT, size=(64, 64))
    view = flat_view("front", camera, depth_value=5.0)
    view.depth[:, 40:] = BACKGROUND_DEPTH * 2  # the model ends at column 40 in this view
    xs = np.array([30.5, 36.5, 37.5, 38.5, 39.5]) / 64 * 2.0 - 1.0  # pixel centres, world x
    points = np.stack([xs, np.zeros(5), np.zeros(5)], 1)
    weights, _ = rule.view_weights(points, np.tile([0.0, -1.0, 0.0], (5, 1)), view, rule.best_density([view]))
    assert weights[0] > 0.99 and weights[-1] < weights[-2] < weights[-3] < weights[1] and weights[-1] > 0


def test_the_view_that_sees_a_surface_best_wins_and_pixels_per_metre_count():
    points, normals = plane_points()
    front = flat_view("front", camera_towards(FRONT), 5.0, picture=np.full((64, 64, 3), 200, np.uint8))
    turned = sheet_layout.orbit(UP, FRONT, 40.0)
    side = camera_towards(turned)
    side_view = rule.Projection("turned", "body", side, np.full((64, 64, 3), 20, np.uint8),
                                _plane_depth(side, (64, 64)))
    front.depth[:] = _plane_depth(front.camera, (64, 64))
    result = rule.blend(points, normals, [front, side_view])
    # weights go as (cos ratio) ** POWER: cos 40 degrees ** 6 = 0.2 of the front's
    share = math.cos(math.radians(40)) ** rule.POWER
    np.testing.assert_allclose(result.colours[:, 0], (200 + 20 * share) / (1 + share), atol=0.5)
    assert result.shares() == {"front": 1.0, "turned": 0.0}
    # a close-up with four times the pixels per metre wins even at 40 degrees
    close = camera_towards(turned, scale=0.5)
    close_view = rule.Projection("close", "face", close, np.full((64, 64, 3), 20, np.uint8),
                                 _plane_depth(close, (64, 64)))
    inside = (np.abs(points[:, 0]) < 0.15) & (np.abs(points[:, 2]) < 0.18)  # well inside its frame
    result = rule.blend(points[inside], normals[inside], [front, close_view])
    assert result.shares()["close"] == 1.0 and (result.colours[:, 0] < 30).all()


def _plane_depth(camera, size):
    """The planar depth of the plane y = 0 from an orthographic `camera`, per pixel."""
    from characterforge_addon.core.rig.projection import unproject
    w, h = size
    to_world = np.linalg.inv(camera.world_to_camera)
    grid = unproject(camera, np.zeros((h, w)))  # camera-space points on the image plane (z = 0)
    origins = grid.reshape(-1, 3) @ to_world[:3, :3].T + to_world[:3, 3]
    forward = -to_world[:3, 2]
    t = -origins[:, 1] / forward[1]
    return t.reshape(h, w)


def test_a_face_view_paints_only_inside_its_head_sphere_and_fills_only_their_claimed_pixels():
    points, normals = plane_points()
    camera = camera_towards(FRONT)
    head = flat_view("face", camera, depth_value=5.0, region=(np.array([0.0, 0.0, 0.3]), 0.2))
    weights, _ = rule.view_weights(points, normals, head, 1.0)
    dist = np.linalg.norm(points - [0.0, 0.0, 0.3], axis=1)
    assert (weights[dist >= 0.2] == 0).all() and (weights[dist < 0.1] > 0).all()
    claimed = np.zeros((64, 64), bool)
    claimed[:, :32] = True
    fill = flat_view("fill", camera, depth_value=5.0, claimed=claimed)
    weights, _ = rule.view_weights(points, normals, fill, 1.0)
    assert (weights[points[:, 0] > 0.02] == 0).all() and (weights[points[:, 0] < -0.1] > 0).all()


def test_fills_paint_only_the_holes_the_views_left():
    points, normals = plane_points()
    base = rule.Blend(np.full((len(points), 3), 50.0), np.ones(len(points)), points[:, 0] < 0,
                      np.zeros(len(points), np.int64), ["front"])
    fill = rule.Blend(np.full((len(points), 3), 250.0), np.ones(len(points)), np.ones(len(points), bool),
                      np.zeros(len(points), np.int64), ["fill 1"])
    done = rule.combine(base, [fill])
    assert done.painted.all()
    assert (done.colours[points[:, 0] < 0] == 50).all() and (done.colours[points[:, 0] >= 0] == 250).all()
    left = round((points[:, 0] < 0).mean(), 4)
    assert done.shares() == {"front": left, "fill 1": round(1 - left, 4)}


def test_the_fill_camera_looks_at_the_holes_from_where_it_sees_them_squarely():
    # a box's texels: four sides painted by level views, the top a hole
    rng = np.random.default_rng(0)
    top = np.c_[rng.uniform(-0.5, 0.5, (400, 2)), np.full(400, 1.0)]
    side = np.c_[rng.uniform(-0.5, 0.5, 400), np.full(400, -0.5), rng.uniform(0, 1, 400)]
    points = np.r_[top, side]
    normals = np.r_[np.tile(UP, (400, 1)), np.tile(FRONT, (400, 1))]
    holes = np.r_[np.ones(400, bool), np.zeros(400, bool)]
    direction, fills = rule.choose_fill_view(points, normals, holes, UP, FRONT, pixel=0.05)
    np.testing.assert_allclose(direction, UP)
    assert fills[:400].all() and not fills[400:].any()
    matrix, scale, clip, target = rule.frame_fill(points, fills, direction, UP, FRONT)
    assert scale == pytest.approx(1.05, rel=0.01)  # the top and its context, no more than the whole box
    np.testing.assert_allclose(matrix[:3, 2], UP, atol=1e-9)  # looking straight down
    assert matrix[2, 3] > 1.0 and clip[1] > matrix[2, 3] - 1.0
    np.testing.assert_allclose(target[:2], (0.0, 0.0), atol=0.05)  # the middle of the top
    # nothing faces any camera squarely enough: no fill
    assert rule.choose_fill_view(points, normals, holes, UP, FRONT, 0.05, directions=np.array([FRONT]))[0] is None


def test_a_point_behind_another_is_hidden_from_a_camera_and_hidden_texels_are_unreachable():
    points = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.0], [1.0, 0.5, 0.0]])
    normals = np.tile([0.0, -1.0, 0.0], (3, 1))
    seen = rule.visible_from(points, normals, FRONT, UP, FRONT, pixel=0.1)  # a camera in front, at -Y
    assert seen.tolist() == [True, False, True]
    # a dense sphere of texels, and one texel at its centre: no camera reaches that one
    rng = np.random.default_rng(0)
    sphere = rng.normal(size=(6000, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    points = np.r_[sphere * 0.5, [[0.0, 0.0, 0.0]]]
    normals = np.r_[sphere, [[0.0, 0.0, 1.0]]]
    reached = rule.reachable(points, normals, UP, FRONT, pixel=0.05)
    assert not reached[-1] and reached[:-1].mean() > 0.99


def test_thin_seams_are_closed_and_wide_holes_kept_for_a_fill():
    size = 32
    texels = np.arange(size * size)
    holes = np.zeros(size * size, bool).reshape(size, size)
    holes[10, 2:30] = True  # a seam one texel wide
    holes[16:28, 16:28] = True  # a 12-texel patch
    thin = rule.thin_holes(size, texels, holes.ravel(), spacing=0.01)  # 3 cm: seams under 3 texels
    assert thin.reshape(size, size)[10, 2:30].all() and not thin.reshape(size, size)[16:28, 16:28].any()
    colours = np.where(holes.ravel()[:, None], 0.0, 90.0) * np.ones(3)
    closed, which = rule.close_holes(size, texels, colours, ~holes.ravel(), only=thin)
    assert (which == thin).all() and (closed[thin] == 90).all() and (closed[holes.ravel() & ~thin] == 0).all()


def test_the_texture_shows_holes_magenta_and_pushes_colour_past_island_edges():
    size = 16
    island = np.zeros((size, size), bool)
    island[4:12, 4:12] = True
    texels = np.flatnonzero(island.ravel())
    painted = np.ones(len(texels), bool)
    painted[0] = False
    image = rule.texture(size, texels, np.full((len(texels), 3), 77.0), painted, gutter=2)
    assert tuple(image[4, 4]) == rule.HOLE and (image[5:12, 5:12] == 77).all()
    assert (image[2, 6] == 77).all() and (image[0, 6] == 0).all()  # two texels of gutter, no more


def test_sheet_cameras_round_trip_through_sheet_json_and_follow_the_rig():
    view = sheet_layout.View("front", "body", 0.0, (0, 0, 64, 128))
    points = np.random.default_rng(1).uniform([-0.3, -0.2, 0], [0.3, 0.2, 1.8], (200, 3))
    cameras, _ = sheet_layout.frame_views(points, UP, FRONT, [view])
    cam = cameras["front"]
    np.testing.assert_allclose(cam.matrix[:3, 2], FRONT, atol=1e-12)  # in front of the character, facing it
    back = sheet_layout.ViewCamera.from_record("front", cam.record())
    np.testing.assert_allclose(back.matrix, cam.matrix, atol=1e-6)
    moved = np.eye(4)
    moved[:3, 3] = (2.0, 0.0, 0.0)
    shifted = sheet_layout.ViewCamera.from_record("front", cam.record(), moved)
    np.testing.assert_allclose(shifted.matrix[:3, 3], cam.matrix[:3, 3] + (2, 0, 0), atol=1e-6)
    np.testing.assert_allclose(shifted.target, np.asarray(cam.target) + (2, 0, 0), atol=1e-6)


def test_a_projection_must_match_its_cameras_size():
    camera = camera_towards(FRONT, size=(64, 32))
    with pytest.raises(rule.PaintError, match="must both be the camera's 64x32"):
        rule.Projection("front", "body", camera, np.zeros((64, 64, 3), np.uint8), np.zeros((32, 64)))


def test_wide_hidden_holes_close_smoothly_from_what_surrounds_them():
    size = 64
    texels = np.arange(size * size)
    yy, xx = np.mgrid[0:size, 0:size]
    colours = np.stack([xx * 2.0, yy * 2.0, np.full_like(xx, 50.0)], -1).reshape(-1, 3)
    hole = ((xx - 32) ** 2 + (yy - 32) ** 2 < 20 ** 2).ravel()  # 40 texels across: more than the rings reach
    closed, which = rule.close_holes(size, texels, np.where(hole[:, None], 0.0, colours), ~hole)
    assert which.tolist() == hole.tolist()
    # a smooth ramp is continued about as it was (the pyramid blends what surrounds the hole)
    assert np.abs(closed[hole] - colours[hole]).mean() < 12 and closed[hole].min() >= 0


def quad(x0, y0, x1, y1):
    return [[(x0, y0), (x1, y0), (x1, y1)], [(x0, y0), (x1, y1), (x0, y1)]]


def test_stacked_share_finds_faces_on_top_of_each_other_in_a_uv_map():
    """Mirrored halves and stacked copies are found whatever their winding; faces that only share
    edges are not, however many and small (a texel centre on a shared edge is nobody's twice)."""
    assert rule.stacked_share(quad(0.1, 0.1, 0.6, 0.7)) == 0.0
    assert rule.stacked_share(quad(0.1, 0.1, 0.6, 0.7) * 2) == 1.0
    mirrored = quad(0.1, 0.1, 0.5, 0.5) + [t[::-1] for t in quad(0.1, 0.1, 0.5, 0.5)]
    assert rule.stacked_share(mirrored) == 1.0
    assert rule.stacked_share(quad(0.1, 0.1, 0.5, 0.5) + quad(0.3, 0.1, 0.7, 0.5)) == pytest.approx(1 / 3, abs=0.01)
    n = 200  # a grid of 80 000 triangles over the whole map, edges through texel centres included
    x, y = (g.ravel() for g in np.meshgrid(np.arange(n) / n, np.arange(n) / n))
    a, b, c, d = (np.stack([x + dx / n, y + dy / n], -1) for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1)))
    grid = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    assert rule.stacked_share(grid) == 0.0
    assert rule.stacked_share(np.concatenate([grid, grid[:8000]])) == pytest.approx(0.1, abs=0.01)
    assert rule.stacked_share(np.zeros((0, 3, 2))) == 0.0  # no face: nothing stacked
    assert rule.stacked_share(quad(0.2, 0.2, 0.2, 0.9)) == 0.0  # faces of no area are left out
