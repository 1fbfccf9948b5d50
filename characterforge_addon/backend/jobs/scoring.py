"""Scores for every output: identity with insightface (ArcFace), appearance with the profile's
image encoder (a character's region against its pack's views: the look of a creature or an
object, the outfit of a human), pose adherence by re-detecting the pose with controlnet_aux's
OpenPose detector. Where a model is missing the score says so. The arithmetic is core.scores."""

import os

import numpy as np

from ...core.characters import scores
from ..models import models

POSE_REPO = "lllyasviel/Annotators"
POSE_FILES = ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth")


def missing_pose_weights():
    """Why controlnet_aux's OpenPose detector cannot load here (with the command that fixes it),
    or None when its weights are in the Hugging Face cache."""
    snap = models._snapshot(POSE_REPO)
    absent = [f for f in POSE_FILES if snap is None or not os.path.isfile(os.path.join(snap, f))]
    if not absent:
        return None
    return (f"OpenPose detector ({POSE_REPO} {', '.join(absent)} not in the Hugging Face cache; "
            f"get it with: hf download {POSE_REPO} {' '.join(absent)})")


class PoseDetector:
    """controlnet_aux's OpenPose detector from the Hugging Face cache, or why it is missing."""

    def __init__(self):
        self.detector, self.missing = None, missing_pose_weights()
        if self.missing:
            return
        snap = models._snapshot(POSE_REPO)
        from controlnet_aux import OpenposeDetector
        self.detector = OpenposeDetector.from_pretrained(snap)  # torch.load with weights_only: tensors only

    def people(self, rgb):
        """Detected people as (18, 3) body keypoint arrays in pixels."""
        h, w = rgb.shape[:2]
        out = []
        for pose in self.detector.detect_poses(np.ascontiguousarray(rgb)):
            body = np.zeros((18, 3))
            for i, k in enumerate(pose.body.keypoints[:18]):
                if k is not None:
                    body[i] = (k.x * w, k.y * h, 1.0)
            out.append(body)
        return out


def identity_target(face_tools, spec, reference_pngs, decode):
    """(the character's embedding, the reference crops' embeddings) a job's outputs are scored
    against, or (an "unavailable" score, None) when nothing can be scored; (None, None) when
    the job has no identity."""
    if "identity" not in spec:
        return None, None
    if face_tools is None or not face_tools.has_recogniser:
        return scores.unavailable("insightface recognition model (the profile's insightface role)"), None
    references = [face_tools.embed(np.asarray(decode(png, "identity"))) for png in reference_pngs]
    references = [r for r in references if r is not None]
    mean = spec["identity"].get("embedding")
    if mean is None and references:
        mean = np.mean(references, axis=0)
    return mean, references


def identity_scores(face_tools, images, target):
    """Per output image, its identity score against `identity_target`'s result."""
    mean, references = target
    if references is None:  # no identity, or no recogniser: the same answer for every image
        return [mean] * len(images)
    out = []
    for pixels in images:
        faces = [f.embedding for f in face_tools.find(pixels) if f.embedding is not None]
        out.append(scores.identity(faces, mean, references))
    return out


def pose_scores(detector, images, spec):
    """Per output image, the PCK of the re-detected pose against the rig's keypoints (sent in
    the spec as `keypoints`, OpenPose JSON), for the best-fitting detected person per rig."""
    targets = spec.get("keypoints")
    if not targets:
        return [None] * len(images)
    if detector.detector is None:
        return [scores.unavailable(detector.missing)] * len(images)
    out = []
    for pixels in images:
        found = detector.people(pixels)
        out.append({name: scores.best_match(found, np.asarray(body)) for name, body in targets.items()})
    return out


def appearance_scores(engine, images, masks, identity):
    """Per output image, the appearance score of the character's region (its mask, None: the
    whole image) against the pack's appearance `identity["appearance"]`; None without one."""
    look = (identity or {}).get("appearance")
    if not look:
        return [None] * len(images)
    if engine.appearance.missing:
        return [scores.unavailable(engine.appearance.missing)] * len(images)
    try:
        found = engine.appearance.of_regions(images, masks)
    except models.ModelMissing as exc:
        return [scores.unavailable(f"the image encoder ({exc})")] * len(images)
    if any(f is not None and len(f) != len(look["embedding"]) for f in found):
        why = (f"the pack's appearance embedding has {len(look['embedding'])} numbers, this profile's image encoder "
               "makes another size: make the sheet again with it")
        return [scores.unavailable(why)] * len(images)
    views = {f"view {i + 1}": v for i, v in enumerate(look["views"])}
    return [scores.appearance(f, look["embedding"], views) for f in found]
