"""Render a character sheet's control maps from a rig: every view is an orthographic camera
orbiting the character, rendered into its cell of one OpenPose (and depth) sheet.

The views are seen in a throw-away scene holding only this character (its rig and meshes,
linked, not copied), so other characters and the set never enter the sheet and the user's
scene is untouched. Each view's box comes from its projected keypoints and its rendered
silhouette, never from guesses.
"""

import json
import os

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ...core.characters import sheet_layout
from ...core.errors import UserError
from ...core.image_io import check_writable_folder, encode_png, write_atomic
from ...core.maps import control_maps, openpose_draw
from ...core.rig import keypoints, rig_mapping
from ..maps.passes import INDEX_BASE, render_passes
from ..rig.joints import camera_model, mapping_for, project_rig
from ..rig.posing import apply_library_pose, pose_channels
from ..rig.rig import character_meshes, is_characterforge_rig

MIN_FACE_POINTS = 5
HEAD_JOINTS = [0, 14, 15, 16, 17]  # nose, eyes, ears: what a detector finds only on a visible face


def _world_joints(rig, part):
    _, mapping = mapping_for(rig)
    out = []
    for key in rig_mapping.joint_keys(part):
        if key in mapping:
            bone, end = mapping[key]
            pb = rig.pose.bones[bone]
            out.append(np.array(rig.matrix_world @ (pb.head if end == "head" else pb.tail)))
    return np.array(out).reshape(-1, 3)


def character_points(depsgraph, rig, meshes):
    """World points spanning the character: its posed meshes' vertices, and its rig's joints
    (`rig` None: a mesh alone)."""
    points = [_world_joints(rig, p) for p in ("body", "left_hand", "right_hand", "face")] if rig is not None else []
    for obj in meshes:
        evaluated = obj.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        try:
            co = np.empty(len(mesh.vertices) * 3)
            mesh.vertices.foreach_get("co", co)
            co = co.reshape(-1, 3)
            m = np.array(evaluated.matrix_world)
            points.append(co @ m[:3, :3].T + m[:3, 3])
        finally:
            evaluated.to_mesh_clear()
    return np.concatenate(points)


def character_axes(obj):
    """(up, front) unit vectors of the character (its rig, or a mesh alone) in world space: its
    local +Z and -Y."""
    basis = obj.matrix_world.to_3x3().normalized()
    return np.array(basis @ Vector((0, 0, 1))), np.array(basis @ Vector((0, -1, 0)))


def render_sheet(context, rig, out_dir, layout, depth=True, pose="relaxed"):
    """Write openpose.png, depth.png (when `depth`), openpose.json and sheet.json for `rig`
    laid out as `layout` (a core.sheet_layout.SheetLayout), the character standing in `pose`
    (a key of SHEET_POSES); returns the sheet record."""
    if rig is None or rig.type != "ARMATURE":
        raise UserError("pick an OpenPose rig (an armature) for the sheet")
    if pose not in sheet_layout.SHEET_POSES:
        raise UserError(f"unknown sheet pose {pose!r}: use one of {', '.join(sheet_layout.SHEET_POSES)}")
    out_dir = bpy.path.abspath(out_dir)
    try:
        check_writable_folder(out_dir)
    except OSError as exc:
        raise UserError(str(exc)) from None
    context.view_layer.update()
    body_meshes, hand_meshes = character_meshes(rig)
    stage = bpy.data.scenes.new(".characterforge_sheet")
    camera = bpy.data.objects.new(".characterforge_sheet_camera", bpy.data.cameras.new(".characterforge_sheet_camera"))
    copies = []
    try:
        # the sheet poses a copy of the character (object copies share the armature and mesh data)
        actor, copies = copy_character(rig, body_meshes + hand_meshes)
        for obj in [*copies, camera]:
            stage.collection.objects.link(obj)
        body_copies, hand_copies = copies[1:1 + len(body_meshes)], copies[1 + len(body_meshes):]
        stage.camera = camera
        stage.render.resolution_percentage = 100
        stage.render.pixel_aspect_x = stage.render.pixel_aspect_y = 1.0
        stage.view_settings.view_transform = "Standard"
        camera.data.type = "ORTHO"
        camera.data.sensor_fit = "AUTO"
        posed = _pose_copy(context, actor, pose)
        stage.view_layers[0].update()  # builds and evaluates the stage's own depsgraph
        depsgraph = stage.view_layers[0].depsgraph
        record = _render_views(stage, depsgraph, camera, actor, rig.name, body_copies, hand_copies, out_dir, layout,
                               depth, posed)
        return record
    finally:
        bpy.data.scenes.remove(stage)
        cam_data = camera.data
        bpy.data.objects.remove(camera)
        bpy.data.cameras.remove(cam_data)
        for obj in reversed(copies):
            bpy.data.objects.remove(obj)


def copy_character(rig, meshes):
    """(the rig's copy, [that copy, its meshes' copies]): constraints, parents and armature
    modifiers that pointed at the rig point at the copy."""
    actor = rig.copy()
    actor.animation_data_clear()  # the sheet's pose, not the action's
    for pb in actor.pose.bones:
        for con in pb.constraints:
            for attr in ("target", "pole_target"):
                if getattr(con, attr, None) == rig:
                    setattr(con, attr, actor)
    copies = [actor]
    for obj in meshes:
        dup = obj.copy()
        if dup.parent == rig:
            dup.parent = actor
        for mod in dup.modifiers:
            if mod.type == "ARMATURE" and mod.object == rig:
                mod.object = actor
        copies.append(dup)
    return actor, copies


