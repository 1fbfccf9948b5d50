"""An animated shot's plan and frames (pure): segments that overlap by the frames carried over,
the families' windows, the clip's size, the characters' mask, the face crop, a pack's pictures."""

import numpy as np
import pytest

from characterforge_addon.core.rig import keypoints
from characterforge_addon.core.shots import animation_maps
from characterforge_addon.core.spec import animation_spec
from characterforge_addon.core.spec.spec_fields import JobSpecError


def spans(plan):
    return [(s["frames"][0], s["frames"][-1], s["carried"]) for s in plan]


def test_a_ten_second_shot_is_covered_by_overlapping_segments_each_frame_made_once():
    plan = animation_spec.segment_plan("wan_vace", range(1, 161))  # 10 s at 16 fps
    assert spans(plan) == [(1, 81, 0), (77, 157, 5), (153, 160, 5)]
    made = [f for s in plan for f in s["frames"][s["carried"]:]]
    assert made == list(range(1, 161))  # no frame twice, none missing
    for before, after in zip(plan, plan[1:]):  # the seam: the carried frames are the last ones made before
        assert after["frames"][:after["carried"]] == before["frames"][-after["carried"]:]


def test_each_familys_window_and_carry_rules():
    assert spans(animation_spec.segment_plan("wan_animate", range(1, 100))) == [(1, 77, 0), (73, 99, 5)]
    assert spans(animation_spec.segment_plan("wan_vace", range(5, 10))) == [(5, 9, 0)]
    with pytest.raises(JobSpecError, match="window of 77"):
        animation_spec.segment_plan("wan_animate", range(1, 100), 81)
    with pytest.raises(JobSpecError, match="carry 1 or 5"):
        animation_spec.segment_plan("wan_animate", range(1, 100), 0, 3)
    with pytest.raises(JobSpecError, match="makes no video"):
        animation_spec.segment_plan("sdxl", range(1, 10))
    with pytest.raises(JobSpecError, match="consecutive"):
        animation_spec.plan_segments([1, 2, 5], 9, 1)


def test_the_clip_takes_the_cameras_aspect_in_multiples_of_16():
    assert animation_maps.video_size(1920, 1080, 480) == (848, 480)
    assert animation_maps.video_size(1080, 1920, 720) == (400, 720)
    assert animation_maps.video_size(96, 96, 70) == (64, 64)


def test_the_characters_mask_and_the_face_crop():
    a, b = np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.uint8)
    a[1, 1], b[5, 5] = 255, 200
    mask = animation_maps.union_mask([a, b])
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255} and mask.sum() == 2 * 255
    picture = np.zeros((100, 100, 3), np.uint8)
    picture[40:60, 30:50] = 255
    face = np.zeros((70, 3))
    face[:, 0], face[:, 1], face[:, 2] = np.linspace(35, 45, 70), np.linspace(45, 55, 70), 1.0
    person = keypoints.Person("Hero", body=np.zeros((18, 3)), face=face)
    crop = animation_maps.face_crop(picture, [person], side=32)
    assert crop.shape == (32, 32, 3) and crop.mean() > 200  # the square around the face keypoints
    nobody = keypoints.Person("Away", body=np.zeros((18, 3)))
    assert not animation_maps.face_crop(picture, [nobody], side=16).any()  # no face: black


def test_a_packs_pictures_front_view_first_then_the_picked_faces():
    manifest = {"views": [{"name": "side", "yaw": 90.0, "file": "views/side.png"},
                          {"name": "front", "yaw": 0.0, "file": "views/front.png"},
                          {"name": "back", "yaw": 180.0, "file": "views/back.png"}],
                "faces": [{"name": "f1", "file": "faces/f1.png", "use_as_identity": True},
                          {"name": "f2", "file": "faces/f2.png", "use_as_identity": False}]}
    assert animation_maps.pack_pictures("/p", manifest) == ["/p/views/front.png", "/p/faces/f1.png",
                                                            "/p/views/side.png", "/p/views/back.png"]
