"""Render a character sheet's control maps from a rig: every view is an orthographic camera
orbiting the character, rendered into its cell of one OpenPose (and depth) sheet.

The views are seen in a throw-away scene holding only this character (its rig and meshes,
linked, not copied), so other characters and the set never enter the sheet and the user's
scene is untouched. Each view's box comes from its projected keypoints and its rendered
silhouette, never from guesses.
"""

import json
import math
import os

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ..core import control_maps, keypoints, openpose_draw, rig_mapping, sheet_layout
from ..core.errors import UserError
from ..core.image_io import check_writable_folder, encode_png, write_atomic
from .joints import camera_model, mapping_for, project_rig
from .passes import INDEX_BASE, render_passes
from .rig import character_meshes

BODY_FILL = 0.92   # share of a body cell the character's full extent takes
FACE_EXTENT = 3.6  # head close-up: frame this many face-keypoint radii (hair and chin included)
FACE_LIFT = 0.3    # ... centred this many radii above the face keypoints' centre (the skull is above)
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


def _character_points(depsgraph, rig, meshes):
    """World points spanning the character: its posed meshes' vertices, or its joints."""
    points = [_world_joints(rig, p) for p in ("body", "left_hand", "right_hand", "face")]
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


def _frame(rig):
    """(up, front) unit vectors of the character in world space: its local +Z and -Y."""
    basis = rig.matrix_world.to_3x3().normalized()
    return np.array(basis @ Vector((0, 0, 1))), np.array(basis @ Vector((0, -1, 0)))


def _orbit(up, front, yaw):
    """The direction from the character towards a camera at `yaw` degrees (counter-clockwise
    seen from above, so 90 looks at the character's left side)."""
    a = math.radians(yaw)
    side = np.cross(up, front)  # front x up would point right; up x front points left (+X)
    return front * math.cos(a) + side * math.sin(a)


def _place_camera(camera, center, direction, up, distance):
    location = Vector(center + direction * distance)
    look = Vector(-direction)
    # keep the image upright along the character's own up axis
    right = look.cross(Vector(up)).normalized()
    true_up = right.cross(look).normalized()
    rotation = Matrix((right, true_up, -look)).transposed()
    camera.matrix_world = Matrix.Translation(location) @ rotation.to_4x4()


def _span(points, center, direction, up):
    """Half extents of points across (the image's horizontal) and along `up`, around center."""
    right = np.cross(-direction, up)
    right /= np.linalg.norm(right)
    rel = points - center
    return float(np.abs(rel @ right).max()), float(np.abs(rel @ up).max())


def render_sheet(context, rig, out_dir, layout, depth=True):
    """Write openpose.png, depth.png (when `depth`), openpose.json and sheet.json for `rig`
    laid out as `layout` (a core.sheet_layout.SheetLayout); returns the sheet record."""
    if rig is None or rig.type != "ARMATURE":
        raise UserError("pick an OpenPose rig (an armature) for the sheet")
    out_dir = bpy.path.abspath(out_dir)
    try:
        check_writable_folder(out_dir)
    except OSError as exc:
        raise UserError(str(exc)) from None
    context.view_layer.update()
    body_meshes, hand_meshes = character_meshes(rig)
    meshes = body_meshes + hand_meshes
    stage = bpy.data.scenes.new(".characterforge_sheet")
    camera = bpy.data.objects.new(".characterforge_sheet_camera", bpy.data.cameras.new(".characterforge_sheet_camera"))
    try:
        for obj in [rig, *meshes, camera]:
            stage.collection.objects.link(obj)
        stage.camera = camera
        stage.render.resolution_percentage = 100
        stage.render.pixel_aspect_x = stage.render.pixel_aspect_y = 1.0
        stage.view_settings.view_transform = "Standard"
        camera.data.type = "ORTHO"
        camera.data.sensor_fit = "AUTO"
        stage.view_layers[0].update()  # builds and evaluates the stage's own depsgraph
        depsgraph = stage.view_layers[0].depsgraph
        return _render_views(stage, depsgraph, camera, rig, body_meshes, hand_meshes, out_dir, layout, depth)
    finally:
        bpy.data.scenes.remove(stage)
        cam_data = camera.data
        bpy.data.objects.remove(camera)
        bpy.data.cameras.remove(cam_data)


