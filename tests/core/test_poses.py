import json
import math

import pytest

from characterforge_addon.core.rig import poses
from characterforge_addon.core.rig.poses import PoseFileError


def good_doc(**changes):
    doc = poses.pose_document("wave", 1.75, {"hand_ik.L": {"location": [0, 0.1, 0], "rotation_quaternion": [1, 0, 0, 0], "scale": [1, 1, 1]}})
    doc.update(changes)
    return json.dumps(doc)


def test_round_trip():
    doc = poses.parse_pose(good_doc())
    assert doc["bones"]["hand_ik.L"]["location"] == [0.0, 0.1, 0.0]
    assert doc["rig_height"] == 1.75


@pytest.mark.parametrize("text,fragment", [
    ("{not json", "not valid JSON (line 1"),
    (json.dumps({"format": "other"}), "not a CharacterForge pose"),
    (good_doc(version=99), "version 99"),
    (good_doc(rig_height=-1), "rig_height"),
    (good_doc(bones={}), '"bones"'),
    (good_doc(bones={"a": {"location": [0, 0]}}), "location must be a list of 3"),
    (good_doc(bones={"a": {"rotation_quaternion": [1, 0, 0, "x"]}}), "finite numbers"),
    (good_doc(bones={"a": "up"}), "must be an object"),
])
def test_bad_files_name_file_and_field(text, fragment):
    with pytest.raises(PoseFileError) as err:
        poses.parse_pose(text, source="pose file /tmp/p.json")
    assert fragment in str(err.value) and "/tmp/p.json" in str(err.value)


def test_nan_is_refused():
    text = good_doc().replace("0.1", "NaN")
    with pytest.raises(PoseFileError, match="finite"):
        poses.parse_pose(text)


@pytest.mark.parametrize("preset", ["ADULT", "CHILD", "CHIBI"])
@pytest.mark.parametrize("name", list(poses.LIBRARY))
def test_every_library_pose_builds(name, preset):
    pose = poses.library_pose(name, preset)
    for values in list(pose.rotations.values()) + list(pose.offsets.values()):
        assert len(values) == 3 and all(math.isfinite(v) for v in values)


def test_turnaround_angles():
    assert [poses.library_pose(n).turn for n in poses.TURNAROUND] == [0, 45, 90, 135, 180]


def test_unknown_pose():
    with pytest.raises(KeyError, match="unknown pose"):
        poses.library_pose("DAB")
