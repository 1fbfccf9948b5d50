"""Control maps rendered in real headless Blender."""

import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from characterforge_addon.core.rig import keypoints
from characterforge_addon.core.errors import UserError


def png(folder, name):
    return np.asarray(Image.open(os.path.join(folder, name)))


def add_rig(bpy, name="Character", pose="A_POSE", location=(0, 0, 0), preset="ADULT", height=1.75):
    from characterforge_addon.blender.rig import posing, rig
    obj = rig.add_rig(bpy.context, name, height, preset, location)
    posing.apply_library_pose(bpy.context, obj, pose)
    return obj


def render(bpy, out, **kw):
    from characterforge_addon.blender.maps import controls
    return controls.render_controls(bpy.context, str(out), **kw)


@pytest.mark.smoke
def test_full_set_for_one_rig(bpy, scene, tmp_path):
    add_rig(bpy)
    manifest = render(bpy, tmp_path, normals=True)
    assert set(manifest["files"]) == {"openpose.png", "openpose.json", "depth.png", "hand_depth.png",
                                      "normal.png", "mask_Character.png"}
    assert json.load(open(tmp_path / "controls.json"))["files"] == manifest["files"]
    pose = png(tmp_path, "openpose.png")
    depth = png(tmp_path, "depth.png")
    hands = png(tmp_path, "hand_depth.png")
    mask = png(tmp_path, "mask_Character.png")
    normal = png(tmp_path, "normal.png")
    assert pose.shape == (256, 256, 3) and depth.shape == (256, 256) and normal.shape == (256, 256, 3)
    doc = json.load(open(tmp_path / "openpose.json"))
    assert doc["canvas_width"] == 256 and len(doc["people"]) == 1
    body = np.array(doc["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    assert (body[:, 2] > 0).all()  # the whole body is in frame
    # every visible joint lies on the character's silhouette (ears and eyes sit on its very
    # edge: allow 2 px), and the skeleton was drawn there
    for x, y, c in body:
        if c == 1:
            x, y = int(x), int(y)
            assert mask[y - 2:y + 3, x - 2:x + 3].max() == 255 and depth[y - 2:y + 3, x - 2:x + 3].max() > 0
            assert pose[y, x].any()
    # background black; near bright, far dark: the feet (nearer the camera below) are not darker than the head
    assert depth[0, 0] == 0 and mask[0, 0] == 0 and not normal[0, 0].any()
    # hand depth only where the hands are, inside the character
    assert hands.any() and not (hands[mask == 0]).any()
    assert (hands > 0).sum() < 0.15 * (mask > 0).sum()
    # previews as Blender images
    assert "CF openpose" in bpy.data.images and "CF depth" in bpy.data.images


def test_normals_only_on_request_and_facing_the_camera(bpy, scene, tmp_path):
    add_rig(bpy)
    assert "normal.png" not in render(bpy, tmp_path / "plain")["files"]
    render(bpy, tmp_path / "n", normals=True)
    normal = png(tmp_path / "n", "normal.png").astype(int)
    mask = png(tmp_path / "n", "mask_Character.png") > 0
    assert (normal[mask][:, 2] > 128).mean() > 0.95  # the body's surface faces the camera (+z)


def test_side_view_flags_the_far_arm(bpy, scene, tmp_path):
    add_rig(bpy, pose="TURN_SIDE")
    render(bpy, tmp_path / "keep")
    doc = json.load(open(tmp_path / "keep" / "openpose.json"))
    body = np.array(doc["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    face = np.array(doc["people"][0]["face_keypoints_2d"]).reshape(70, 3)
    # Turned +90° the character faces +X: its right side faces the camera, the left is hidden
    assert body[1 + 1, 2] == 1 and body[3, 2] == 1  # right shoulder/elbow seen
    assert body[6, 2] == keypoints.OCCLUDED_CONFIDENCE or body[7, 2] == keypoints.OCCLUDED_CONFIDENCE
    assert face[69, 2] == keypoints.OCCLUDED_CONFIDENCE  # left pupil behind the head
    render(bpy, tmp_path / "drop", drop_occluded=True)
    dropped = np.array(json.load(open(tmp_path / "drop" / "openpose.json"))["people"][0]["face_keypoints_2d"]).reshape(70, 3)
    assert dropped[69, 2] == 0 and (dropped[:, 2] != keypoints.OCCLUDED_CONFIDENCE).all()
    a, b = png(tmp_path / "keep", "openpose.png"), png(tmp_path / "drop", "openpose.png")
    assert (a != b).any() and b.sum() < a.sum()


def test_joints_out_of_frame_are_missing(bpy, scene, tmp_path):
    add_rig(bpy)
    scene.camera.location = (0.0, -2.0, 1.6)  # close-up: the feet leave the frame
    render(bpy, tmp_path)
    body = np.array(json.load(open(tmp_path / "openpose.json"))["people"][0]["pose_keypoints_2d"]).reshape(18, 3)
    assert (body[[10, 13], 2] == 0).all() and (body[[0, 1], 2] > 0).all()


def test_two_rigs_give_two_people_and_disjoint_masks(bpy, scene, tmp_path):
    add_rig(bpy, "Left", location=(-0.9, 0, 0))
    add_rig(bpy, "Right", location=(0.9, 1.0, 0), preset="CHILD", height=1.2)
    scene.camera.location = (0, -7, 0.9)
    manifest = render(bpy, tmp_path)
    doc = json.load(open(tmp_path / "openpose.json"))
    assert sorted(p["name"] for p in doc["people"]) == ["Left", "Right"]
    left, right = png(tmp_path, "mask_Left.png") > 0, png(tmp_path, "mask_Right.png") > 0
    assert left.any() and right.any() and not (left & right).any()
    cols = np.nonzero(left)[1].mean(), np.nonzero(right)[1].mean()
    assert cols[0] < 128 < cols[1]  # each mask lies where its rig is
    assert manifest["masks"] == {"Left": "mask_Left.png", "Right": "mask_Right.png"}


def test_user_render_settings_are_untouched(bpy, scene, tmp_path):
    add_rig(bpy)
    bpy.ops.mesh.primitive_cube_add(location=(3, 3, 0))
    bpy.context.object.pass_index = 1002  # the user's own index, even one we use
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.render.filepath = "//mine/"
    user_objects = [o for o in scene.objects if not str(o.get("characterforge_role", "")).startswith("proxy_")]
    before = {o.name: (o.pass_index, o.hide_render) for o in user_objects}
    scenes, groups = len(bpy.data.scenes), len(bpy.data.node_groups)
    render(bpy, tmp_path)
    assert scene.render.engine == "BLENDER_WORKBENCH" and scene.render.filepath == "//mine/"
    assert {o.name: (o.pass_index, o.hide_render) for o in user_objects} == before
    assert len(bpy.data.scenes) == scenes and len(bpy.data.node_groups) == groups


def test_result_planes_stay_out_of_the_maps(bpy, scene, tmp_path):
    add_rig(bpy)
    render(bpy, tmp_path / "a")
    bpy.ops.mesh.primitive_plane_add(size=3, location=(0, -3, 0.9), rotation=(math.radians(90), 0, 0))
    bpy.context.object["characterforge_role"] = "result_plane"
    render(bpy, tmp_path / "b")
    for name in ("depth.png", "openpose.png", "mask_Character.png"):
        assert np.array_equal(png(tmp_path / "a", name), png(tmp_path / "b", name)), name


@pytest.mark.smoke
def test_bad_input_gives_clear_errors_and_no_output(bpy, scene, tmp_path):
    with pytest.raises(UserError, match="no OpenPose rig.*Add rig"):
        render(bpy, tmp_path / "norig")
    add_rig(bpy)
    cam = scene.camera
    scene.camera = None
    with pytest.raises(UserError, match="no active camera"):
        render(bpy, tmp_path / "nocam")
    scene.camera = cam
    scene.render.resolution_x = 20000
    with pytest.raises(UserError, match="over 8192"):
        render(bpy, tmp_path / "huge")
    scene.render.resolution_x, scene.render.resolution_percentage = 50, 1  # rounds to 0 pixels wide
    with pytest.raises(UserError, match="is empty"):
        render(bpy, tmp_path / "zero")
    scene.render.resolution_x, scene.render.resolution_percentage = 256, 100
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    with pytest.raises(UserError, match="cannot be written"):
        render(bpy, blocker / "out")
    bpy.ops.mesh.primitive_cube_add(size=4, location=cam.location)
    bpy.context.object.name = "Wardrobe"
    with pytest.raises(UserError, match="inside 'Wardrobe'"):
        render(bpy, tmp_path / "inside")
    assert not any((tmp_path / d).exists() and os.listdir(tmp_path / d) for d in ("norig", "nocam", "huge", "zero", "inside"))


def test_operator_reports_errors(bpy, scene, tmp_path):
    scene.characterforge.output_dir = str(tmp_path)
    with pytest.raises(RuntimeError, match="no OpenPose rig"):
        bpy.ops.characterforge.render_controls()
    add_rig(bpy)
    assert bpy.ops.characterforge.render_controls() == {"FINISHED"}
    assert (tmp_path / "controls.json").exists()
