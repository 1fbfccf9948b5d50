"""Pose from Picture: the people in a picture as OpenPose JSON, found by the detector the pose
score uses (controlnet_aux's OpenPose, with hands and face). A test profile (one that produces
noise) gets tiny_pose's stand-in instead, which reads drawn OpenPose pictures through the same
controlnet_aux code, so the whole path runs offline."""

import json

import numpy as np

from ...core.rig import skeleton as sk
from ...core.errors import UserError
from . import scoring

DETECTOR_NAME = "controlnet_aux OpenPose (body, hands, face)"


def detector_for(profile, cache):
    """(controlnet_aux OpenposeDetector, its name) for `profile`; `cache`: a dict kept between
    jobs. Raises UserError naming the missing weights and how to get them."""
    if profile.produces_noise:
        if "tiny" not in cache:
            from ..tiny import pose as tiny_pose
            cache["tiny"] = tiny_pose.detector()
        return cache["tiny"], "tiny stand-in (reads drawn OpenPose pictures; tests only)"
    if "real" not in cache or cache["real"].detector is None:
        cache["real"] = scoring.PoseDetector()
    found = cache["real"]
    if found.detector is None:
        raise UserError(f"Pose from Picture needs the {found.missing}")
    return found.detector, DETECTOR_NAME


def check(profile):
    """Before queueing: the detector this profile would use is on this machine."""
    missing = None if profile.produces_noise else scoring.missing_pose_weights()
    if missing:
        raise UserError(f"Pose from Picture needs the {missing}")


def _flat(points, count, width, height):
    """controlnet_aux keypoints (0-1, None or -1 when missing) as OpenPose's flat pixel list."""
    values = []
    for k in range(count):
        point = points[k] if points is not None and k < len(points) else None
        if point is None or point.x < 0 or point.y < 0:
            values += [0.0, 0.0, 0.0]
        else:
            values += [round(float(point.x) * width, 2), round(float(point.y) * height, 2),
                       round(min(1.0, float(point.score)), 3)]
    return values


def people_from_poses(poses, width, height):
    """controlnet_aux PoseResults -> OpenPose people (pixels), the largest first. Its face
    finder drops points it misses (the rest shift), so a face without all 70 is left out;
    `left_hand` is the person's own left, as OpenPose's hand_left_keypoints_2d."""
    people = []
    for pose in poses:
        entry = {"pose_keypoints_2d": _flat(pose.body.keypoints, len(sk.BODY_JOINTS), width, height)}
        for key, points in (("hand_left_keypoints_2d", pose.left_hand), ("hand_right_keypoints_2d", pose.right_hand)):
            if points is not None:
                entry[key] = _flat(points, len(sk.HAND_JOINTS), width, height)
        if pose.face is not None and len(pose.face) >= len(sk.FACE_JOINTS):  # 71: a background peak last
            entry["face_keypoints_2d"] = _flat(pose.face, len(sk.FACE_JOINTS), width, height)
        people.append(entry)

    def size(entry):
        pts = np.asarray(entry["pose_keypoints_2d"]).reshape(-1, 3)
        pts = pts[pts[:, 2] > 0, :2]
        return float(max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]))) if len(pts) > 1 else 0.0

    people.sort(key=size, reverse=True)
    return people


def run(profile, spec, picture, progress, cache, emit):
    """Detect the people in `picture` (a PIL RGB image) and emit `<name>.json`."""
    progress.stage("loading the pose detector")
    detector, name = detector_for(profile, cache)
    progress.stage("finding people")
    rgb = np.asarray(picture.convert("RGB"))
    h, w = rgb.shape[:2]
    poses = detector.detect_poses(np.ascontiguousarray(rgb), include_hand=spec["hands"], include_face=spec["face"])
    doc = {"canvas_width": w, "canvas_height": h, "people": people_from_poses(poses, w, h), "detector": name}
    emit(f"{spec['name']}.json", json.dumps(doc, indent=1).encode("utf-8"))
