"""The 2D -> 3D solver without Blender: random valid poses of the rig (its own forward
kinematics) seen through a camera, solved back from their 2D points alone, and re-projected."""

import math

import numpy as np
import pytest

from characterforge_addon.core.rig import pose_fit, pose_formats, pose_solver, projection, rig_layout
from characterforge_addon.core.errors import UserError

HEIGHTS = {"ADULT": 1.75, "CHILD": 1.2, "CHIBI": 1.0}


def rot(axis, degrees):
    v = np.zeros(3)
    v["xyz".index(axis)] = math.radians(degrees)
    return pose_solver.rotation(v)


def camera(location, rotation_deg, resolution=(512, 512), lens=35, ortho=False):
    rx, ry, rz = (rot(a, d) for a, d in zip("xyz", rotation_deg))
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rz @ ry @ rx, location  # Blender's XYZ Euler
    return projection.CameraModel(world_to_camera=np.linalg.inv(m), resolution=resolution, lens=lens, ortho=ortho,
                                  ortho_scale=2.6)


FRONT = camera((0.0, -5.0, 1.0), (90, 0, 0))
ABOVE = camera((0.0, -3.2, 4.2), (40, 0, 0))


def random_pose(rng):
    """A pose within the joints' ranges (the solver's limits are wider than these)."""
    u = rng.uniform
    pose = {"hips": (rot("z", u(-60, 60)) @ rot("x", u(-10, 10)) @ rot("y", u(-8, 8)),
                     np.array([u(-0.2, 0.2), u(-0.2, 0.2), u(-0.1, 0.0)]))}
    for bone, m in (("spine", 12), ("chest", 12), ("neck", 15), ("head", 25), ("shoulder.L", 8), ("shoulder.R", 8)):
        pose[bone] = (rot("x", u(-m, m)) @ rot("y", u(-m, m)) @ rot("z", u(-m, m)), None)
    for side, s in (("L", 1), ("R", -1)):
        pose[f"upper_arm.{side}"] = (rot("z", s * u(-40, 70)) @ rot("y", s * u(-30, 80)) @ rot("x", u(-30, 30)), None)
        pose[f"forearm.{side}"] = (rot("z", -s * u(0, 120)), None)
        pose[f"hand.{side}"] = (rot("x", u(-40, 40)) @ rot("y", u(-40, 40)) @ rot("z", u(-20, 20)), None)
        pose[f"thigh.{side}"] = (rot("x", u(-70, 12)) @ rot("y", s * u(-5, 20)) @ rot("z", u(-15, 15)), None)
        pose[f"shin.{side}"] = (rot("x", u(0, 100)), None)
        pose[f"foot.{side}"] = (rot("x", u(-20, 20)), None)
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            for k in (1, 2, 3):
                spread = rot("z", u(-10, 10)) if k == 1 else np.eye(3)
                pose[f"{finger}_{k:02d}.{side}"] = (spread @ rot("y", s * u(0, 60)), None)
    return pose


def a_pose():
    return {f"upper_arm.{side}": (rot("y", s * 45), None) for side, s in (("L", 1), ("R", -1))}


def seen(skeleton, cam, pose, parts=("body", "left_hand", "right_hand", "face")):
    """The pose's projected points as an imported person (in frame only, confidence 1)."""
    joints = skeleton.joint_positions(*skeleton.transforms(pose))
    person = pose_formats.ImportedPerson(given=tuple(parts))
    for part in parts:
        xy, depth = projection.project(cam, joints[part])
        inside = projection.in_frame(xy, depth, cam.resolution)
        points = np.zeros((len(xy), 3))
        points[inside, :2], points[inside, 2] = xy[inside], 1.0
        setattr(person, part, points)
    return person


@pytest.fixture(scope="module")
def skeletons():
    return {preset: pose_solver.Skeleton(rig_layout.build_layout(h, preset)) for preset, h in HEIGHTS.items()}


@pytest.mark.parametrize("preset, cam, seed", [("ADULT", FRONT, 1), ("ADULT", FRONT, 2), ("ADULT", ABOVE, 3),
                                               ("CHILD", FRONT, 4), ("CHIBI", ABOVE, 5),
                                               ("ADULT", camera((0.0, -5.0, 1.0), (90, 0, 0), ortho=True), 6)])
def test_random_valid_poses_round_trip(skeletons, preset, cam, seed):
    skeleton = skeletons[preset]
    target = seen(skeleton, cam, random_pose(np.random.default_rng(seed)))
    solution = pose_solver.solve(skeleton, cam, target, a_pose())
    fit = pose_fit.fit_figure(target, seen(skeleton, cam, solution.pose))
    assert fit["body"]["pck"] >= 0.95 and fit["body"]["mean_px"] < 2.0, fit
    assert fit["hands"]["pck"] >= 0.9 and fit["face"]["pck"] >= 0.95, fit
    assert not solution.unplaced and not solution.kept


def test_a_flip_turns_one_limb_over_and_both_fit_the_picture(skeletons):
    skeleton = skeletons["ADULT"]
    truth = a_pose()
    truth["upper_arm.L"] = (rot("z", -50) @ rot("y", 40), None)  # forward and down: its depth is ambiguous
    truth["forearm.L"] = (rot("z", -60), None)
    target = seen(skeleton, FRONT, truth, ("body",))
    auto = pose_solver.solve(skeleton, FRONT, target, a_pose())
    flipped = pose_solver.solve(skeleton, FRONT, target, a_pose(), flips={"upper_arm.L"})
    assert auto.choices["upper_arm.L"] != flipped.choices["upper_arm.L"]
    elbow = pose_solver.B["left_elbow"]
    j_auto = skeleton.joint_positions(*skeleton.transforms(auto.pose))["body"]
    j_flip = skeleton.joint_positions(*skeleton.transforms(flipped.pose))["body"]
    assert np.linalg.norm(j_auto[elbow] - j_flip[elbow]) > 0.3 * skeleton.hu  # the elbow moved in depth
    for solution in (auto, flipped):
        fit = pose_fit.fit_figure(target, seen(skeleton, FRONT, solution.pose, ("body",)))
        assert fit["body"]["pck"] == 1.0, fit


