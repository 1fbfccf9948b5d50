import numpy as np
import pytest

from characterforge_addon.core.rig import proxy_mesh, rig_layout


@pytest.mark.parametrize("preset", list(rig_layout.PROPORTIONS))
@pytest.mark.parametrize("height", [0.3, 1.75, 2.2])
def test_heights_and_joints(preset, height):
    layout = rig_layout.build_layout(height, preset)
    pts = rig_layout.joint_positions(layout)
    assert {k: len(v) for k, v in pts.items()} == {"body": 18, "left_hand": 21, "right_hand": 21, "face": 70}
    tops = max(b.tail[2] for b in layout.bones)
    assert tops == pytest.approx(height)
    body = pts["body"]
    nose, neck, r_ankle, l_ankle = body[0], body[1], body[10], body[13]
    assert nose[2] > neck[2] > body[8][2] > r_ankle[2] > 0
    assert body[5][0] > 0 > body[2][0]  # left is +X
    assert l_ankle[0] > 0 > r_ankle[0]
    # the head count of the preset holds: crown to chin is one head unit
    assert height / layout.head_unit == pytest.approx(rig_layout.PROPORTIONS[preset]["heads"])


def test_face_points_are_in_front_and_ordered():
    layout = rig_layout.build_layout()
    face = rig_layout.joint_positions(layout)["face"]
    head_y = 0.0
    assert (face[:, 1] < head_y).all()  # all on the front of the head (character faces -Y)
    assert face[0, 0] < 0 < face[16, 0]  # jaw runs from the character's right to its left
    assert face[8, 2] < face[30, 2] < face[27, 2]  # chin below nose tip below bridge top
    assert face[68, 0] < 0 < face[69, 0]  # right pupil, left pupil


def test_bad_preset_and_height():
    with pytest.raises(ValueError, match="unknown proportion preset"):
        rig_layout.build_layout(1.7, "GIANT")
    with pytest.raises(ValueError, match="outside"):
        rig_layout.build_layout(0.0)


def test_rays_look_through_a_joints_own_flesh_only():
    layout = rig_layout.build_layout()
    through = rig_layout.see_through_bones(layout)
    assert all(not s for s in through["face"])
    assert through["body"][3] >= {"forearm.R", "upper_arm.R"}  # right elbow
    assert "hips" in through["body"][11] and "thigh.R" not in through["body"][11]  # left hip
    assert not through["body"][0]  # the nose is on the surface


def test_proxy_tubes_are_closed_manifolds():
    layout = rig_layout.build_layout()
    verts, faces, groups = proxy_mesh.build(layout.parts)
    edges = {}
    for face in faces:
        for a, b in zip(face, face[1:] + face[:1]):
            key = (min(a, b), max(a, b))
            edges[key] = edges.get(key, 0) + 1
    assert set(edges.values()) == {2}
    assert sum(len(v) for v in groups.values()) == len(verts)
    assert np.isfinite(verts).all()
