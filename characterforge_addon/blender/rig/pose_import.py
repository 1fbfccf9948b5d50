"""Import Pose: a 2D pose (a file, or a picture's detected pose) put onto CharacterForge rigs as
the scene camera sees them, keyed at the current frame, with the fit figure.

The reconstruction is core.pose_solver (numpy); this module reads the rig's evaluated pose,
writes the solved one into pose channels (FK bones, IK targets and poles, so the rig stays
posable the usual way) and measures the fit with the rig's own projection (joints.project_rig).
"""

import dataclasses
import functools
import json
import os

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ...core.rig import pose_fit, pose_formats, pose_solver, rig_layout
from ...core.rig import skeleton as sk
from ...core.errors import UserError
from . import joints, posing, rig as rig_module

SOURCE = "characterforge_pose_source"  # on a rig: the keypoints it was last posed from (JSON)
# Bones the rig's constraints drive (IK chains, copied rotations): their own channels stay at rest
DRIVEN = tuple(f"{b}.{s}" for s in rig_layout.SIDES for b in ("upper_arm", "forearm", "thigh", "shin", "hand", "foot"))
TORSO = ("hips", "spine", "chest", "neck", "head", "shoulder.L", "shoulder.R")


@functools.lru_cache(maxsize=8)
def _skeleton(height, preset):
    return pose_solver.Skeleton(rig_layout.build_layout(height, preset))


def skeleton_for(rig):
    """The solver's skeleton of a CharacterForge rig; other armatures are refused."""
    if not rig.characterforge.is_rig or not rig_module.is_characterforge_rig(rig):
        raise UserError(f"'{rig.name}' is not a CharacterForge rig: Import Pose solves for its bones, IK controls "
                        "and face; add one with Pose > Add OpenPose Rig")
    settings = rig.characterforge
    skeleton = _skeleton(round(settings.height, 6), settings.preset)
    names = {b.name for b in rig.data.bones}
    missing = [n for n in skeleton.names if n not in names]
    if missing:
        raise UserError(f"'{rig.name}' lacks bones {', '.join(missing[:4])} of the CharacterForge rig: "
                        "Import Pose needs the rig as Add OpenPose Rig makes it")
    return skeleton


def read_pose(rig, skeleton):
    """The rig's pose as it evaluates now (constraints included), in the solver's form."""
    n = len(skeleton.names)
    G, c = np.empty((n, 3, 3)), np.empty((n, 3))
    bones = rig.pose.bones
    for i, name in enumerate(skeleton.names):
        pb = bones[name]
        A = np.array(pb.matrix @ pb.bone.matrix_local.inverted())
        G[i], c[i] = A[:3, :3], A[:3, 3]
    return skeleton.pose_of(G, c)


def armature_camera(scene, camera, rig):
    """The scene camera as a projection.CameraModel seeing the rig's armature space."""
    cam = joints.camera_model(scene, camera)
    return dataclasses.replace(cam, world_to_camera=cam.world_to_camera @ np.array(rig.matrix_world))


