import pytest

from characterforge_addon.core.rig import rig_mapping
from characterforge_addon.core.rig.rig_layout import build_layout
from characterforge_addon.core.rig.rig_mapping import RigMappingError

MIXAMO = ["mixamorig:Hips", "mixamorig:Neck", "mixamorig:Head"] + [
    f"mixamorig:{side}{bone}" for side in ("Left", "Right")
    for bone in ("Arm", "ForeArm", "Hand", "UpLeg", "Leg", "Foot", "Eye")
] + [f"mixamorig:{side}Hand{f}{i}" for side in ("Left", "Right")
     for f in ("Thumb", "Index", "Middle", "Ring", "Pinky") for i in range(1, 5)]

RIGIFY = ["DEF-spine.004", "DEF-nose.002"] + [
    f"DEF-{b}.{s}" for s in ("L", "R")
    for b in ("upper_arm", "forearm", "hand", "thigh", "shin", "foot", "ear")
] + [f"ORG-eye.{s}" for s in ("L", "R")] + [
    f"DEF-{stem}.0{i}.{s}" for s in ("L", "R")
    for stem in ("thumb", "f_index", "f_middle", "f_ring", "f_pinky") for i in (1, 2, 3)]


def test_mixamo_is_detected_and_mapped():
    convention, mapping = rig_mapping.auto_mapping(MIXAMO)
    assert convention == "MIXAMO"
    assert mapping["body.left_elbow"] == ("mixamorig:LeftForeArm", "head")
    assert mapping["right_hand.index_4"] == ("mixamorig:RightHandIndex4", "head")
    assert "body.nose" not in mapping and "body.left_ear" not in mapping  # Mixamo has neither
    assert len(mapping) == 15 + 42


def test_rigify_is_detected_and_mapped():
    convention, mapping = rig_mapping.auto_mapping(RIGIFY)
    assert convention == "RIGIFY"
    assert mapping["body.neck"] == ("DEF-spine.004", "head")
    assert mapping["left_hand.thumb_4"] == ("DEF-thumb.03.L", "tail")
    assert mapping["body.left_eye"] == ("ORG-eye.L", "head")
    assert len(mapping) == 18 + 42


def test_characterforge_rig_maps_every_joint():
    names = [b.name for b in build_layout().bones]
    convention, mapping = rig_mapping.resolve(names)
    assert convention == "CHARACTERFORGE" and len(mapping) == 18 + 42 + 70


def test_overrides_apply_and_unmap():
    _, mapping = rig_mapping.resolve(MIXAMO, [("body.nose", "mixamorig:Head", "tail"), ("body.left_eye", "", "head")])
    assert mapping["body.nose"] == ("mixamorig:Head", "tail") and "body.left_eye" not in mapping


def test_missing_bones_are_named():
    with pytest.raises(RigMappingError, match="no bone named 'Jaw'.*Own rig mapping"):
        rig_mapping.resolve(MIXAMO, [("body.nose", "Jaw", "head")], rig_name="armature 'Bob'")


def test_unknown_joint_and_end():
    with pytest.raises(RigMappingError, match="unknown joint"):
        rig_mapping.resolve(MIXAMO, [("body.tail", "mixamorig:Hips", "head")])
    with pytest.raises(RigMappingError, match="head or tail"):
        rig_mapping.resolve(MIXAMO, [("body.nose", "mixamorig:Head", "middle")])


def test_unknown_rig_without_mapping_is_refused():
    with pytest.raises(RigMappingError, match="map the joints by hand"):
        rig_mapping.resolve(["Bone", "Bone.001"])
