"""The live plane: one camera-filling image plane per shot that each new live picture replaces
(its image reloaded from the new file, the old file removed), never a new variant per picture;
Keep turns it into a normal result of the shot (a draft: Regenerate as Final makes the keeper).
Main thread only."""

import json
import os
import re
import shutil

import bpy

from . import planes
from .generation import spec_summary

LIVE = "characterforge_live"  # on the live plane: the shot it belongs to
LIVE_IMAGE = "CF live"  # its image, to watch in an Image Editor beside the viewport


def live_plane(scene, shot):
    """The shot's live plane, or None."""
    collection = bpy.data.collections.get(planes.SHOTS_COLLECTION)
    shots = collection.children.get(shot) if collection else None
    return next((o for o in (shots.objects if shots else ()) if o.get(LIVE) == shot), None)


def plane_image(obj):
    """The image an image plane shows (Import Images as Planes' image texture node)."""
    material = obj.active_material
    nodes = material.node_tree.nodes if material and material.node_tree else ()
    node = next((n for n in nodes if n.type == "TEX_IMAGE"), None)
    return node.image if node else None


def new_plane(path, camera, collection, name):
    """An image plane showing `path` (an emission material, as Import Images as Planes makes),
    parented to `camera`, made without operators: the user's selection, active object and
    mode (posing the rig) stay as they are."""
    image = bpy.data.images.load(path, check_existing=False)
    width, height = image.size
    half_w, half_h = 0.5 * width / max(height, 1), 0.5
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(-half_w, -half_h, 0), (half_w, -half_h, 0), (half_w, half_h, 0), (-half_w, half_h, 0)], [],
                     [(0, 1, 2, 3)])
    uv = mesh.uv_layers.new(name="UVMap")
    for loop, corner in zip(uv.data, ((0, 0), (1, 0), (1, 1), (0, 1))):
        loop.uv = corner
    material = bpy.data.materials.new(name)
    if material.node_tree is None:  # Blender 4.2 (5 always has one)
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    mesh.materials.append(material)
    obj = bpy.data.objects.new(name, mesh)
    collection.objects.link(obj)
    obj.parent = camera
    obj.matrix_parent_inverse.identity()
    obj.rotation_euler = (0.0, 0.0, 0.0)
    return obj


def fit(scene, obj, camera, distance):
    """Fill `camera`'s frame at `distance` with the plane, as import_plane does: the camera or
    the render's aspect may have changed since the plane was made."""
    corners = planes.frame_at(scene, camera, distance)
    xs, ys = [c.x for c in corners], [c.y for c in corners]
    mesh_xs = [v.co.x for v in obj.data.vertices]
    mesh_ys = [v.co.y for v in obj.data.vertices]
    obj.location = ((max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2, -distance)
    obj.scale = ((max(xs) - min(xs)) / (max(mesh_xs) - min(mesh_xs)),
                 (max(ys) - min(ys)) / (max(mesh_ys) - min(mesh_ys)), 1.0)


def show(context, shot, camera, distance, path, spec, job_id, extra=None):
    """The live picture at `path` on the shot's live plane (made the first time), shown in place
    of the shot's other pictures; the file it showed before is removed."""
    scene = context.scene
    obj = live_plane(scene, shot)
    if obj is not None and obj.parent != camera:  # another camera now: a plane of its own
        remove(obj)
        obj = None
    if obj is None:
        obj = new_plane(path, camera, planes.shot_collection(scene, shot), f"{shot} live")
        obj[LIVE] = shot
        image = plane_image(obj)
        fit(scene, obj, camera, distance)
        planes.as_result(obj, camera, scene)  # after the fit: it reads how far the plane stands
    else:
        image = plane_image(obj)
        image.filepath = path
        image.reload()
        fit(scene, obj, camera, distance)
    image.name = f"{LIVE_IMAGE} {shot}"
    planes.tag(obj, spec_summary(spec), job_id, [path])
    obj[planes.DRAFT] = bool(spec.get("draft"))
    obj[planes.LAYER] = planes.PICTURE
    planes.tag_scores(obj, path)
    for key, value in (extra or {}).items():
        obj[key] = value
    planes.show_variant(obj)
    folder, shown = os.path.split(os.path.abspath(path))
    for name in os.listdir(folder):  # the pictures shown before, and late ones of older states
        if _generation(name) is not None and _generation(name) < (_generation(shown) or 0):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass
    return obj


def _generation(file_name):
    """N of a live picture's file live_N_<name>.png (the worker names them so), else None."""
    match = re.match(r"live_(\d+)_.*\.png$", file_name)
    return int(match.group(1)) if match else None


def keep(obj):
    """Turn the live plane `obj` into a normal result of its shot: its picture copied next to
    the shot's other results, the plane renamed and no longer replaced by live pictures."""
    shot = obj[LIVE]
    image = plane_image(obj)
    live_file = bpy.path.abspath(image.filepath)
    spec = json.loads(obj["characterforge_job"])
    shot_dir = os.path.dirname(os.path.dirname(live_file))  # <results>/<shot>/live/live_N.png
    stem = f"{spec.get('name', 'live')}_live_{obj['characterforge_job_id'][:8]}"
    kept = os.path.join(shot_dir, f"{stem}.png")
    shutil.copyfile(live_file, kept)
    image.filepath = kept
    image.reload()
    image.name = f"{stem}.png"
    del obj[LIVE]
    obj.name = f"{shot}_{stem}" + (" (draft)" if obj.get(planes.DRAFT) else "")
    obj["characterforge_files"] = json.dumps([kept])
    try:
        os.remove(live_file)
    except OSError:
        pass
    planes.show_variant(obj)
    return obj


def remove(obj):
    """Delete a live plane with its mesh, material, image and file."""
    image = plane_image(obj)
    path = bpy.path.abspath(image.filepath) if image else ""
    mesh = obj.data
    materials = [m for m in mesh.materials if m] if mesh else []
    bpy.data.objects.remove(obj)
    if mesh is not None and mesh.users == 0:
        bpy.data.meshes.remove(mesh)
    for material in materials:
        if material.users == 0:
            bpy.data.materials.remove(material)
    if image is not None and image.users == 0:
        bpy.data.images.remove(image)
    if path and os.path.basename(path).startswith("live_"):
        try:
            os.remove(path)
        except OSError:
            pass
