"""A creature's or object's shape maps from the mesh itself: exact normals from Cycles' Normal
pass (one more render at 1 sample, beside `passes`' depth and object index) and line art
(core.maps.line_art: outlines and creases of that depth, those normals and the parts).

`freestyle_lines` draws the same lines with Blender's Freestyle instead; the benchmark
(blender_scripts/bench/bench_line_art.py) compares the two against a cube's true edges.
"""

import os

import bpy
import numpy as np

from ...core.errors import UserError
from ...core.maps import control_maps, line_art
from .passes import exact_cycles, scratch_scene


def _output(scene):
    """(node tree, the node whose first input is the render's output) for Blender 4.2 and 5.x."""
    if hasattr(scene, "compositing_node_group"):  # Blender 5
        tree = bpy.data.node_groups.new(".characterforge_shape", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        return tree, tree.nodes.new("NodeGroupOutput"), tree
    scene.use_nodes = True
    tree = scene.node_tree
    tree.nodes.clear()
    return tree, tree.nodes.new("CompositorNodeComposite"), None


def _render(scene, camera, hide, setup, link):
    """Render a throw-away copy of `scene` from `camera` (passes.scratch_scene, Cycles at 1
    sample at pixel centres, `hide` left out), `setup(tmp, layer)` before, `link(tree,
    render_layers, output)` routing the output; returns its RGBA float pixels, rows top-down."""
    with scratch_scene(scene, camera, "shape.exr", hide=hide) as (tmp, path):
        group = image = None
        try:
            exact_cycles(tmp, transparent=True, compositing=True)
            layer = tmp.view_layers[0]
            setup(tmp, layer)
            tree, out, group = _output(tmp)
            layers = tree.nodes.new("CompositorNodeRLayers")
            layers.scene = tmp
            link(tree, layers, out)
            settings = tmp.render.image_settings
            settings.file_format = "OPEN_EXR"
            settings.color_mode = "RGBA"
            settings.color_depth = "32"
            settings.exr_codec = "NONE"
            tmp.render.filepath = path
            bpy.ops.render.render(write_still=True, scene=tmp.name, layer=layer.name)
            if not os.path.exists(path):
                raise UserError(f"Blender did not write the normal render to {path}")
            image = bpy.data.images.load(path)
            w, h = image.size
            buf = np.empty(w * h * 4, dtype=np.float32)
            image.pixels.foreach_get(buf)
            return buf.reshape(h, w, 4)[::-1].astype(np.float64)
        finally:
            if image is not None:
                bpy.data.images.remove(image)
            if group is not None:
                bpy.data.node_groups.remove(group)


def render_normals(scene, camera, hide=()):
    """Camera-space unit normals (H x W x 3: x right, y up, z towards the camera) of what
    `camera` sees, from Cycles' Normal pass (the shading normals: smooth where the mesh is
    smooth-shaded, exact on flat faces); zeros where nothing is."""
    def setup(tmp, layer):
        layer.use_pass_normal = True

    def link(tree, layers, out):
        tree.links.new(layers.outputs["Normal"], out.inputs[0])

    world = _render(scene, camera, hide, setup, link)[..., :3]
    rotation = np.array(camera.matrix_world.to_3x3().normalized())  # columns: the camera's axes in the world
    return world @ rotation  # each normal's components along the camera's x, y, z


def shape_maps(depth, normals, ids, shown, width=1):
    """{name: HxW(x3) uint8} depth, normal and line-art maps of the pixels `shown` (a
    character's), from one view's depth, normals and object ids."""
    return {"depth": control_maps.depth_image(depth, shown),
            "normal": control_maps.encode_normals(normals, shown),
            "lineart": line_art.line_art(np.where(shown, depth, 1e10), normals, ids, width=width)}


def freestyle_lines(scene, camera, hide=(), thickness=1.0, crease_deg=line_art.CREASE_DEG):
    """Line art (H x W uint8, 255 on lines) drawn by Freestyle (silhouettes, borders, creases
    sharper than `crease_deg`), rendered as its own pass."""
    def setup(tmp, layer):
        tmp.render.use_freestyle = True
        tmp.render.line_thickness_mode = "ABSOLUTE"
        tmp.render.line_thickness = thickness
        layer.use_freestyle = True
        settings = layer.freestyle_settings
        settings.as_render_pass = True
        settings.crease_angle = np.radians(180.0 - crease_deg)
        if not settings.linesets:
            settings.linesets.new("CharacterForge lines")
        for lineset in settings.linesets:
            lineset.select_silhouette = lineset.select_border = lineset.select_crease = True
            if lineset.linestyle is None:
                lineset.linestyle = bpy.data.linestyles.get(".characterforge_lines") or bpy.data.linestyles.new(
                    ".characterforge_lines")
            lineset.linestyle.thickness = thickness

    def link(tree, layers, out):
        tree.links.new(layers.outputs["Freestyle"], out.inputs[0])

    alpha = _render(scene, camera, hide, setup, link)[..., 3]
    return np.where(alpha > 0.5, np.uint8(255), np.uint8(0))