def _pose_copy(context, actor, pose):
    """Pose the copy; returns the pose the sheet shows (an own rig keeps its current pose: the
    built-in poses need CharacterForge's IK controls)."""
    library = sheet_layout.SHEET_POSES[pose]
    if library is None:
        return "current"
    if not is_characterforge_rig(actor):
        return "current (built-in poses need a CharacterForge rig)"
    apply_library_pose(context, actor, library)
    return pose


def _render_views(stage, depsgraph, camera, rig, name, body_meshes, hand_meshes, out_dir, layout, depth, pose):
    up, front = character_axes(rig)
    every = character_points(depsgraph, rig, body_meshes + hand_meshes)
    face_world = face_points(rig) if any(v.kind != "body" for v in layout.views) else None
    cameras, limited_by = sheet_layout.frame_views(every, up, front, layout.views, face_world)

    index_of = {o: INDEX_BASE + 1 for o in body_meshes} | {o: INDEX_BASE + 2 for o in hand_meshes}
    sheet = openpose_draw.blank_canvas(layout.width, layout.height)
    depth_sheet = np.zeros((layout.height, layout.width), dtype=np.uint8)
    people, views = [], []
    for view in layout.views:
        w, h = view.size
        stage.render.resolution_x, stage.render.resolution_y = w, h
        place_camera(camera, cameras[view.name])
        stage.view_layers[0].update()
        person = _as_detected(project_rig(stage, depsgraph, camera, camera_model(stage, camera), rig)[0])
        person.name = name
        x0, y0 = view.cell[:2]
        sheet[y0:y0 + h, x0:x0 + w] = openpose_draw.draw_people(w, h, [person])
        mask = None
        if depth:
            d, index = render_passes(stage, camera, index_of)
            ids = np.rint(index).astype(np.int32)
            mask = (ids == INDEX_BASE + 1) | (ids == INDEX_BASE + 2)
            depth_sheet[y0:y0 + h, x0:x0 + w] = control_maps.depth_image(d, mask)
        shifted = keypoints.Person(f"{name} {view.name}")
        for part, points in person.parts().items():
            moved = points.copy()
            moved[moved[:, 2] > 0, :2] += (x0, y0)
            setattr(shifted, part, moved)
        people.append(shifted)
        seen = np.concatenate([p[p[:, 2] > 0, :2] for p in shifted.parts().values()])
        box = sheet_layout.view_box(view.cell, seen, mask)
        face = shifted.face[shifted.face[:, 2] > 0, :2]
        views.append({"name": view.name, "kind": view.kind, "yaw": view.yaw, "cell": list(view.cell),
                      "box": list(box) if box else None,
                      "face_box": _list(sheet_layout.face_box(view.cell, face)),
                      "keypoints": int(len(seen)), "camera": cameras[view.name].record()})
    files = {"openpose.png": encode_png(sheet),
             "openpose.json": keypoints.to_openpose_json(layout.width, layout.height, people).encode("utf-8")}
    if depth:
        files["depth.png"] = encode_png(depth_sheet)
    fill, advice = sheet_layout.fill_report(views, limited_by, pose)
    record = {"character": name, "size": [layout.width, layout.height], "pose": pose, "fill": fill,
              "advice": advice, "views": views, "files": sorted(files),
              # where the character stood and how it was posed: the views' cameras follow it (model painting)
              "rig_matrix": [round(float(v), 7) for v in np.asarray(rig.matrix_world).ravel()],
              "pose_channels": pose_channels(rig)}
    for name, data in files.items():
        write_atomic(os.path.join(out_dir, name), data)
    write_atomic(os.path.join(out_dir, "sheet.json"), json.dumps(record, indent=1).encode("utf-8"))
    return record


def place_camera(camera, view_camera):
    """Stand a Blender camera where a sheet_layout.ViewCamera says (orthographic)."""
    camera.data.type = "ORTHO"
    camera.data.ortho_scale = view_camera.ortho_scale
    camera.data.clip_start, camera.data.clip_end = view_camera.clip
    camera.matrix_world = Matrix(np.asarray(view_camera.matrix).tolist())


def _as_detected(person):
    """Drop hidden face, hand and head joints, as a pose detector would not find them: a back
    view must not carry a face. Hidden limbs stay, as on the posed-character maps."""
    for part in ("face", "left_hand", "right_hand"):
        points = getattr(person, part)
        points[points[:, 2] < 1.0] = 0.0
    if (person.face[:, 2] > 0).sum() < MIN_FACE_POINTS:  # an outline glimpsed from behind is no face
        person.face[:] = 0.0
    head = person.body[HEAD_JOINTS]
    head[head[:, 2] < 1.0] = 0.0
    person.body[HEAD_JOINTS] = head
    return person


def face_points(rig):
    """World points the face views frame: the face keypoints, or the head joints of an own rig
    without face joints."""
    points = _world_joints(rig, "face")
    return points if len(points) >= 3 else _head_points(rig)


def _head_points(rig):
    _, mapping = mapping_for(rig)
    keys = [f"body.{j}" for j in ("nose", "right_eye", "left_eye", "right_ear", "left_ear") if f"body.{j}" in mapping]
    if len(keys) < 2:
        raise UserError(f"rig '{rig.name}' maps no face or head joints, so face close-ups cannot be framed: "
                        "map its head bones (Pose > Use as OpenPose rig) or use body views only")
    return np.array([rig.matrix_world @ getattr(rig.pose.bones[mapping[k][0]], mapping[k][1]) for k in keys])


def _list(box):
    return list(box) if box else None
