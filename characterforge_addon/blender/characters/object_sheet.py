"""Render the sheet maps of a creature or an object: orthographic cameras orbiting it (front,
3/4, side, back, a top view when its footprint is broad), each view framed to fill its cell,
then detail close-ups of one part; every cell gets depth, normal (Cycles' Normal pass) and line
art (from that depth and those normals), and no OpenPose map: no pose detector knows a
dragon's or a car's skeleton.

The views are seen in a throw-away scene holding only this character (its meshes, and a
creature's armature, linked, not copied: a creature keeps the pose it has), so the set and
other characters never enter the sheet and the user's scene is untouched.
"""

import json
import math
import os

import bpy
import numpy as np
from mathutils import Matrix, Vector

from ...core.characters import kinds, object_sheet, sheet_layout
from ...core.errors import UserError
from ...core.image_io import check_writable_folder, encode_png, write_atomic
from ...core.maps import line_art
from ..maps.passes import INDEX_BASE, render_passes
from ..maps.shape_maps import render_normals, shape_maps
from . import subjects

FILL = object_sheet.FILL


def _frame(subject):
    """(up, front) unit vectors of the character: its object's +Z and -Y (a collection: the world's)."""
    if subject.frame_object is None:
        return np.array((0.0, 0.0, 1.0)), np.array((0.0, -1.0, 0.0))
    basis = subject.frame_object.matrix_world.to_3x3().normalized()
    return np.array(basis @ Vector((0, 0, 1))), np.array(basis @ Vector((0, -1, 0)))


def _unit(v):
    return v / max(np.linalg.norm(v), 1e-12)


def view_axes(up, front, yaw, elevation, points=None):
    """(direction towards the camera, image right, image up) of a view. Level and tilted views
    keep the character's up upright; a view from straight above or below lays the character's
    longer horizontal axis (of `points`) along the image's width."""
    side = np.cross(up, front)  # the character's left (+X)
    a = math.radians(yaw)
    orbit = front * math.cos(a) + side * math.sin(a)
    e = math.radians(elevation)
    direction = _unit(orbit * math.cos(e) + up * math.sin(e))
    if abs(elevation) < 89.0:
        right = _unit(np.cross(-direction, up))
    else:
        longer = front if points is None or np.ptp(points @ front) >= np.ptp(points @ side) else side
        right = _unit(longer - direction * (longer @ direction))
    return direction, right, _unit(np.cross(direction, right))


def _place(camera, center, direction, right, image_up, distance):
    rotation = Matrix((Vector(right), Vector(image_up), Vector(direction))).transposed()
    camera.matrix_world = Matrix.Translation(Vector(center + direction * distance)) @ rotation.to_4x4()


def _spans(points, right, image_up):
    x, y = points @ right, points @ image_up
    return float(np.ptp(x)), float(np.ptp(y)), (float(x.min() + x.max()) / 2, float(y.min() + y.max()) / 2)


def plan(subject, depsgraph, width, height, views="auto", details="front, three_quarter", part="", spacing=16):
    """(layout, the whole points, the part (name, points) or None, each view's axes and spans)."""
    points = subjects.world_points(subject, depsgraph)
    up, front = _frame(subject)
    if views.strip() in ("", "auto"):
        flat = points - np.outer(points @ up, up)
        footprint = float(max(np.ptp(flat @ front), np.ptp(flat @ np.cross(up, front))))
        chosen = object_sheet.default_views(footprint, float(np.ptp(points @ up)))
    else:
        chosen = object_sheet.parse_views(views, "Views")
    picked = subjects.pick_part(subjects.parts(subject, depsgraph), part)
    detail_views = object_sheet.parse_views(details, "Detail views") if picked and details.strip() else []
    axes = {}
    for name, yaw, elevation in chosen:
        axes[name] = view_axes(up, front, yaw, elevation, points)
    for name, yaw, elevation in detail_views:
        axes[f"detail_{name}"] = view_axes(up, front, yaw, elevation, picked[1])
    spans = [_spans(points, *axes[name][1:])[:2] for name, _, _ in chosen]
    layout = object_sheet.plan(width, height, chosen, detail_views, spans, spacing)
    return layout, points, picked, axes, up


