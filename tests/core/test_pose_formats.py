"""Pose files other tools write, read into the rig's OpenPose layout; malformed ones refused
with the file and the field named."""

import json

import numpy as np
import pytest

from characterforge_addon.core.rig import pose_formats as pf
from characterforge_addon.core.rig import skeleton as sk


def body18(offset=100.0):
    return [[offset + 10.0 * i, 50.0 + 20.0 * i, 1.0] for i in range(18)]


def flat(points):
    return [v for p in points for v in p]


def test_openpose_json_in_pixels_with_hands_face_and_names():
    face = [[200.0 + i, 60.0 + (i % 7), 0.9] for i in range(70)]
    hand = [[300.0 + i, 300.0 + i, 0.8] for i in range(21)]
    doc = {"canvas_width": 512, "canvas_height": 768, "people": [
        {"name": "Hero", "pose_keypoints_2d": flat(body18()), "face_keypoints_2d": flat(face),
         "hand_left_keypoints_2d": flat(hand), "hand_right_keypoints_2d": []}]}
    out = pf.read_pose(json.dumps(doc))
    assert out.format == "OpenPose JSON" and not out.normalized
    frame = out.frames[0]
    assert (frame.width, frame.height) == (512, 768)
    person = frame.people[0]
    assert person.name == "Hero" and set(person.given) == {"body", "face", "left_hand"}
    assert np.allclose(person.body, body18()) and np.allclose(person.face, face)
    assert np.allclose(person.left_hand, hand) and not person.right_hand[:, 2].any()


def test_body_25_maps_to_body_18_and_keeps_the_feet():
    body25 = [[float(i), float(100 + i), 1.0] for i in range(25)]
    doc = {"canvas_width": 200, "canvas_height": 300, "people": [{"pose_keypoints_2d": flat(body25)}]}
    person = pf.read_pose(json.dumps(doc)).frames[0].people[0]
    assert person.body[:, 0].tolist() == list(map(float, pf.BODY_25_TO_18))  # mid-hip (8) is dropped
    assert person.body[sk.BODY_JOINTS.index("right_hip"), 0] == 9.0
    assert person.feet[:, 0].tolist() == [19.0, 20.0, 21.0, 22.0, 23.0, 24.0] and "feet" in person.given


def test_sd_webui_normalised_coordinates_and_its_missing_hand_markers():
    """sd-webui-controlnet sends 0-1 coordinates; a missing hand point is -1 pixel (x or y
    slightly below 0) with confidence 1, a missing body point 0, 0, 0."""
    body = [[0.4 + 0.01 * i, 0.3 + 0.02 * i, 1.0] for i in range(18)]
    body[9] = [0.0, 0.0, 0.0]
    hand = [[0.75, 0.46, 1.0]] * 21
    hand[8] = [0.7135, -0.001953125, 1.0]
    doc = {"canvas_width": 768, "canvas_height": 512,
           "people": [{"pose_keypoints_2d": flat(body), "hand_left_keypoints_2d": flat(hand),
                       "face_keypoints_2d": None}]}
    out = pf.read_pose(json.dumps(doc))
    assert out.normalized
    person = out.frames[0].people[0]
    assert person.body[0, :2] == pytest.approx((0.4 * 768, 0.3 * 512))
    assert person.body[9, 2] == 0 and person.left_hand[8, 2] == 0 and person.left_hand[0, 2] == 1.0
    assert "face" not in person.given


def test_comfyui_pose_keypoint_list_is_frames_and_dwpose_68_point_faces_get_pupils():
    face68 = [[100.0 + i, 80.0 + (i % 5), 1.0] for i in range(68)]
    frames = [{"canvas_width": 640, "canvas_height": 480, "people": [
        {"pose_keypoints_2d": flat(body18(50.0 + 5 * k)), "face_keypoints_2d": flat(face68)}]} for k in range(3)]
    out = pf.read_pose(json.dumps(frames))
    assert len(out.frames) == 3 and out.format.startswith("ComfyUI")
    face = out.frames[2].people[0].face
    assert face.shape == (70, 3)
    assert face[68, :2] == pytest.approx(np.mean(face68[36:42], axis=0)[:2])  # right pupil: its eye's centre
    assert out.frames[2].people[0].body[0, 0] == 60.0