def _rotation_channel(pb):
    return {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(pb.rotation_mode,
                                                                                           "rotation_euler")


def _write(pb, R, L):
    """Set a pose bone's channels from an armature-axes rotation R and offset L, continuous with
    what it held (no quaternion sign or Euler wrap jumps between keyed frames)."""
    rest = pb.bone.matrix_local.to_3x3()
    inverse = rest.inverted()
    q = (inverse @ Matrix(np.asarray(R).tolist()) @ rest).to_quaternion()
    if pb.rotation_mode == "QUATERNION":
        if q.dot(pb.rotation_quaternion) < 0:
            q.negate()
        pb.rotation_quaternion = q
    elif pb.rotation_mode == "AXIS_ANGLE":
        axis, angle = q.to_axis_angle()
        pb.rotation_axis_angle = (angle, *axis)
    else:
        pb.rotation_euler = q.to_euler(pb.rotation_mode, pb.rotation_euler)
    pb.location = inverse @ Vector(np.asarray(L, dtype=float).tolist()) if L is not None else (0.0, 0.0, 0.0)
    pb.scale = (1.0, 1.0, 1.0)


def _kept_ends(rig):
    """Each hand's and foot's turn relative to its forearm or shin, as Blender shows it now."""
    bones = rig.pose.bones
    return {end: bones[parent].matrix.inverted() @ bones[end].matrix
            for s in rig_layout.SIDES for end, parent in ((f"hand.{s}", f"forearm.{s}"), (f"foot.{s}", f"shin.{s}"))}


def apply_solution(context, rig, skeleton, solution, prior, keyframe, kept_ends=None):
    """Write `solution` into the rig's channels; key them at the current frame if asked.
    `kept_ends`: _kept_ends before the import, for hands and feet the picture does not turn.
    Returns the names of the bones written."""
    pose = solution.pose
    written = ["root", *TORSO]
    fingers = [p for p in solution.placed if p.split(".")[0] in sk.FINGERS]  # "index.L": placed from the picture
    written += [f"{p.split('.')[0]}_{k:02d}.{p.split('.')[1]}" for p in fingers for k in (1, 2, 3)]
    if "face" in solution.placed:
        written += [n for n in skeleton.names if n.startswith("face.") and pose[n][1] is not None]
    controls = pose_solver.ik_controls(skeleton, pose, prior)
    bones = rig.pose.bones
    for name in written:
        R, L = pose[name]
        _write(bones[name], R, L)
    for name, (R, L) in controls.items():
        _write(bones[name], R, L)
    for name in DRIVEN:
        _write(bones[name], np.eye(3), None)
    written += list(controls) + list(DRIVEN)
    context.view_layer.update()
    if kept_ends:
        # IK twists the forearm and shin its own way: a hand or foot the picture does not turn
        # keeps its turn to them as Blender shows it (its control's rotation is what it copies)
        for end, relative in kept_ends.items():
            if end in solution.placed:
                continue
            control = bones[end.replace("hand.", "hand_ik.").replace("foot.", "foot_ik.")]
            parent = bones[end.replace("hand.", "forearm.").replace("foot.", "shin.")]
            control.matrix = Matrix.LocRotScale(control.matrix.translation, (parent.matrix @ relative).to_quaternion(),
                                                None)
            context.view_layer.update()
    if keyframe:
        frame = context.scene.frame_current
        for name in written:
            pb = bones[name]
            for path in ("location", _rotation_channel(pb), "scale"):
                pb.keyframe_insert(path, frame=frame, group=name)
    return written


def pose_person(context, rig, person, canvas, flips=frozenset(), keyframe=True, use_face=True, source=""):
    """Put one ImportedPerson (in its picture's pixels; `canvas` the picture's size) onto `rig`
    through the scene camera. Returns the report: fit figure, lines for the panel."""
    scene = context.scene
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    skeleton = skeleton_for(rig)
    camera = joints.find_camera(scene)
    context.view_layer.update()
    cam = armature_camera(scene, camera, rig)
    frame = pose_formats.PoseFrame(canvas[0], canvas[1], [person])
    placed, scale, _ = pose_formats.fit_to_render(frame, person, cam.resolution)
    prior = read_pose(rig, skeleton)
    kept_ends = _kept_ends(rig)
    solution = pose_solver.solve(skeleton, cam, placed, prior, frozenset(flips), use_face)
    apply_solution(context, rig, skeleton, solution, prior, keyframe, kept_ends)
    projected, _ = joints.project_rig(scene, context.evaluated_depsgraph_get(), camera,
                                      joints.camera_model(scene, camera), rig)
    fit = pose_fit.fit_figure(placed, projected, scale)
    report = {"rig": rig.name, "fit": fit, "line": pose_fit.describe(fit), "left": pose_fit.left_lines(solution),
              "choices": solution.choices, "frame": scene.frame_current}
    rig[SOURCE] = json.dumps({"source": source, "canvas": list(canvas), "person": _person_json(person),
                              "flips": sorted(flips)})
    state = rig.characterforge.pose_import
    state.fit, state.left = report["line"], " | ".join(report["left"])
    state.source = source
    state.choices = json.dumps(solution.choices)
    return report


def _person_json(person):
    return {"name": person.name, "given": list(person.given),
            **{part: np.round(points, 3).tolist() for part, points in person.parts().items()}}


def _person_from_json(data):
    person = pose_formats.ImportedPerson(data.get("name", ""), given=tuple(data.get("given", ())))
    for part in person.parts():
        if part in data:
            setattr(person, part, np.asarray(data[part], dtype=np.float64))
    return person


def repose(context, rig, flips, keyframe=True, use_face=True):
    """Pose `rig` again from the keypoints it was last posed from, with other flips."""
    if SOURCE not in rig:
        raise UserError(f"'{rig.name}' has no imported pose to redo: import a pose first (Pose > Import Pose)")
    data = json.loads(rig[SOURCE])
    return pose_person(context, rig, _person_from_json(data["person"]), tuple(data["canvas"]), flips, keyframe,
                       use_face, data.get("source", ""))


# ---------------------------------------------------------------------------------------------
# Files, people, frames

def _selected_rigs(context, active):
    rigs = [active] + [o for o in context.selected_objects
                       if o is not active and o.type == "ARMATURE" and o.characterforge.is_rig]
    return rigs


def _assign(context, frame, rig, mode, person_number):
    """[(person, rig)] for one frame: one person (by size, 1 the largest) onto the active rig,
    or every person onto a rig of their own (a rig of the person's name, the selected rigs in
    order, else a new rig of the active one's proportions)."""
    order = pose_formats.people_by_size(frame)
    if mode == "ONE":
        if not 1 <= person_number <= len(order):
            raise UserError(f"the pose has {len(order)} {'person' if len(order) == 1 else 'people'}: Person "
                            f"{person_number} does not exist; choose 1 to {len(order)} (1 is the largest)")
        return [(frame.people[order[person_number - 1]], rig)]
    free = _selected_rigs(context, rig)
    pairs, waiting = [], []
    for person in frame.people:
        named = bpy.data.objects.get(person.name) if person.name else None
        if named is not None and named in free:
            pairs.append((person, named))
            free.remove(named)
        else:
            waiting.append(person)
    for person in waiting:
        target = free.pop(0) if free else _new_rig(context, rig, person.name)
        pairs.append((person, target))
    return pairs


def _new_rig(context, like, name):
    settings = like.characterforge
    made = rig_module.add_rig(context, name or f"{like.name} person", settings.height, settings.preset,
                              like.location.copy())
    posing.apply_library_pose(context, made, "A_POSE")
    return made


def import_files(context, paths, rig, mode="ONE", person_number=1, keyframe=True, use_face=True,
                 min_confidence=pose_formats.MIN_CONFIDENCE, progress=None):
    """Import pose files onto `rig` (and, in mode EACH, more rigs): one file, or several (a
    sequence: frame after frame from the current one), each possibly holding several frames
    itself (ComfyUI's POSE_KEYPOINT lists, MMPose videos). Returns the reports."""
    scene = context.scene
    skeleton_for(rig)
    camera_model = joints.camera_model(scene, joints.find_camera(scene))
    frames = []
    for path in paths:
        document = pose_formats.read_pose_file(path, camera_model.resolution, min_confidence)
        frames += [(path, k, len(document.frames), f) for k, f in enumerate(document.frames)]
    start = scene.frame_current
    reports = []
    for n, (path, k, count, frame) in enumerate(frames):
        if len(frames) > 1:
            scene.frame_set(start + n)
        source = os.path.basename(path) + (f" frame {k + 1} of {count}" if count > 1 else "")
        for person, target in _assign(context, frame, rig, mode, person_number):
            report = pose_person(context, target, person, (frame.width, frame.height), _flips(target), keyframe,
                                 use_face, source)
            report["source"] = source
            reports.append(report)
            if progress:
                progress(report)
    settings = scene.characterforge.pose_import
    settings.last_file = paths[-1] if len(paths) == 1 and len(frames) == 1 else ""
    settings.last_people = _people_summary(frames[-1][3]) if len(frames) == 1 else ""
    return reports


def _people_summary(frame):
    """Each person in size order, for the panel's person buttons: 'n points, where'."""
    out = []
    for rank, i in enumerate(pose_formats.people_by_size(frame), start=1):
        person = frame.people[i]
        points = person.body[person.body[:, 2] > 0, 0]
        x = float(points.mean()) / frame.width if len(points) else 0.5
        where = "left" if x < 0.36 else "right" if x > 0.64 else "middle"
        label = person.name or f"Person {rank}"
        out.append(f"{label} ({where}, {person.count()} points)")
    return "|".join(out)


def _flips(rig):
    state = rig.characterforge.pose_import
    return frozenset(key for bit, key in enumerate(pose_solver.FLIPS) if state.flips & (1 << bit))


def toggle_flip(context, rig, key, keyframe=True, use_face=True):
    state = rig.characterforge.pose_import
    state.flips ^= 1 << pose_solver.FLIPS.index(key)
    return repose(context, rig, _flips(rig), keyframe, use_face)