def _render_views(stage, depsgraph, camera, rig, body_meshes, hand_meshes, out_dir, layout, depth):
    up, front = _frame(rig)
    every = _character_points(depsgraph, rig, body_meshes + hand_meshes)
    along = every @ up
    base = every - np.outer(along, up)
    axis = base.mean(axis=0)  # the vertical line through the character's middle
    center = axis + up * (along.min() + along.max()) / 2
    height = float(np.ptp(along))
    radius = float(np.linalg.norm(base - axis, axis=1).max())
    distance = 3.0 * max(height, 2 * radius, 0.1)
    camera.data.clip_start = 0.01 * distance
    camera.data.clip_end = 4.0 * distance
    face_world = _world_joints(rig, "face")
    if len(face_world) < 3:  # an own rig without face joints: frame its head joints
        face_world = _head_points(rig)

    index_of = {o: INDEX_BASE + 1 for o in body_meshes} | {o: INDEX_BASE + 2 for o in hand_meshes}
    sheet = openpose_draw.blank_canvas(layout.width, layout.height)
    depth_sheet = np.zeros((layout.height, layout.width), dtype=np.uint8)
    people, views = [], []
    for view in layout.views:
        w, h = view.size
        stage.render.resolution_x, stage.render.resolution_y = w, h
        direction = _orbit(up, front, view.yaw)
        if view.kind == "body":
            # every body view gets the same scale, so the views match in size
            camera.data.ortho_scale = sheet_layout.ortho_scale(2 * radius, height, w, h, BODY_FILL)
            look_at = center
        else:
            face_center = face_world.mean(axis=0)
            r = float(np.linalg.norm(face_world - face_center, axis=1).max())
            camera.data.ortho_scale = sheet_layout.ortho_scale(FACE_EXTENT * r, FACE_EXTENT * r, w, h, 1.0)
            look_at = face_center + up * FACE_LIFT * r
        _place_camera(camera, look_at, direction, up, distance)
        stage.view_layers[0].update()
        person = _as_detected(project_rig(stage, depsgraph, camera, camera_model(stage, camera), rig)[0])
        x0, y0 = view.cell[:2]
        sheet[y0:y0 + h, x0:x0 + w] = openpose_draw.draw_people(w, h, [person])
        mask = None
        if depth:
            d, index = render_passes(stage, camera, index_of)
            ids = np.rint(index).astype(np.int32)
            mask = (ids == INDEX_BASE + 1) | (ids == INDEX_BASE + 2)
            depth_sheet[y0:y0 + h, x0:x0 + w] = control_maps.depth_image(d, mask)
        shifted = keypoints.Person(f"{rig.name} {view.name}")
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
                      "keypoints": int(len(seen))})
    files = {"openpose.png": encode_png(sheet),
             "openpose.json": keypoints.to_openpose_json(layout.width, layout.height, people).encode("utf-8")}
    if depth:
        files["depth.png"] = encode_png(depth_sheet)
    record = {"character": rig.name, "size": [layout.width, layout.height], "views": views,
              "files": sorted(files)}
    for name, data in files.items():
        write_atomic(os.path.join(out_dir, name), data)
    write_atomic(os.path.join(out_dir, "sheet.json"), json.dumps(record, indent=1).encode("utf-8"))
    return record


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


def _head_points(rig):
    _, mapping = mapping_for(rig)
    keys = [f"body.{j}" for j in ("nose", "right_eye", "left_eye", "right_ear", "left_ear") if f"body.{j}" in mapping]
    if len(keys) < 2:
        raise UserError(f"rig '{rig.name}' maps no face or head joints, so face close-ups cannot be framed: "
                        "map its head bones (Pose > Use as OpenPose rig) or use body views only")
    return np.array([rig.matrix_world @ getattr(rig.pose.bones[mapping[k][0]], mapping[k][1]) for k in keys])


def _list(box):
    return list(box) if box else None
