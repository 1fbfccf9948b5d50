"""Our numpy drawing against controlnet_aux's own cv2 drawing, the ControlNet training reference."""

import numpy as np
import pytest

from characterforge_addon.core.maps import openpose_draw
from characterforge_addon.core.rig import skeleton as sk
from characterforge_addon.core.rig.keypoints import Person

util = pytest.importorskip("controlnet_aux.open_pose.util", reason="reference drawing needs controlnet_aux (dev env)")
from controlnet_aux.open_pose import PoseResult, draw_poses  # noqa: E402
from controlnet_aux.open_pose.body import BodyResult, Keypoint  # noqa: E402


def random_person(rng, w, h, missing=0.1):
    center = rng.uniform([0.3 * w, 0.3 * h], [0.7 * w, 0.7 * h])
    spread = min(w, h) * 0.25

    def part(n, scale):
        pts = np.zeros((n, 3))
        pts[:, :2] = center + rng.normal(0, scale, (n, 2))
        pts[:, 2] = 1.0
        pts[rng.random(n) < missing, :] = 0
        return pts

    return Person("p", part(18, spread), part(21, spread * 0.2), part(21, spread * 0.2), part(70, spread * 0.15))


def reference(people, w, h):
    poses = []
    for p in people:
        def kps(arr, none_missing):
            out = []
            for x, y, c in arr:
                if c > 0:
                    out.append(Keypoint(x / w, y / h))
                else:
                    out.append(None if none_missing else Keypoint(0.0, 0.0))
            return out
        poses.append(PoseResult(BodyResult(kps(p.body, True), 1.0, 18), kps(p.left_hand, False),
                                kps(p.right_hand, False), kps(p.face, False)))
    return draw_poses(poses, h, w)


def agreement(a, b):
    drawn = (a.sum(-1) > 0) | (b.sum(-1) > 0)
    same = np.all(a == b, axis=-1)
    return same.mean(), same[drawn].mean()


@pytest.mark.parametrize("seed", range(6))
def test_drawing_matches_controlnet_aux(seed):
    rng = np.random.default_rng(seed)
    w, h = (512, 512) if seed % 2 else (768, 512)
    people = [random_person(rng, w, h) for _ in range(1 + seed % 3)]
    ours = openpose_draw.draw_people(w, h, people)
    ref = reference(people, w, h)
    whole, drawn = agreement(ours, ref)
    assert whole >= 0.99, whole
    assert drawn >= 0.93, f"only {drawn:.3f} of drawn pixels agree"


def test_dots_are_pixel_exact():
    rng = np.random.default_rng(42)
    w, h = 640, 480
    person = Person("dots")
    person.face[:, :2] = rng.uniform(20, 400, (70, 2))
    person.face[:, 2] = 1
    lone = [2, 4, 7, 9, 13]  # no two of them share a limb: dots only
    person.body[lone, :2] = rng.uniform(20, 400, (5, 2))
    person.body[lone, 2] = 1
    assert np.array_equal(openpose_draw.draw_people(w, h, [person]), reference([person], w, h))


def test_limbs_at_sixty_percent_and_joint_colours():
    person = Person("p")
    person.body[1] = (100, 100, 1)  # neck
    person.body[2] = (40, 100, 1)   # right shoulder
    canvas = openpose_draw.draw_people(200, 200, [person])
    assert tuple(canvas[100, 70]) == tuple(int(c * 0.6) for c in sk.BODY_COLORS[0])
    assert tuple(canvas[100, 100]) == sk.BODY_COLORS[1]  # the neck dot in its own colour


def test_missing_joints_draw_nothing():
    canvas = openpose_draw.draw_people(64, 64, [Person("empty")])
    assert not canvas.any()


def test_points_outside_the_canvas_are_clipped():
    person = Person("p")
    person.body[1] = (-50, 30, 1)
    person.body[2] = (300, 30, 1)
    canvas = openpose_draw.draw_people(64, 64, [person])
    assert canvas[30].any() and canvas.shape == (64, 64, 3)
