"""A set that holds across cameras: the shot's background projected onto the set's geometry
from its camera, filled from other cameras where nothing painted it yet, and a dome for the
far background (core.set_projection has the rule and the numbers).

One material (`MATERIAL`) goes on every set object (their own materials are kept on the
object and put back by `remove`); it is emission only, so the set looks as generated, lit by
the picture, from every camera, in the viewport and in renders. It blends the layers for the
camera looking (core.view_blend): from a camera that painted the set, that camera's picture
wherever it saw the surface. Each layer's camera is frozen as an empty (`projector`): moving
the camera afterwards does not slide the paint. The pictures' colour space undoes the scene's
view transform (view_colours).
"""

import json
import os

import bpy
import numpy as np

from ...core.errors import UserError
from ...core.image_io import decode_png
from ...core.shots import set_projection, view_blend
from ..characters.subjects import marked_in_scene
from ..generation import view_colours
from ..generation.planes import SHOTS_COLLECTION
from ..maps import passes
from ..rig import joints
from ..rig.rig import character_meshes, rigs_in_scene, ROLE

SET_COLLECTION = "CharacterForge Set"
MATERIAL = "CharacterForge Set"
LAYERS = "characterforge_set_layers"  # on the scene: JSON list of the layers, painting order
SAVED = "characterforge_set_materials"  # on each set object: its own [material, link] by slot
DOME = "characterforge_dome"
HOLE = (1.0, 0.0, 1.0, 1.0)  # magenta, Blender's colour for a missing texture: no camera painted it
DOME_AT = 0.9  # of the camera's clip end: inside the frustum, behind everything the set holds


def characters(scene):
    """The meshes of every character: the rigs', and the creatures' and objects' playing one."""
    return [o for rig in rigs_in_scene(scene) for o in sum(character_meshes(rig), [])] + [
        o for subject in marked_in_scene(scene) for o in subject.meshes]


def set_objects(scene):
    """The meshes that make the set: every rendered mesh but the characters and our planes."""
    cast = set(characters(scene))
    ours = bpy.data.collections.get(SHOTS_COLLECTION)
    ours = set(ours.all_objects) if ours else set()
    return [o for o in scene.objects if o.type == "MESH" and not o.hide_render and o not in cast and o not in ours
            and o.get(ROLE) != "result_plane"]


def layers(scene):
    return json.loads(scene.get(LAYERS, "[]"))


def dome(scene):
    return next((o for o in scene.objects if o.get(DOME)), None)


def add_dome(context, camera):
    """A sphere around the camera at DOME_AT of its clip end, for the sky and the far land:
    painted like the rest of the set, so every camera shares it."""
    scene = context.scene
    old = dome(scene)
    if old is not None:
        return old
    mesh = bpy.data.meshes.new("CharacterForge Dome")
    import bmesh
    bm = bmesh.new()
    bmesh.ops.create_uvsphere(bm, u_segments=64, v_segments=32, radius=camera.data.clip_end * DOME_AT)
    for face in bm.faces:
        face.smooth = True
    bm.to_mesh(mesh)
    bm.free()
    obj = bpy.data.objects.new("CharacterForge Dome", mesh)
    obj.location = camera.matrix_world.translation
    obj[DOME] = True
    _collection(scene).objects.link(obj)
    if layers(scene):
        _assign(scene)
    return obj


def _collection(scene):
    coll = bpy.data.collections.get(SET_COLLECTION)
    if coll is None:
        coll = bpy.data.collections.new(SET_COLLECTION)
    if coll.name not in scene.collection.children:
        scene.collection.children.link(coll)
    return coll


def set_depth(scene, camera):
    """The planar depth (H, W) every set surface has from `camera` (the characters left out)."""
    bpy.context.view_layer.update()
    depth, _ = passes.render_passes(scene, camera, {}, hide=characters(scene))
    return depth