def test_a_body_only_pose_keeps_hands_fingers_and_face(skeletons):
    skeleton = skeletons["ADULT"]
    prior = random_pose(np.random.default_rng(9))
    prior["face.outer_lip_03"] = (np.eye(3), np.array([0.0, 0.0, -0.01]))
    target = seen(skeleton, FRONT, random_pose(np.random.default_rng(10)), ("body",))
    solution = pose_solver.solve(skeleton, FRONT, target, prior)
    for bone in ("index_02.L", "thumb_01.R", "hand.L", "hand.R", "face.outer_lip_03"):
        assert np.allclose(solution.pose[bone][0], prior[bone][0]), bone  # relative to its parent: as it was
    assert np.allclose(solution.pose["face.outer_lip_03"][1], prior["face.outer_lip_03"][1])
    assert set(solution.kept) == {"left hand and fingers", "right hand and fingers", "face (expression)"}


def test_missing_points_leave_their_limbs_as_they_were_and_are_named(skeletons):
    skeleton = skeletons["ADULT"]
    target = seen(skeleton, FRONT, random_pose(np.random.default_rng(11)), ("body",))
    for joint in ("left_elbow", "left_wrist", "right_ankle"):
        target.body[pose_solver.B[joint]] = 0.0
    prior = a_pose()
    solution = pose_solver.solve(skeleton, FRONT, target, prior)
    named = dict(solution.unplaced)
    assert named["left upper arm"] == "no left elbow" and named["left forearm"] == "no left wrist"
    assert named["right lower leg"] == "no right ankle"
    assert math.degrees(pose_solver.angle_of(solution.pose["forearm.L"][0])) < 1.0  # kept as it was: straight
    line = pose_fit.left_lines(solution)[0]
    assert line.startswith("not placed: left upper arm (no left elbow)")


def test_too_few_points_are_refused(skeletons):
    target = pose_formats.ImportedPerson()
    target.body[pose_solver.B["left_knee"]] = (200, 300, 1.0)
    target.body[pose_solver.B["left_ankle"]] = (210, 400, 1.0)
    with pytest.raises(UserError, match="too few points on the body"):
        pose_solver.solve(skeletons["ADULT"], FRONT, target, a_pose())


def test_the_face_points_shape_the_expression(skeletons):
    skeleton = skeletons["ADULT"]
    truth = a_pose()
    for i in range(6, 11):  # the jaw's lower points dropped: an open mouth
        truth[f"face.jaw_{i:02d}"] = (np.eye(3), np.array([0.0, 0.0, -0.04]))
    target = seen(skeleton, FRONT, truth)
    solution = pose_solver.solve(skeleton, FRONT, target, a_pose())
    assert solution.pose["face.jaw_08"][1][2] < -0.02
    fit = pose_fit.fit_figure(target, seen(skeleton, FRONT, solution.pose))
    assert fit["face"]["pck"] == 1.0 and fit["face"]["mean_px"] < 0.5, fit


def test_ik_controls_reach_the_solved_joints(skeletons):
    skeleton = skeletons["CHILD"]
    pose = random_pose(np.random.default_rng(12))
    controls = pose_solver.ik_controls(skeleton, pose)
    G, c = skeleton.transforms(pose)
    ix = skeleton.index
    for side in ("L", "R"):
        wrist = G[ix[f"hand.{side}"]] @ skeleton.head[ix[f"hand.{side}"]] + c[ix[f"hand.{side}"]]
        R, L = controls[f"hand_ik.{side}"]
        assert np.allclose(skeleton.head[ix[f"hand_ik.{side}"]] + L, wrist)
        assert np.allclose(R, G[ix[f"hand.{side}"]])  # the hand copies its control's rotation
        shoulder, elbow = (G[ix[b]] @ skeleton.head[ix[b]] + c[ix[b]] for b in (f"upper_arm.{side}", f"forearm.{side}"))
        pole = skeleton.head[ix[f"elbow_pole.{side}"]] + controls[f"elbow_pole.{side}"][1]
        normal = np.cross(wrist - shoulder, elbow - shoulder)
        assert abs(np.dot(pole - shoulder, normal / np.linalg.norm(normal))) < 1e-6  # in the arm's plane
        assert np.dot(pole - elbow, elbow - (shoulder + wrist) / 2) > 0  # on the side the elbow bends to


def test_rotation_helpers_and_reading_a_pose_back(skeletons):
    rng = np.random.default_rng(0)
    for _ in range(20):
        w = rng.normal(size=3) * rng.uniform(0, 3)
        assert np.allclose(pose_solver.rotation_vector(pose_solver.rotation(w)), w) or np.linalg.norm(w) > math.pi
    R = pose_solver.rotation([0, 0, math.pi])
    assert np.allclose(pose_solver.rotation(pose_solver.rotation_vector(R)), R)
    a, b = np.array([1.0, 0, 0]), np.array([0, 0.6, 0.8])
    assert np.allclose(pose_solver.swing(a, b) @ a, b) and np.allclose(pose_solver.swing(a, -a) @ a, -a)
    skeleton = skeletons["CHIBI"]
    pose = random_pose(rng)
    back = skeleton.pose_of(*skeleton.transforms(pose))
    G1, c1 = skeleton.transforms(pose)
    G2, c2 = skeleton.transforms(back)
    assert np.allclose(G1, G2) and np.allclose(c1, c2)
