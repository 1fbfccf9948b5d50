"""The one render behind every control map: depth and object index from Cycles at 1 sample;
and what every render of ours shares (`scratch_scene`: a throw-away copy of the scene, our
planes and what is asked left out, all restored after; `exact_cycles`: Cycles at each pixel's
centre; `plain_view`: colours as they are)."""

import contextlib
import os
import tempfile

import bpy
import numpy as np

from ...core.errors import UserError
from ..rig.joints import OUTPUT_ROLES
from ..rig.rig import ROLE

# ---------------------------------------------------------------------------------------------
# What every render of ours shares

# Character pass indices start here: above what users usually give their own objects, and
# exact in the half-float EXR (integers up to 2048).
INDEX_BASE = 1000


def exclude_our_planes(tmp):
    """Exclude the result-plane collection in the throw-away scene's view layer (the user's
    scene is untouched); returns the names of the objects that hides."""
    from ..generation.planes import SHOTS_COLLECTION

    def find(layer_collection):
        if layer_collection.collection.name == SHOTS_COLLECTION:
            return layer_collection
        for child in layer_collection.children:
            found = find(child)
            if found:
                return found
        return None

    found = find(tmp.view_layers[0].layer_collection)
    if found is None:
        return set()
    found.exclude = True
    return {o.name for o in found.collection.all_objects}


@contextlib.contextmanager
def scratch_scene(scene, camera, file_name, index_of=None, hide=()):
    """Yields (a throw-away copy of `scene` seen from `camera`, the path of a scratch file
    `file_name` in a folder of its own), so a render of ours leaves the user's render settings
    and compositor untouched. Our planes are excluded from the copy's view layer; `hide`:
    objects left out of the render; `index_of`: {object: pass index}. Objects are changed only
    where they must be and restored afterwards (our proxies keep their indices, and are shown:
    they stay out of the user's renders, not out of ours); the scratch file and its folder go."""
    saved = {}
    for obj, index in (index_of or {}).items():
        proxy = str(obj.get(ROLE, "")).startswith("proxy_")
        if obj.pass_index != index:
            if not proxy:
                saved[obj] = ("pass_index", obj.pass_index)
            obj.pass_index = index
        if proxy and obj.hide_render:
            saved[obj] = ("hide_render", True)
            obj.hide_render = False
    tmp = scene.copy()
    folder = tempfile.mkdtemp(prefix="characterforge-")
    path = os.path.join(folder, file_name)
    try:
        hidden = exclude_our_planes(tmp)
        for obj in hide:
            if obj.name not in hidden and not obj.hide_render:
                saved.setdefault(obj, ("hide_render", False))
                obj.hide_render = True
        tmp.camera = camera
        yield tmp, path
    finally:
        bpy.data.scenes.remove(tmp)
        for obj, (attribute, value) in saved.items():
            setattr(obj, attribute, value)
        try:
            os.remove(path)
        except OSError:
            pass
        os.rmdir(folder)


def exact_cycles(scene, samples=1, transparent=False, compositing=False):
    """Cycles on the CPU at `samples` sample(s) through each pixel's centre (exact object ids
    and depth), no denoising or adaptive sampling, no sequencer; the film `transparent` or not,
    the compositor on or off."""
    scene.render.engine = "CYCLES"
    cycles = scene.cycles
    cycles.device = "CPU"
    cycles.samples = samples
    cycles.use_denoising = False
    cycles.use_adaptive_sampling = False
    cycles.filter_width = 0.01  # sample pixel centres
    scene.render.film_transparent = transparent
    scene.render.use_compositing = compositing
    scene.render.use_sequencer = False


def plain_view(scene):
    """Colours as they are: the Standard view transform, no look, exposure 0, gamma 1, no
    curves, an sRGB display."""
    view = scene.view_settings
    view.view_transform, view.look, view.exposure, view.gamma = "Standard", "None", 0.0, 1.0
    view.use_curve_mapping = False
    scene.display_settings.display_device = "sRGB"


# ---------------------------------------------------------------------------------------------
# The one render: depth and object index

def _compositor(scene, motion=False):
    """Route Depth into red and Object Index into green of the output, for both 4.2 and 5.x;
    with `motion`, the Vector pass's motion to the previous frame into blue and alpha."""
    if hasattr(scene, "compositing_node_group"):  # Blender 5
        tree = bpy.data.node_groups.new(".characterforge_passes", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        scene.compositing_node_group = tree
        out = tree.nodes.new("NodeGroupOutput")
    else:  # Blender 4.2
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        out = tree.nodes.new("CompositorNodeComposite")
    layers = tree.nodes.new("CompositorNodeRLayers")
    layers.scene = scene
    combine = tree.nodes.new("CompositorNodeCombineColor")
    index = layers.outputs.get("Object Index") or layers.outputs["IndexOB"]
    tree.links.new(layers.outputs["Depth"], combine.inputs[0])
    tree.links.new(index, combine.inputs[1])
    if motion:
        vector = tree.nodes.new("CompositorNodeSeparateColor")
        tree.links.new(layers.outputs["Vector"], vector.inputs[0])
        tree.links.new(vector.outputs[0], combine.inputs[2])
        tree.links.new(vector.outputs[1], combine.inputs[3])
    tree.links.new(combine.outputs[0], out.inputs[0])
    return tree if hasattr(scene, "compositing_node_group") else None


def render_passes(scene, camera, index_of, hide=(), motion=False):
    """(depth, object index) arrays, rows top-down, for `camera` at the scene's resolution;
    with `motion` also (H, W, 2): Blender's Vector pass towards the previous frame, in pixels.

    `index_of`: {object: pass index}; `hide`: objects left out of this render, as are result
    planes (`scratch_scene`: in the usual case nothing of the user's is changed, and Blender
    has nothing to re-evaluate after the render).
    """
    hide = [o for o in scene.objects if o.get(ROLE) in OUTPUT_ROLES or o in hide]  # and result planes moved out
    with scratch_scene(scene, camera, "passes.exr", index_of, hide) as (tmp, path):
        group = image = None
        try:
            exact_cycles(tmp, compositing=True)
            layer = tmp.view_layers[0]
            layer.use_pass_z = True
            layer.use_pass_object_index = True
            if motion:
                layer.use_pass_vector = True
                tmp.render.use_motion_blur = False  # Cycles writes the Vector pass only without motion blur
            group = _compositor(tmp, motion)
            settings = tmp.render.image_settings
            settings.file_format = "OPEN_EXR"
            settings.color_mode = "RGBA" if motion else "RGB"
            settings.color_depth = "16"  # half floats: depth to 0.05 %, object ids exact up to 2048
            settings.exr_codec = "NONE"  # a scratch file read straight back: no time on compression
            tmp.render.filepath = path
            bpy.ops.render.render(write_still=True, scene=tmp.name, layer=layer.name)
            if not os.path.exists(path):
                raise UserError(f"Blender did not write the depth render to {path}")
            image = bpy.data.images.load(path)
            w, h = image.size
            buf = np.empty(w * h * 4, dtype=np.float32)
            image.pixels.foreach_get(buf)
            buf = buf.reshape(h, w, 4)[::-1]  # Blender stores rows bottom-up
            if motion:
                return buf[..., 0].astype(np.float64), buf[..., 1].copy(), buf[..., 2:4].astype(np.float64)
            return buf[..., 0].astype(np.float64), buf[..., 1].copy()
        finally:
            if image is not None:
                bpy.data.images.remove(image)
            if group is not None:
                bpy.data.node_groups.remove(group)