def project(context, camera, picture, depth=None):
    """Add a layer: `picture` (a file, what `camera` sees of the set) projected onto the set
    from `camera` where it sees it. Returns the layer."""
    scene = context.scene
    if not set_objects(scene):
        raise UserError("the scene has no set to project onto: model the set (floor, walls, props) or add a dome "
                        "(Shot > Set > Add Dome)")
    if not os.path.isfile(picture):
        raise UserError(f"the picture to project, {picture}, is not there: make the shot's background first")
    model = joints.camera_model(scene, camera)
    if depth is None:
        depth = set_depth(scene, camera)
    data = set_projection.layer_data(depth)
    index = len(layers(scene))
    folder = os.path.dirname(os.path.abspath(picture))
    data_path = os.path.join(folder, f"set_layer{index}_{bpy.path.clean_name(camera.name)}.exr")
    _write_exr(data, data_path)
    projector = bpy.data.objects.new(f"CharacterForge Projector {index} ({camera.name})", None)
    projector.matrix_world = camera.matrix_world.copy()
    projector.hide_viewport = projector.hide_render = True
    _collection(scene).objects.link(projector)
    layer = {"camera": camera.name, "picture": os.path.abspath(picture), "data": data_path,
             "projector": projector.name, "constants": list(set_projection.shader_constants(model)),
             "resolution": list(model.resolution)}
    scene[LAYERS] = json.dumps(layers(scene) + [layer])
    build_material(scene)
    _assign(scene)
    return layer


def _write_exr(data, path):
    h, w = data.shape[:2]
    image = bpy.data.images.new(os.path.basename(path), w, h, alpha=True, float_buffer=True, is_data=True)
    try:
        image.colorspace_settings.name = "Non-Color"  # numbers, not colours: saved as they are
        image.pixels.foreach_set(np.ascontiguousarray(data[::-1]).ravel())  # Blender's rows go bottom-up
        image.filepath_raw = path
        image.file_format = "OPEN_EXR"
        image.save()
    finally:
        bpy.data.images.remove(image)


def _image(path, data=False):
    image = bpy.data.images.load(path, check_existing=True)
    if data:
        image.colorspace_settings.name = "Non-Color"
    return image


def _input(node, identifier):
    return next(s for s in node.inputs if s.identifier == identifier)


def _output(node, identifier):
    return next(s for s in node.outputs if s.identifier == identifier)


