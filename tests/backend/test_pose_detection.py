"""Pose from Picture's backend half: the detect_pose job through the real app. The mapping from
controlnet_aux's results to OpenPose JSON is checked on known keypoints and by drawing them
both ways; the test profile's stand-in detector reads a drawn OpenPose picture through
controlnet_aux's own association code; a profile without the detector's weights is refused."""

import base64
import io
import json
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import wait

from characterforge_addon.core.maps import openpose_draw
from characterforge_addon.core.rig import pose_fit, pose_formats, pose_solver, projection, rig_layout

pytest.importorskip("controlnet_aux.open_pose")
from controlnet_aux.open_pose import PoseResult, draw_poses  # noqa: E402
from controlnet_aux.open_pose.body import BodyResult, Keypoint  # noqa: E402


@pytest.fixture
def backend(tmp_path):
    """A backend on the tiny profile: the detector needs no diffusion model, so none is made."""
    from characterforge_addon.backend.serving.server import Backend
    made = Backend(str(tmp_path / "data"), "tiny")
    made.start()
    yield made, TestClient(made.app), {"x-characterforge-token": made.token}
    made.stop()


def png_b64(pixels):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def detect(client, headers, pixels, **kw):
    job = {"kind": "detect_pose", "profile": "tiny", "image": png_b64(pixels), **kw}
    response = client.post("/jobs", json=job, headers=headers)
    assert response.status_code == 201, response.json()
    status = wait(client, headers, response.json()["id"], timeout=300)
    assert status["status"] == "completed", status.get("error")
    assert status["results"] == ["pose.json"]
    return json.loads(client.get(f"/jobs/{status['id']}/results/pose.json", headers=headers).content)


def test_controlnet_aux_results_map_to_openpose_json_and_draw_the_same():
    from characterforge_addon.backend.jobs import pose_detection
    rng = np.random.default_rng(0)
    w, h = 640, 480
    body = rng.uniform([100, 80], [500, 400], (18, 2))
    left, right = rng.uniform(50, 400, (21, 2)), rng.uniform(50, 400, (21, 2))

    def kp(xy):
        return Keypoint(xy[0] / w, xy[1] / h)

    body_kps = [kp(p) for p in body]
    body_kps[9] = None  # a body point the detector missed
    left_kps = [kp(p) for p in left]
    left_kps[5] = Keypoint(-1.0, -1.0)  # a missed hand point: controlnet_aux writes -1
    face = [kp(p) for p in rng.uniform(200, 300, (71, 2))]  # 70 points and the background channel's peak
    small = PoseResult(BodyResult([kp(p) for p in body[:4] * 0.1 + 200] + [None] * 14, 1.0, 4), None, None, None)
    poses = [small, PoseResult(BodyResult(body_kps, 1.0, 17), left_kps, [kp(p) for p in right], face)]
    people = pose_detection.people_from_poses(poses, w, h)
    assert len(people) == 2 and len(people[1]["pose_keypoints_2d"]) == 54  # the larger person first
    person = people[0]
    got = np.asarray(person["pose_keypoints_2d"]).reshape(18, 3)
    assert np.allclose(got[[0, 1, 17], :2], body[[0, 1, 17]], atol=0.01) and got[9].tolist() == [0, 0, 0]
    hand = np.asarray(person["hand_left_keypoints_2d"]).reshape(21, 3)
    assert hand[5].tolist() == [0, 0, 0] and np.allclose(hand[6, :2], left[6], atol=0.01)  # the person's own left
    assert np.allclose(np.asarray(person["hand_right_keypoints_2d"]).reshape(21, 3)[:, :2], right, atol=0.01)
    assert len(person["face_keypoints_2d"]) == 210
    # a face with points dropped (controlnet_aux shifts the rest) is left out rather than misread
    assert "face_keypoints_2d" not in pose_detection.people_from_poses(
        [PoseResult(BodyResult(body_kps, 1.0, 17), None, None, face[:50])], w, h)[0]
    # drawn from our JSON the way the rig draws, it is the picture controlnet_aux draws from its results
    doc = {"canvas_width": w, "canvas_height": h, "people": people[:1]}
    imported = pose_formats.read_pose(json.dumps(doc), min_confidence=0.0).frames[0].people[0].person()
    ours = openpose_draw.draw_people(w, h, [imported])
    reference = draw_poses(poses[1:], h, w)
    drawn = (ours.sum(-1) > 0) | (reference.sum(-1) > 0)
    assert np.all(ours == reference, axis=-1)[drawn].mean() > 0.9


