import json

import numpy as np
import pytest

from characterforge_addon.core.rig import keypoints
from characterforge_addon.core.rig.keypoints import Person


def test_openpose_json_layout_and_round_trip():
    p = Person("Hero")
    p.body[0] = (10.5, 20.25, 1.0)
    p.body[3] = (30, 40, keypoints.OCCLUDED_CONFIDENCE)
    p.face[5] = (1, 2, 1)
    doc = json.loads(keypoints.to_openpose_json(640, 480, [p]))
    assert doc["canvas_width"] == 640 and doc["canvas_height"] == 480
    person = doc["people"][0]
    assert len(person["pose_keypoints_2d"]) == 54
    assert len(person["hand_left_keypoints_2d"]) == 63 and len(person["hand_right_keypoints_2d"]) == 63
    assert len(person["face_keypoints_2d"]) == 210
    assert person["pose_keypoints_2d"][:3] == [10.5, 20.25, 1.0]
    w, h, people = keypoints.from_openpose_dict(doc)
    assert (w, h) == (640, 480)
    np.testing.assert_allclose(people[0].body, p.body)


def test_missing_joints_are_written_as_zero():
    p = Person("x")
    p.body[0] = (5, 6, 0)
    doc = keypoints.to_openpose_dict(8, 8, [p])
    assert doc["people"][0]["pose_keypoints_2d"][:3] == [0.0, 0.0, 0.0]


def test_without_occluded_drops_only_hidden_joints():
    p = Person("x")
    p.body[0] = (1, 1, 1)
    p.body[1] = (2, 2, keypoints.OCCLUDED_CONFIDENCE)
    q = p.without_occluded()
    assert q.body[0, 2] == 1 and q.body[1, 2] == 0 and p.body[1, 2] == keypoints.OCCLUDED_CONFIDENCE


@pytest.mark.parametrize("doc,message", [
    ({}, "canvas_width"),
    ({"canvas_width": 1, "canvas_height": 1, "people": [{"pose_keypoints_2d": [1, 2]}]}, "pose_keypoints_2d has 2"),
])
def test_bad_documents_name_the_field(doc, message):
    with pytest.raises(ValueError, match=message):
        keypoints.from_openpose_dict(doc)
