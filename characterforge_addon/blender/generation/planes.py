"""Results into the scene as image planes: camera-aligned, filling the camera frame exactly,
standing in front of everything else the camera sees and seen only from their own camera."""

import json
import os

import bpy
from mathutils import Vector

from ...core.image_io import read_png_text
from ..rig.rig import ROLE
from . import view_colours

SHOTS_COLLECTION = "CharacterForge Shots"
LAYER = "characterforge_layer"  # background, picture or cutout:<rig>: the variants of one layer replace each other
PICTURE = "picture"  # posed characters, composites and their expression edits: one at a time
# Where a shot's planes stand, in multiples of its camera's clip start: nearer than anything
# else the camera can see, so the set, the dome and the rigs never hide what the shot shows;
# the picture in front of the cut-outs in front of the background, so Results > show decides.
NEAR = {PICTURE: 1.5, "cutout": 2.0, "background": 2.5}


def distance_for(camera, layer):
    """How far in front of `camera` a plane of `layer` (background, picture, cutout:<rig>) stands."""
    return camera.data.clip_start * NEAR.get(layer.split(":", 1)[0], NEAR[PICTURE])


def shot_collection(scene, shot):
    root = bpy.data.collections.get(SHOTS_COLLECTION)
    if root is None:
        root = bpy.data.collections.new(SHOTS_COLLECTION)
    if root.name not in scene.collection.children:
        scene.collection.children.link(root)
    coll = root.children.get(shot)
    if coll is None:
        coll = bpy.data.collections.new(shot)
        root.children.link(coll)
    return coll


def frame_at(scene, camera, distance):
    """The camera frame's corners in camera space at `distance` in front of the camera."""
    corners = [Vector(c) for c in camera.data.view_frame(scene=scene)]
    if camera.data.type == "ORTHO":
        return [Vector((c.x, c.y, -distance)) for c in corners]
    return [c * (distance / -c.z) for c in corners]