def render_object_sheet(context, subject, out_dir, width=1536, height=1024, views="auto",
                        details="front, three_quarter", part="", spacing=16):
    """Write depth.png, normal.png, lineart.png and sheet.json of `subject` (a creature or an
    object: subjects.Subject); returns the sheet record."""
    if subject.kind == kinds.HUMANOID:
        raise UserError(f"'{subject.name}' is a humanoid rig: its sheet comes from its OpenPose rig")
    out_dir = bpy.path.abspath(out_dir)
    try:
        check_writable_folder(out_dir)
    except OSError as exc:
        raise UserError(str(exc)) from None
    context.view_layer.update()
    depsgraph = context.evaluated_depsgraph_get()
    layout, points, picked, axes, up = plan(subject, depsgraph, width, height, views, details, part, spacing)
    stage = bpy.data.scenes.new(".characterforge_sheet")
    camera = bpy.data.objects.new(".characterforge_sheet_camera", bpy.data.cameras.new(".characterforge_sheet_camera"))
    try:
        linked = list(subject.meshes) + ([subject.obj] if subject.kind == kinds.CREATURE else [])
        for obj in [*linked, camera]:
            stage.collection.objects.link(obj)
        stage.camera = camera
        stage.render.resolution_percentage = 100
        stage.render.pixel_aspect_x = stage.render.pixel_aspect_y = 1.0
        stage.view_settings.view_transform = "Standard"
        camera.data.type = "ORTHO"
        camera.data.sensor_fit = "AUTO"
        stage.view_layers[0].update()
        return _render_views(stage, camera, subject, out_dir, layout, points, picked, axes)
    finally:
        bpy.data.scenes.remove(stage)
        cam_data = camera.data
        bpy.data.objects.remove(camera)
        bpy.data.cameras.remove(cam_data)


def _render_views(stage, camera, subject, out_dir, layout, points, picked, axes):
    radius = float(np.linalg.norm(points - points.mean(axis=0), axis=1).max()) or 1.0
    distance = 3.0 * radius + 1.0
    camera.data.clip_start = 0.01 * distance
    camera.data.clip_end = distance + 3.0 * radius
    index_of = {obj: INDEX_BASE + 1 + i for i, obj in enumerate(subject.meshes)}
    ids = set(index_of.values())
    whole = [v for v in layout.views if v.kind == "body"]
    spans = [_spans(points, *axes[v.name][1:])[:2] for v in whole]
    scales, shared = object_sheet.scales(whole, spans)
    scale_of = {v.name: s for v, s in zip(whole, scales)}
    sheet = {"depth": np.zeros((layout.height, layout.width), np.uint8),
             "normal": np.zeros((layout.height, layout.width, 3), np.uint8),
             "lineart": np.zeros((layout.height, layout.width), np.uint8)}
    width = line_art.line_width(max(layout.width, layout.height))
    views = []
    for view in layout.views:
        w, h = view.size
        stage.render.resolution_x, stage.render.resolution_y = w, h
        direction, right, image_up = axes[view.name]
        framed = points if view.kind == "body" else picked[1]
        span_w, span_h, (cx, cy) = _spans(framed, right, image_up)
        scale = scale_of.get(view.name) or min(FILL * w / max(span_w, 1e-9), FILL * h / max(span_h, 1e-9))
        camera.data.ortho_scale = max(w, h) / scale
        center = right * cx + image_up * cy + direction * float(points.mean(axis=0) @ direction)
        _place(camera, center, direction, right, image_up, distance)
        stage.view_layers[0].update()
        depth, index = render_passes(stage, camera, index_of)
        normals = render_normals(stage, camera)
        found = np.rint(index).astype(np.int32)
        shown = np.isin(found, list(ids))
        maps = shape_maps(depth, normals, found, shown, width)
        x0, y0 = view.cell[:2]
        for name, pixels in maps.items():
            sheet[name][y0:y0 + h, x0:x0 + w] = pixels
        box = sheet_layout.view_box(view.cell, mask=shown, pad=0.0)
        views.append({"name": view.name, "kind": view.kind, "yaw": view.yaw, "elevation": view.elevation,
                      "cell": list(view.cell), "box": list(box) if box else None, "face_box": None,
                      "part": picked[0] if view.kind == "detail" else "", "scale": round(scale, 4),
                      "fill": round(object_sheet.fill_of(box, view.cell), 3) if box else 0.0})
    fill, advice = object_sheet.fill_report(views)
    if picked is None:
        advice = " ".join(a for a in (advice, f"'{subject.name}' has no parts to show close up (a collection's "
                                      "meshes, a creature's bones, a mesh's vertex groups or loose pieces): no detail "
                                      "views") if a)
    files = {f"{name}.png": encode_png(pixels) for name, pixels in sheet.items()}
    record = {"character": subject.name, "kind": subject.kind, "size": [layout.width, layout.height], "pose": "current",
              "fill": fill, "advice": advice, "shared_scale": shared, "detail_part": picked[0] if picked else None,
              "views": views, "files": sorted(files)}
    for name, data in files.items():
        write_atomic(os.path.join(out_dir, name), data)
    write_atomic(os.path.join(out_dir, "sheet.json"), json.dumps(record, indent=1).encode("utf-8"))
    return record
