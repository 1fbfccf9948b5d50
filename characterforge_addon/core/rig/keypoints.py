"""Projected keypoints of one person, and the standard OpenPose JSON format.

Each part is an (N, 3) float array of pixel x, pixel y (top-left origin) and confidence:
1 visible, OCCLUDED_CONFIDENCE when hidden behind geometry but kept, 0 missing.
"""

import json
from dataclasses import dataclass, field

import numpy as np

from . import skeleton as sk

OCCLUDED_CONFIDENCE = 0.5

_PARTS = (
    ("body", "pose_keypoints_2d", len(sk.BODY_JOINTS)),
    ("left_hand", "hand_left_keypoints_2d", len(sk.HAND_JOINTS)),
    ("right_hand", "hand_right_keypoints_2d", len(sk.HAND_JOINTS)),
    ("face", "face_keypoints_2d", len(sk.FACE_JOINTS)),
)


def _missing(n):
    return np.zeros((n, 3), dtype=np.float64)


@dataclass
class Person:
    name: str = ""
    body: np.ndarray = field(default_factory=lambda: _missing(len(sk.BODY_JOINTS)))
    left_hand: np.ndarray = field(default_factory=lambda: _missing(len(sk.HAND_JOINTS)))
    right_hand: np.ndarray = field(default_factory=lambda: _missing(len(sk.HAND_JOINTS)))
    face: np.ndarray = field(default_factory=lambda: _missing(len(sk.FACE_JOINTS)))

    def parts(self):
        return {attr: getattr(self, attr) for attr, _, _ in _PARTS}

    def without_occluded(self):
        """A copy where joints hidden behind geometry are missing rather than kept."""
        copy = Person(self.name)
        for attr, points in self.parts().items():
            kept = points.copy()
            kept[kept[:, 2] < 1.0] = 0.0
            setattr(copy, attr, kept)
        return copy


def to_openpose_dict(width, height, people):
    """The OpenPose JSON document (as ComfyUI's and controlnet_aux's pose tools read it)."""
    out = {"canvas_width": int(width), "canvas_height": int(height), "people": []}
    for person in people:
        entry = {}
        for attr, key, _ in _PARTS:
            points = getattr(person, attr).copy()
            points[points[:, 2] <= 0] = 0.0  # missing joints are written as 0, 0, 0
            entry[key] = [round(float(v), 3) for v in points.reshape(-1)]
        if person.name:
            entry["name"] = person.name
        out["people"].append(entry)
    return out


def to_openpose_json(width, height, people):
    return json.dumps(to_openpose_dict(width, height, people), indent=1)


def from_openpose_dict(document):
    """Read an OpenPose document back; raises ValueError naming the bad field."""
    try:
        width, height = int(document["canvas_width"]), int(document["canvas_height"])
        entries = document["people"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an OpenPose document: missing or bad field {exc}") from None
    people = []
    for i, entry in enumerate(entries):
        person = Person(entry.get("name", ""))
        for attr, key, n in _PARTS:
            values = entry.get(key) or []
            if len(values) not in (0, 3 * n):
                raise ValueError(f"people[{i}].{key} has {len(values)} numbers, expected {3 * n}")
            if values:
                setattr(person, attr, np.asarray(values, dtype=np.float64).reshape(n, 3))
        people.append(person)
    return width, height, people