def test_coco_wholebody_annotations_and_dwpose_predictions():
    coco17 = [[10.0 * i + 1, 5.0 * i + 1, 2] for i in range(17)]
    doc = {"images": [{"id": 7, "width": 320, "height": 240}],
           "annotations": [{"image_id": 7, "keypoints": flat(coco17), "foot_kpts": [0] * 18,
                            "face_kpts": [0] * 204, "lefthand_kpts": flat([[50.0, 60.0, 1]] * 21),
                            "righthand_kpts": [0] * 63}]}
    out = pf.read_pose(json.dumps(doc))
    person = out.frames[0].people[0]
    assert (out.frames[0].width, out.frames[0].height) == (320, 240)
    # COCO's right shoulder (6) is OpenPose's 2; the neck is the shoulders' midpoint
    assert person.body[2, :2].tolist() == [61.0, 31.0] and person.body[2, 2] == 1.0
    assert person.body[1, :2].tolist() == pytest.approx([(51 + 61) / 2, (26 + 31) / 2])
    assert person.left_hand[0, 2] == 0.5  # visibility 1 (labelled, hidden) is half sure
    predictions = [{"keypoints": [[100.0 + i, 200.0 + i] for i in range(133)], "keypoint_scores": [0.9] * 133}]
    out = pf.read_pose(json.dumps(predictions), fallback_canvas=(512, 512))
    person = out.frames[0].people[0]
    assert out.format.startswith("DWPose") and person.right_hand[0, :2].tolist() == [212.0, 312.0]
    assert person.feet[0, :2].tolist() == [117.0, 217.0] and person.face[0, :2].tolist() == [123.0, 223.0]


def test_people_by_size_and_fitting_a_picture_into_the_render():
    small = pf.ImportedPerson(body=np.array([[10.0, 10.0, 1.0]] * 17 + [[20.0, 30.0, 1.0]]))
    big = pf.ImportedPerson(body=np.array([[10.0, 10.0, 1.0]] * 17 + [[200.0, 300.0, 1.0]]))
    frame = pf.PoseFrame(400, 400, [small, big])
    assert pf.people_by_size(frame) == [1, 0]
    moved, scale, offset = pf.fit_to_render(pf.PoseFrame(400, 200, [big]), big, (800, 800))
    assert scale == 2.0 and offset == (0.0, 200.0)
    assert moved.body[17, :2].tolist() == [400.0, 800.0]


@pytest.mark.parametrize("text, field", [
    ("{not json", "not valid JSON"),
    (json.dumps({"canvas_width": 512, "canvas_height": 512, "people": [{"pose_keypoints_2d": [1.0] * 50}]}),
     "people[0].pose_keypoints_2d has 50 numbers"),
    (json.dumps({"canvas_width": 512, "canvas_height": 512,
                 "people": [{"pose_keypoints_2d": [1.0] * 54, "hand_left_keypoints_2d": [1.0] * 60}]}),
     "people[0].hand_left_keypoints_2d has 60 numbers"),
    ('{"canvas_width": 512, "canvas_height": 512, "people": [{"pose_keypoints_2d": [NaN' + ', 1' * 53 + ']}]}',
     "people[0].pose_keypoints_2d[0] is nan, not a finite number"),
    (json.dumps({"canvas_width": 512, "canvas_height": 512,
                 "people": [{"pose_keypoints_2d": flat(body18()[:4] + [[9000.0, 10.0, 1.0]] + body18()[5:])}]}),
     "people[0].pose_keypoints_2d[4] (right_wrist) at x=9000.0"),
    (json.dumps({"canvas_width": 512, "canvas_height": 512, "people": []}), "people is empty"),
    (json.dumps({"canvas_width": 512, "canvas_height": 512, "people": [{"pose_keypoints_2d": [0.0] * 54}]}),
     "people is empty"),
    (json.dumps({"canvas_width": -3, "canvas_height": 512, "people": [{"pose_keypoints_2d": flat(body18())}]}),
     "canvas_width must be a picture size"),
    (json.dumps({"people": [{"pose_keypoints_2d": flat(body18())}]}), "canvas_width is missing"),
    (json.dumps({"people": [{"pose_keypoints_2d": "1, 2, 3"}], "canvas_width": 5, "canvas_height": 5}),
     "people[0].pose_keypoints_2d must be a list of numbers"),
    (json.dumps({"people": [{"pose_keypoints_2d": [1.0, True] + [1.0] * 52}], "canvas_width": 9, "canvas_height": 9}),
     "people[0].pose_keypoints_2d[1] must be a number"),
    (json.dumps({"bones": {}}), "has neither \"people\""),
    (json.dumps([{"keypoints": [[1.0, 2.0]] * 40}]), "[0].keypoints has 40 points"),
    (json.dumps({"annotations": [{"keypoints": [1] * 50}], "images": []}), "annotations[0].keypoints has 50 numbers"),
])
def test_malformed_files_are_refused_naming_the_field(text, field):
    with pytest.raises(pf.PoseFileError) as err:
        pf.read_pose(text, source="pose file x.json")
    message = str(err.value)
    assert message.startswith("pose file x.json") and field in message, message


def test_a_picture_is_not_a_pose_file(tmp_path):
    path = tmp_path / "photo.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(pf.PoseFileError, match="not a text file"):
        pf.read_pose_file(str(path))
    with pytest.raises(pf.PoseFileError, match="cannot read pose file"):
        pf.read_pose_file(str(tmp_path / "missing.json"))