def import_plane(context, path, camera, distance, collection, name, cover=False):
    """Import `path` with Blender's own Import Images as Planes, then parent it to `camera`
    and size it to fill the frame at `distance`: exactly (stretched to the frame), or with
    `cover` keeping the picture's aspect and overflowing the frame on one side."""
    scene = context.scene
    result = bpy.ops.image.import_as_mesh_planes(files=[{"name": os.path.basename(path)}],
                                                 directory=os.path.dirname(path), shader="EMISSION",
                                                 align_axis="CAM", relative=False)
    if result != {"FINISHED"}:
        raise RuntimeError(f"Import Images as Planes failed for {path}")
    obj = context.active_object
    obj.name = name
    for coll in list(obj.users_collection):
        coll.objects.unlink(obj)
    collection.objects.link(obj)
    corners = frame_at(scene, camera, distance)
    xs, ys = [c.x for c in corners], [c.y for c in corners]
    mesh_xs = [v.co.x for v in obj.data.vertices]
    mesh_ys = [v.co.y for v in obj.data.vertices]
    obj.parent = camera
    obj.matrix_parent_inverse.identity()
    obj.rotation_euler = (0.0, 0.0, 0.0)
    obj.location = ((max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2, -distance)
    sx = (max(xs) - min(xs)) / (max(mesh_xs) - min(mesh_xs))
    sy = (max(ys) - min(ys)) / (max(mesh_ys) - min(mesh_ys))
    if cover:  # the mesh has the picture's aspect: one scale for both axes, the larger
        sx = sy = max(sx, sy)
    obj.scale = (sx, sy, 1.0)
    obj.hide_select = False
    as_result(obj, camera, scene)
    return obj


def as_result(obj, camera, scene):
    """What makes a camera-parented picture plane a result: seen only from `camera`, lighting and
    shading nothing, see-through in solid shading, its picture read through the colour space that
    undoes the scene's view transform."""
    obj[ROLE] = "result_plane"
    _only_from(obj, camera)
    for attribute in ("visible_diffuse", "visible_glossy", "visible_transmission", "visible_volume_scatter",
                      "visible_shadow"):
        setattr(obj, attribute, False)  # a picture in front of the lens lights and shades nothing
    material = obj.active_material
    # Solid shading (posing through the camera) sees through the plane: it would be a grey card
    # over the lens there, and its shader cannot tell one camera from another
    material.diffuse_color = (*material.diffuse_color[:3], 0.0)
    view_colours.mark_emission(material, scene)
    for node in material.node_tree.nodes:
        if node.type == "TEX_IMAGE" and node.image is not None:
            view_colours.mark(node.image, scene)


def _only_from(obj, camera):
    """The plane's material is transparent unless rendered from `camera`: a point of the plane
    is where `camera` has it (its object coordinates) only in `camera`'s own view space, so
    other shots' planes never hide this camera's view, nor this one theirs."""
    tree = obj.active_material.node_tree
    nodes, links = tree.nodes, tree.links
    out = next(n for n in nodes if n.type == "OUTPUT_MATERIAL")
    surface = out.inputs["Surface"].links[0].from_socket
    own = nodes.new("ShaderNodeTexCoord")
    own.object = camera
    view = nodes.new("ShaderNodeVectorTransform")
    view.vector_type, view.convert_from, view.convert_to = "POINT", "WORLD", "CAMERA"
    links.new(nodes.new("ShaderNodeNewGeometry").outputs["Position"], view.inputs[0])
    flip = nodes.new("ShaderNodeVectorMath")  # the shaders' camera space looks along +Z, the object along -Z
    flip.operation = "MULTIPLY"
    flip.inputs[1].default_value = (1.0, 1.0, -1.0)
    links.new(view.outputs[0], flip.inputs[0])
    apart = nodes.new("ShaderNodeVectorMath")
    apart.operation = "DISTANCE"
    links.new(flip.outputs[0], apart.inputs[0])
    links.new(own.outputs["Object"], apart.inputs[1])
    near = nodes.new("ShaderNodeMath")
    near.operation = "LESS_THAN"
    links.new(apart.outputs["Value"], near.inputs[0])
    near.inputs[1].default_value = -obj.location.z * 0.05  # float noise far from the origin: a mm
    mix = nodes.new("ShaderNodeMixShader")
    mix.name = "only_from_camera"
    links.new(near.outputs[0], mix.inputs[0])
    links.new(nodes.new("ShaderNodeBsdfTransparent").outputs[0], mix.inputs[1])
    links.new(surface, mix.inputs[2])
    links.new(mix.outputs[0], out.inputs["Surface"])


def show_variant(obj):
    """Show `obj` and hide the other variants of its layer in its shot, and that layer's planes
    of other shots on the same camera (viewport and render): a camera shows one picture per
    layer. The other layers (the background behind a composite, say) stay as they are."""
    layer = obj.get(LAYER, PICTURE)
    others = {o for collection in obj.users_collection for o in collection.objects}
    if obj.parent is not None:
        others |= {o for o in obj.parent.children if o.get(ROLE) == "result_plane"}
    for other in others:
        if other.get(LAYER, PICTURE) == layer:
            other.hide_render = other.hide_viewport = other != obj


def hide_result(obj):
    """Hide `obj` (viewport and render): with every variant hidden the camera shows the 3D scene."""
    obj.hide_render = obj.hide_viewport = True


DRAFT = "characterforge_draft"  # made in draft mode: Regenerate as Final makes the keeper
KEYPOINTS = "characterforge_keypoints"
FACES = "characterforge_faces"


def pose_props(spec, faces):
    """The pose that made a picture, kept on its plane so expression edits find each face even
    after the rigs moved on: {rig: 18 body joints} and {rig: face box from the face keypoints},
    in the picture's pixels."""
    props = {FACES: json.dumps(faces)}
    if spec.get("keypoints"):
        props[KEYPOINTS] = json.dumps(spec["keypoints"])
    return props


def file_of(obj):
    """The image file a result plane shows, or None."""
    files = json.loads(obj.get("characterforge_files", "[]"))
    return files[0] if files else obj.get("characterforge_background")


def tag(obj, job_spec, job_id, files):
    """Keep what made this result on the plane, so it can be regenerated or reproduced."""
    obj["characterforge_job"] = json.dumps(job_spec)
    obj["characterforge_job_id"] = job_id
    obj["characterforge_seed"] = job_spec.get("seed", 0)
    obj["characterforge_files"] = json.dumps(files)


def tag_scores(obj, path):
    """The output's scores (from its PNG metadata) as custom properties: the whole record as
    JSON, and the headline numbers on their own for drivers and the panel."""
    with open(path, "rb") as f:
        record = json.loads(read_png_text(f.read()).get("characterforge", "{}"))
    found = record.get("scores", {})
    obj["characterforge_scores"] = json.dumps(found)
    identity = found.get("identity") or {}
    if identity.get("status") == "ok":
        obj["characterforge_identity"] = identity.get("similarity", identity.get("mean"))
    poses = [s for s in (found.get("pose") or {}).values() if isinstance(s, dict) and s.get("status") == "ok"]
    if poses:
        obj["characterforge_pose_pck"] = min(s["pck@0.1"] for s in poses)
    look = found.get("appearance") or {}
    if look.get("status") == "ok":
        obj["characterforge_appearance"] = look.get("similarity", look.get("mean"))
    return found


def score_lines(obj):
    """What the panel says about a result's scores, one line each."""
    found = json.loads(obj.get("characterforge_scores", "{}"))
    lines = []
    identity = found.get("identity")
    if identity and identity.get("status") == "ok" and "mean" in identity:  # a sheet's faces with each other
        lines.append(f"Identity across views: mean {identity['mean']:.2f}, lowest {identity['min']:.2f}")
    elif identity:
        lines.append(f"Identity {identity['similarity']:.2f}" + (" (pasted face?)" if identity.get("copy_paste") else "")
                     if identity.get("status") == "ok" else f"Identity: {identity.get('reason', identity['status'])}")
    look = found.get("appearance")
    if look and look.get("status") == "ok" and "mean" in look:  # a sheet's views with each other
        lines.append(f"Appearance across views: mean {look['mean']:.2f}, lowest {look['min']:.2f}")
    elif look:
        by = found.get("appearance_by_character") or {}
        for who, s in (by.items() if len(by) > 1 else [("", look)]):
            lines.append(f"Appearance{' ' + who if who else ''} {s['similarity']:.2f}" if s.get("status") == "ok"
                         else f"Appearance{' ' + who if who else ''}: {s.get('reason', s.get('status'))}")
    pose = found.get("pose")
    if pose and pose.get("status") == "unavailable":
        lines.append(f"Pose: {pose['reason']}")
    elif pose:
        for rig, s in pose.items():
            lines.append(f"Pose {rig}: PCK@0.1 {s['pck@0.1']:.2f}" if s.get("status") == "ok"
                         else f"Pose {rig}: {s.get('reason', s.get('status'))}")
    return lines