def build_material(scene):
    """The set material from the scene's layers, blended for the viewing camera by
    core.view_blend's weights (a layer counts where its depth test passes); HOLE where no layer
    saw the point. Its node 'coverage' is 1 where some layer paints the point acceptably for
    the camera whose pixel width the value nodes 'viewer_pixel' and 'viewer_ortho' hold
    (`render_view(coverage=True)` sets them)."""
    material = bpy.data.materials.get(MATERIAL) or bpy.data.materials.new(MATERIAL)
    material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    nodes, links = tree.nodes, tree.links

    def math(op, *operands, clamp=False):
        node = nodes.new("ShaderNodeMath")
        node.operation = op
        node.use_clamp = clamp
        for socket, x in zip(node.inputs, operands):
            if isinstance(x, (int, float)):
                socket.default_value = x
            else:
                links.new(x, socket)
        return node.outputs[0]

    def vector(op, a, b=None):
        node = nodes.new("ShaderNodeVectorMath")
        node.operation = op
        for socket, x in zip(node.inputs, (a, b)):
            if isinstance(x, tuple):
                socket.default_value = x
            elif x is not None:
                links.new(x, socket)
        return _output(node, "Value" if op in ("DOT_PRODUCT", "LENGTH", "DISTANCE") else "Vector")

    def scale(v, factor):
        node = nodes.new("ShaderNodeVectorMath")
        node.operation = "SCALE"
        links.new(v, node.inputs[0])
        links.new(factor, _input(node, "Scale"))
        return _output(node, "Vector")

    def value(name, default):
        node = nodes.new("ShaderNodeValue")
        node.name = node.label = name
        node.outputs[0].default_value = default
        return node.outputs[0]

    geometry = nodes.new("ShaderNodeNewGeometry")
    normal, incoming = geometry.outputs["Normal"], geometry.outputs["Incoming"]
    camera_data = nodes.new("ShaderNodeCameraData")
    # the viewer's pixel on the surface (view_blend.footprint), for the coverage only
    viewer_ortho = value("viewer_ortho", 0.0)
    viewer_depth = math("ADD", math("MULTIPLY", camera_data.outputs["View Z Depth"], math("SUBTRACT", 1.0, viewer_ortho)),
                        viewer_ortho)
    viewer_cos = math("MAXIMUM", math("ABSOLUTE", vector("DOT_PRODUCT", normal, incoming)), view_blend.MIN_COS)
    viewer_foot = math("DIVIDE", math("MULTIPLY", viewer_depth, value("viewer_pixel", 0.0)), viewer_cos)
    numerator = total = coverage = None
    for index, layer in enumerate(layers(scene)):
        ax, bx, ay, by, ortho = layer["constants"]
        projector = bpy.data.objects.get(layer["projector"])
        if projector is None:
            raise UserError(f"the projector of set layer {index} ({layer['projector']}) was deleted: Remove Set "
                            "Projection and project again")
        coords = nodes.new("ShaderNodeTexCoord")
        coords.object = projector
        xyz = nodes.new("ShaderNodeSeparateXYZ")
        links.new(coords.outputs["Object"], xyz.inputs[0])
        d = math("MULTIPLY", xyz.outputs[2], -1.0)
        qx, qy = (xyz.outputs[0], xyz.outputs[1]) if ortho else (math("DIVIDE", xyz.outputs[0], d),
                                                                  math("DIVIDE", xyz.outputs[1], d))
        u, v = math("MULTIPLY_ADD", qx, ax, bx), math("MULTIPLY_ADD", qy, ay, by)
        uv = nodes.new("ShaderNodeCombineXYZ")
        links.new(u, uv.inputs[0])
        links.new(v, uv.inputs[1])
        # in the camera's frame: |U - 0.5| < 0.5 and |V - 0.5| < 0.5 (textures far outside it sample badly)
        inside = math("MULTIPLY", *(math("LESS_THAN", math("ABSOLUTE", math("SUBTRACT", c, 0.5)), 0.5) for c in (u, v)))
        picture = nodes.new("ShaderNodeTexImage")
        picture.image = _image(layer["picture"])
        view_colours.mark(picture.image, scene)
        picture.extension = "EXTEND"  # no dark seam at the frame's edge
        data = nodes.new("ShaderNodeTexImage")
        data.image = _image(layer["data"], data=True)
        data.interpolation = "Closest"
        data.extension = "EXTEND"
        smooth = nodes.new("ShaderNodeTexImage")  # the same data, interpolated: the fade must not step per pixel
        smooth.image = data.image
        smooth.extension = "EXTEND"
        for tex in (picture, data, smooth):
            links.new(uv.outputs[0], tex.inputs["Vector"])
        channels = nodes.new("ShaderNodeSeparateColor")
        links.new(data.outputs["Color"], channels.inputs[0])
        inside_edges = nodes.new("ShaderNodeSeparateColor")
        links.new(smooth.outputs["Color"], inside_edges.inputs[0])
        # a surface this camera saw (core.set_projection.saw): in its frame, near x (1 - tol) < d < far x (1 + tol)
        tol = set_projection.DEPTH_TOLERANCE
        seen = math("MULTIPLY", inside, math("MULTIPLY", math("GREATER_THAN", d, math("MULTIPLY", channels.outputs[1], 1 - tol)),
                                             math("LESS_THAN", d, math("MULTIPLY", channels.outputs[0], 1 + tol))))
        # view_blend.weights: towards the projector (a point, or the orthographic camera's axis)
        if ortho:
            axis = projector.matrix_world.to_3x3().col[2].normalized()
            direction = vector("NORMALIZE", (axis.x, axis.y, axis.z))
        else:
            where = projector.matrix_world.translation
            direction = vector("NORMALIZE", vector("SUBTRACT", (where.x, where.y, where.z), geometry.outputs["Position"]))
        pixel = 1.0 / (ax * layer["resolution"][0])
        cos = math("MAXIMUM", math("ABSOLUTE", vector("DOT_PRODUCT", normal, direction)), view_blend.MIN_COS)
        foot = math("DIVIDE", pixel if ortho else math("MULTIPLY", d, pixel), cos)
        apart = vector("DISTANCE", incoming, direction)
        off = math("MULTIPLY", math("MULTIPLY", apart, apart), 0.5)  # 1 - cos, without cancellation near 0
        penalty = math("MULTIPLY_ADD", off, off, view_blend.EPS)
        edge = math("MINIMUM", math("MINIMUM", u, math("SUBTRACT", 1.0, u)), math("MINIMUM", v, math("SUBTRACT", 1.0, v)))
        fade = math("MAXIMUM", math("MULTIPLY", math("DIVIDE", edge, view_blend.EDGE, clamp=True),
                                    inside_edges.outputs[2]), view_blend.FLOOR)
        weight = math("DIVIDE", math("MULTIPLY", seen, fade), math("MULTIPLY", penalty, math("MULTIPLY", foot, foot)))
        for node, role in ((weight.node, "weight"), (seen.node, "seen"), (foot.node, "footprint"), (picture, "picture")):
            node.name = f"{role} {index}"  # named for whoever reads the blend, e.g. bench_sets.py's other rules
        part = scale(picture.outputs["Color"], weight)
        sharp = math("MULTIPLY", seen, math("LESS_THAN", foot, math("MULTIPLY", viewer_foot, view_blend.MAX_STRETCH)))
        numerator = part if numerator is None else vector("ADD", numerator, part)
        total = weight if total is None else math("ADD", total, weight)
        coverage = math("MAXIMUM", sharp, 0.0) if coverage is None else math("MAXIMUM", coverage, sharp)
    coverage.node.name = "coverage"
    hole = nodes.new("ShaderNodeRGB")
    hole.outputs[0].default_value = HOLE
    color = nodes.new("ShaderNodeMix")
    color.data_type = "RGBA"
    links.new(math("GREATER_THAN", total, 0.0), _input(color, "Factor_Float"))
    links.new(hole.outputs[0], _input(color, "A_Color"))
    links.new(scale(numerator, math("DIVIDE", 1.0, math("MAXIMUM", total, 1e-30))), _input(color, "B_Color"))
    emission = nodes.new("ShaderNodeEmission")
    emission.name = "emission"
    links.new(_output(color, "Result_Color"), emission.inputs["Color"])
    out = nodes.new("ShaderNodeOutputMaterial")
    links.new(emission.outputs[0], out.inputs["Surface"])
    view_colours.mark_emission(material, scene)
    return material