def rot(axis, degrees):
    v = np.zeros(3)
    v["xyz".index(axis)] = math.radians(degrees)
    return pose_solver.rotation(v)


def drawn_pose():
    """A person posed with the rig's own kinematics, drawn as an OpenPose picture (no face:
    the stand-in reads body and hands)."""
    skeleton = pose_solver.Skeleton(rig_layout.build_layout(1.75, "ADULT"))
    pose = {}
    for side, s in (("L", 1), ("R", -1)):
        pose[f"upper_arm.{side}"] = (rot("y", s * 70), None)
        pose[f"forearm.{side}"] = (rot("y", -s * 110), None)
        pose[f"hand.{side}"] = (rot("x", 90), None)
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot("x", 90), (0.0, -1.25, 1.3)
    cam = projection.CameraModel(world_to_camera=np.linalg.inv(m), resolution=(512, 512), lens=30)
    joints = skeleton.joint_positions(*skeleton.transforms(pose))
    person = pose_formats.ImportedPerson(given=("body", "left_hand", "right_hand"))
    for part in ("body", "left_hand", "right_hand"):
        xy, depth = projection.project(cam, joints[part])
        inside = projection.in_frame(xy, depth, cam.resolution)
        points = np.zeros((len(xy), 3))
        points[inside, :2], points[inside, 2] = xy[inside], 1.0
        setattr(person, part, points)
    return person, openpose_draw.draw_people(512, 512, [person.person()])


def test_the_test_profiles_detector_reads_a_drawn_openpose_picture(backend):
    _, client, headers = backend
    truth, picture = drawn_pose()
    doc = detect(client, headers, picture)
    assert doc["canvas_width"] == 512 and doc["detector"].startswith("tiny stand-in")
    found = pose_formats.read_pose(json.dumps(doc)).frames[0].people
    assert len(found) == 1
    fit = pose_fit.fit_figure(truth, found[0])
    assert fit["body"]["pck"] >= 0.9, fit  # the joints controlnet_aux's association put together
    assert (found[0].left_hand[:, 2] > 0).sum() + (found[0].right_hand[:, 2] > 0).sum() > 0  # hand boxes were read


def test_noise_has_nobody_and_bad_fields_are_refused(backend):
    _, client, headers = backend
    noise = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    doc = detect(client, headers, noise, hands=False, face=False)
    assert doc == {"canvas_width": 128, "canvas_height": 96, "people": [],
                   "detector": "tiny stand-in (reads drawn OpenPose pictures; tests only)"}
    for change, field in (({"hands": "yes"}, "hands"), ({"image": ""}, "image"), ({"name": "../x"}, "name")):
        job = {"kind": "detect_pose", "profile": "tiny", "image": png_b64(noise), **change}
        response = client.post("/jobs", json=job, headers=headers)
        assert response.status_code == 400 and response.json()["details"]["field"] == field, response.json()


def test_a_profile_without_the_detectors_weights_is_refused_naming_them(backend, tmp_path, monkeypatch):
    from characterforge_addon.backend.models import models
    monkeypatch.setattr(models, "hf_cache_dir", lambda: str(tmp_path / "empty-hub"))
    _, client, headers = backend
    job = {"kind": "detect_pose", "profile": "sdxl", "image": png_b64(np.zeros((8, 8, 3), np.uint8))}
    response = client.post("/jobs", json=job, headers=headers)
    body = response.json()
    assert response.status_code == 400 and body["details"]["field"] == "profile", body
    assert "lllyasviel/Annotators" in body["message"] and "hf download" in body["message"]