def _assign(scene):
    """The set material on every set object, its own materials kept on the object once."""
    material = bpy.data.materials[MATERIAL]
    for obj in set_objects(scene):
        if SAVED not in obj:
            obj[SAVED] = json.dumps([[slot.material.name if slot.material else "", slot.link]
                                     for slot in obj.material_slots])
        if not obj.material_slots:
            obj.data.materials.append(material)
        for slot in obj.material_slots:
            slot.link = "OBJECT"  # the object's own slot: a mesh shared with other scenes keeps its material
            slot.material = material


def remove(scene):
    """Every set object gets its own materials back; the layers, projectors and material go."""
    for obj in scene.objects:
        saved = obj.get(SAVED)
        if saved is None:
            continue
        kept = json.loads(saved)
        for slot, (name, link) in zip(obj.material_slots, kept):
            slot.link = link
            slot.material = bpy.data.materials.get(name) if name else None
        if not kept:  # an object that had no material: the slot it was given goes
            obj.data.materials.clear()
        del obj[SAVED]
    for layer in layers(scene):
        projector = bpy.data.objects.get(layer["projector"])
        if projector is not None:
            bpy.data.objects.remove(projector)
    if LAYERS in scene:
        del scene[LAYERS]
    material = bpy.data.materials.get(MATERIAL)
    if material is not None:
        bpy.data.materials.remove(material)


def render_view(scene, camera, coverage=False):
    """What `camera` sees of the painted set (H, W, 3 uint8), or with `coverage` where some
    layer paints it acceptably for this camera (H, W floats 0..1): one Cycles sample at each
    pixel's centre, the characters and our planes left out, colours as generated (Standard
    view, the pictures read as plain sRGB)."""
    material = bpy.data.materials.get(MATERIAL)
    if material is None or not layers(scene):
        raise UserError("the set has no projection yet: project a background onto it first (Shot > Set)")
    tree = material.node_tree
    emission = tree.nodes["emission"]
    color_link = emission.inputs["Color"].links[0].from_socket
    if coverage:
        tree.links.new(tree.nodes["coverage"].outputs[0], emission.inputs["Color"])
        model = joints.camera_model(scene, camera)
        tree.nodes["viewer_pixel"].outputs[0].default_value = set_projection.pixel_width(model)
        tree.nodes["viewer_ortho"].outputs[0].default_value = float(model.ortho)
    try:
        with passes.scratch_scene(scene, camera, "set.png", hide=characters(scene)) as (tmp, path):
            passes.exact_cycles(tmp)
            passes.plain_view(tmp)
            settings = tmp.render.image_settings
            settings.file_format, settings.color_mode, settings.color_depth = "PNG", "RGB", "8"
            tmp.render.filepath = path
            with view_colours.plain(scene):
                bpy.ops.render.render(write_still=True, scene=tmp.name)
            with open(path, "rb") as f:
                pixels = decode_png(f.read())[..., :3]
    finally:
        if coverage:
            tree.links.new(color_link, emission.inputs["Color"])
    return pixels[..., 0] / 255.0 if coverage else pixels
