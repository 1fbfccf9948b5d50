"""Paint a character's model from its sheet: the sheet's views projected onto the mesh in the
sheet's pose and baked into a UV texture, the holes no view reached filled by generation, and
the texture shown by a material on the user's own model (core.characters.model_paint has the
blending rule and the numbers).

The work happens in a throw-away scene holding copies of the rig and its meshes (the meshes'
data copied too), posed as the sheet showed them: Blender's bake gives every texel's world
position and normal there, one depth render per view tells which texels each view saw, and
numpy blends the views. A fill renders the painted copy from the camera that sees the holes
most squarely and sends a `background` job with `fill` (only the holes are made, every other
pixel kept); its picture is projected back onto the holes alone, and the texture is written
again. The user's objects get a material per object (their own materials kept on the object
and put back by `remove`), a UV map made by Smart UV Project when they have none, and the
texture files live in the character's pack, `texture/<object>.png`.
"""

import contextlib
import functools
import json
import math
import os
import tempfile
import time

import bpy
import numpy as np

from ...core.characters import identity_pack, sheet_layout
from ...core.characters import model_paint as rule
from ...core.errors import UserError
from ...core.image_io import decode_png, encode_png, write_atomic
from ...core.maps import control_maps
from ...core.maps.control_maps import BACKGROUND_DEPTH
from ...core.spec.job_spec import background_spec
from .. import preferences
from ..generation import jobs, view_colours
from ..generation.job_inputs import pick_seed
from ..maps.passes import exact_cycles, INDEX_BASE, plain_view, render_passes
from ..rig.posing import apply_channels, apply_library_pose
from ..rig.rig import ROLE, character_meshes, is_characterforge_rig
from .sheet import character_axes, character_points, copy_character, face_points, place_camera

UV_MAP = "CharacterForge Paint"
MATERIAL = "CharacterForge Paint"  # one per object: "CharacterForge Paint (<object>)"
SAVED = "characterforge_paint_materials"  # on each painted object: its own [material, link] by slot
PAINTED = "characterforge_painted"  # on each painted object: JSON of what painted it
SHOWN_PROXY = "characterforge_paint_shown"  # on a rig's proxy painted: it renders until the paint is removed
FILL_GROW_PX = 2
MIN_FILL_SHARE = 0.002  # holes under this share of the texels are closed from their neighbours, not generated
GREY = (128, 128, 128)  # what a fill's picture shows around the model


# ---------------------------------------------------------------------------------------------
# What is painted, from which sheet

def character_of(obj):
    """(rig or None, the meshes to paint, every mesh of the character) for the selected object:
    a rig paints every mesh it drives; a mesh paints itself (its rig's other meshes still hide
    what they cover); a mesh without a rig is painted in its rest shape."""
    if obj is None:
        raise UserError("select the model to paint (a mesh) or its rig (an armature)")
    if obj.type == "ARMATURE":
        body, hands = character_meshes(obj)
        if not body + hands:
            raise UserError(f"armature '{obj.name}' drives no mesh: bind your model to it (select the model, then "
                            "the armature, Ctrl+P > With Automatic Weights) or select the model itself")
        return obj, body + hands, body + hands
    if obj.type != "MESH":
        raise UserError(f"'{obj.name}' is a {obj.type.lower()}: select the model to paint (a mesh) or its rig")
    rig = next((m.object for m in obj.modifiers if m.type == "ARMATURE" and m.object is not None), None)
    if rig is None and obj.parent is not None and obj.parent.type == "ARMATURE":
        rig = obj.parent
    if rig is None:
        return None, [obj], [obj]
    body, hands = character_meshes(rig)
    return rig, [obj], body + hands


def load_sheet(folder, layout_path=None):
    """(manifest, sheet record, sheet picture (H, W, 3)) of the pack in `folder`; the record
    from `layout_path` (a sheet's maps/sheet.json) when given, else the pack's own."""
    manifest = identity_pack.load_pack(folder)
    if layout_path:
        try:
            with open(bpy.path.abspath(layout_path), encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read the sheet layout {layout_path} ({exc}): give the sheet's maps/sheet.json") \
                from None
    else:
        record = identity_pack.sheet_layout_record(folder)
    views = record.get("views") if isinstance(record, dict) else None
    if not views or not all(isinstance(v, dict) and {"name", "kind", "yaw", "cell"} <= set(v) for v in views):
        raise UserError(f"the sheet layout of {manifest['name']!r} lists no views with cells: make the sheet again")
    if not isinstance(record.get("size"), list) or len(record["size"]) != 2:
        raise UserError(f"the sheet layout of {manifest['name']!r} has no sheet size: make the sheet again")
    with open(os.path.join(folder, manifest["sheet"]), "rb") as f:
        picture = decode_png(f.read())[..., :3]
    return manifest, record, picture


# ---------------------------------------------------------------------------------------------
# The throw-away scene: copies of the character in the sheet's pose

class Stage:
    def __init__(self, scene, actor, copies, camera, pose):
        self.scene, self.actor, self.copies, self.camera, self.pose = scene, actor, copies, camera, pose

    def render_at(self, camera, resolution):
        self.scene.render.resolution_x, self.scene.render.resolution_y = resolution
        place_camera(self.camera, camera)
        self.scene.view_layers[0].update()


@contextlib.contextmanager
def sheet_pose(context, rig, meshes, record):
    """A throw-away scene with copies of `meshes` (and of `rig`, posed as the sheet's record
    says); yields a Stage whose `copies` map each original's name to its copy."""
    scene = bpy.data.scenes.new(".characterforge_paint")
    camera = bpy.data.objects.new(".characterforge_paint_camera", bpy.data.cameras.new(".characterforge_paint_camera"))
    objects, datas = [], []
    try:
        if rig is not None:
            actor, copies = copy_character(rig, meshes)
            objects, copies = copies, copies[1:]
        else:
            actor, copies = None, [m.copy() for m in meshes]
            objects = list(copies)
        for dup in copies:  # baking changes a mesh's materials and UV selection: never the user's data
            dup.data = dup.data.copy()
            datas.append(dup.data)
            dup.hide_render = False  # a rig's proxy stays out of the user's renders, not out of these
        for obj in [*objects, camera]:
            scene.collection.objects.link(obj)
        scene.camera = camera
        scene.render.resolution_percentage = 100
        scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
        # one sample at each pixel's (and texel's) centre: the bake reads positions, the renders exact colours
        exact_cycles(scene)
        scene.view_settings.view_transform = "Standard"
        camera.data.type = "ORTHO"
        pose = _pose(context, actor, record) if actor is not None else "its rest shape (no rig)"
        scene.view_layers[0].update()
        yield Stage(scene, actor, {m.name: c for m, c in zip(meshes, copies)}, camera, pose)
    finally:
        bpy.data.scenes.remove(scene)
        cam_data = camera.data
        bpy.data.objects.remove(camera)
        bpy.data.cameras.remove(cam_data)
        for obj in reversed(objects):
            bpy.data.objects.remove(obj)
        for data in datas:
            bpy.data.meshes.remove(data)


def _pose(context, actor, record):
    """Pose the rig's copy as the sheet showed it; says which pose that is."""
    channels = record.get("pose_channels") or {}
    if channels and sum(name in actor.pose.bones for name in channels) >= 0.8 * len(channels):
        apply_channels(actor, channels)
        return f"the sheet's pose ({record.get('pose', '?')})"
    library = sheet_layout.SHEET_POSES.get(record.get("pose"))
    if library and is_characterforge_rig(actor):
        apply_library_pose(context, actor, library)
        return f"the library pose of the sheet ({record['pose']})"
    return "the rig's current pose (the sheet's pose does not fit this rig)"


def view_cameras(stage, rig, record):
    """({view name: sheet_layout.ViewCamera}, how they were found): the cameras the sheet kept,
    moved with the rig since, when this is the sheet's own rig; else the sheet's framing rule
    applied to this model (body views; face views where its rig maps a head)."""
    views = [v for v in record["views"] if v.get("cell")]
    if (rig is not None and record.get("character") == rig.name and "rig_matrix" in record
            and all("camera" in v for v in views)):
        then = np.asarray(record["rig_matrix"], float).reshape(4, 4)
        moved = np.asarray(rig.matrix_world) @ np.linalg.inv(then)
        return ({v["name"]: sheet_layout.ViewCamera.from_record(v["name"], v["camera"], moved) for v in views},
                "the sheet's own cameras")
    depsgraph = stage.scene.view_layers[0].depsgraph
    source = stage.actor if stage.actor is not None else next(iter(stage.copies.values()))
    up, front = character_axes(source)
    points = character_points(depsgraph, stage.actor, list(stage.copies.values()))
    faces, note = None, "the sheet's framing applied to this model"
    if any(v["kind"] != "body" for v in views):
        try:
            faces = face_points(stage.actor) if stage.actor is not None else None
        except UserError:
            faces = None
        if faces is None:
            views = [v for v in views if v["kind"] == "body"]
            note += " (face views left out: no head joints to frame them)"
    layout_views = [sheet_layout.View(v["name"], v["kind"], float(v["yaw"]), tuple(v["cell"])) for v in views]
    cameras, _ = sheet_layout.frame_views(points, up, front, layout_views, faces)
    return cameras, note


def view_projection(stage, view, camera, picture, record):
    """The sheet's `view` as a projection: its cell cut from `picture` (the sheet at any
    upscale), its camera at the cut's size, and the model's depth seen from it."""
    (width, height), (ph, pw) = record["size"], picture.shape[:2]
    fx, fy = pw / width, ph / height
    x0, y0, x1, y1 = view["cell"]
    x0, x1, y0, y1 = (int(round(x0 * fx)), int(round(x1 * fx)), int(round(y0 * fy)), int(round(y1 * fy)))
    crop = picture[y0:y1, x0:x1]
    h, w = crop.shape[:2]
    if w < 8 or h < 8:
        raise UserError(f"view {view['name']}: its cell {view['cell']} lies outside the {pw}x{ph} sheet: the sheet "
                        "layout does not belong to this sheet")
    stage.render_at(camera, (w, h))
    depth, _ = render_passes(stage.scene, stage.camera, {})
    model = rule.ortho_camera(camera.matrix, camera.ortho_scale, (w, h), camera.clip[0])
    region = (np.asarray(camera.target), rule.FACE_REGION * camera.ortho_scale) if view["kind"] != "body" else None
    return rule.Projection(view["name"], view["kind"], model, np.ascontiguousarray(crop), depth, region)


# ---------------------------------------------------------------------------------------------
# UV maps and the bake of each texel's position and normal

def uv_triangles(mesh, name):
    """(T, 3, 2) the UVs of each of the mesh's triangles in its UV map `name`."""
    mesh.calc_loop_triangles()
    loops = np.empty(len(mesh.loop_triangles) * 3, np.int64)
    mesh.loop_triangles.foreach_get("loops", loops)
    uv = np.empty(len(mesh.loops) * 2, np.float32)
    mesh.uv_layers[name].data.foreach_get("uv", uv)
    return uv.reshape(-1, 2)[loops].reshape(-1, 3, 2)


def ensure_uv(context, obj):
    """(UV map name, whether it was made now, why): the mesh's active render UV map, or a new
    one by Smart UV Project when it has none or when faces lie on top of each other in it
    (mirrored or stacked: one texel cannot hold what two faces show; theirs is kept)."""
    mesh = obj.data
    why = None
    if len(mesh.uv_layers):
        layer = next((uv for uv in mesh.uv_layers if uv.active_render), mesh.uv_layers[0])
        stacked = rule.stacked_share(uv_triangles(mesh, layer.name))
        if stacked <= rule.UV_STACKED:
            return layer.name, False, None
        why = (f"{stacked:.0%} of the texels of '{obj.name}''s UV map '{layer.name}' lie under two faces or more "
               f"(mirrored or stacked); painted through a new UV map '{UV_MAP}' (yours kept)")
        if UV_MAP in mesh.uv_layers:  # ours from before, the user's made active again since: made anew
            mesh.uv_layers.remove(mesh.uv_layers[UV_MAP])
    layer = mesh.uv_layers.new(name=UV_MAP, do_init=False)
    if layer is None:
        raise UserError(f"'{obj.name}' has {len(mesh.uv_layers)} UV maps, the most Blender keeps: remove one so a "
                        f"UV map for the paint can be made{' (' + why + ')' if why else ''}")
    mesh.uv_layers.active = layer  # Smart UV Project fills the active one
    view_layer = context.view_layer
    if obj.name not in view_layer.objects:
        raise UserError(f"'{obj.name}' is not in the current view layer: Smart UV Project needs it there")
    previous, selectable, hidden = view_layer.objects.active, obj.hide_select, obj.hide_get()
    obj.hide_select = False
    obj.hide_set(False)  # edit mode needs it shown (hidden by the user, or a proxy kept out of sight)
    try:
        with context.temp_override(active_object=obj, object=obj, selected_objects=[obj], edit_object=obj):
            view_layer.objects.active = obj
            bpy.ops.object.mode_set(mode="EDIT")
            bpy.ops.mesh.select_all(action="SELECT")
            bpy.ops.uv.smart_project(angle_limit=math.radians(66), island_margin=0.02)
            bpy.ops.object.mode_set(mode="OBJECT")
    except RuntimeError as exc:
        raise UserError(f"'{obj.name}' could not be unwrapped ({exc}): show it in the viewport (not only in renders) "
                        "or give it a UV map yourself (UV > Smart UV Project)") from None
    finally:
        obj.hide_select = selectable
        obj.hide_set(hidden)
        view_layer.objects.active = previous
    return UV_MAP, True, why


def _node_material(name, material=None):
    """`material`, or a new one named `name`, with a node tree (Blender 4.2 makes one on request)."""
    material = material or bpy.data.materials.new(name)
    if material.node_tree is None:
        material.use_nodes = True
    return material


def _float_image(name, size):
    image = bpy.data.images.new(name, size, size, alpha=True, float_buffer=True, is_data=True)
    image.colorspace_settings.name = "Non-Color"
    image.pixels.foreach_set(np.zeros(size * size * 4, np.float32))  # alpha 0: the bake marks what it covers
    return image


def bake_geometry(stage, copy, uv_name, size):
    """(texels, points, normals, area): the flat indices (rows bottom-up, as Blender stores
    images) of the texels the copy's UV map covers, their world positions and unit normals in
    the stage's pose, and the copy's surface area (world units²)."""
    mesh = copy.data
    mesh.uv_layers.active = mesh.uv_layers[uv_name]
    mesh.uv_layers[uv_name].active_render = True
    material = _node_material(".characterforge_bake")
    images = [_float_image(".characterforge_bake_position", size), _float_image(".characterforge_bake_normal", size)]
    try:
        tree = material.node_tree
        tree.nodes.clear()
        geometry = tree.nodes.new("ShaderNodeNewGeometry")
        emission = tree.nodes.new("ShaderNodeEmission")
        out = tree.nodes.new("ShaderNodeOutputMaterial")
        tree.links.new(emission.outputs[0], out.inputs["Surface"])
        target = tree.nodes.new("ShaderNodeTexImage")
        tree.nodes.active = target
        mesh.materials.clear()
        mesh.materials.append(material)
        for slot in copy.material_slots:
            slot.link = "DATA"
        layer = stage.scene.view_layers[0]
        for obj in stage.scene.objects:
            obj.select_set(obj == copy, view_layer=layer)
        layer.objects.active = copy
        arrays = []
        for output, image in zip(("Position", "Normal"), images):
            tree.links.new(geometry.outputs[output], emission.inputs["Color"])
            target.image = image
            with bpy.context.temp_override(scene=stage.scene, view_layer=layer, active_object=copy, object=copy,
                                           selected_objects=[copy]):
                bpy.ops.object.bake(type="EMIT", margin=0, use_clear=False, target="IMAGE_TEXTURES")
            pixels = np.empty(size * size * 4, np.float32)
            image.pixels.foreach_get(pixels)
            arrays.append(pixels.reshape(-1, 4))
        texels = np.flatnonzero(arrays[0][:, 3] > 0.5)
        points = arrays[0][texels, :3].astype(float)
        normals = arrays[1][texels, :3].astype(float)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
        evaluated = copy.evaluated_get(layer.depsgraph)
        m = np.asarray(evaluated.matrix_world)[:3, :3]
        area = float(sum(p.area for p in evaluated.data.polygons)) * abs(np.linalg.det(m)) ** (2 / 3)
        return texels, points, normals, area
    finally:
        mesh.materials.clear()
        for image in images:
            bpy.data.images.remove(image)
        bpy.data.materials.remove(material)


# ---------------------------------------------------------------------------------------------
# Renders of the painted copies (fills, checks)

def render_painted(stage, camera, resolution, textures, data=False):
    """(H, W, 4) uint8: the copies showing `textures` ({original name: (size, size, 3) uint8,
    rows bottom-up}; a copy without one is dark grey) seen by `camera` (a ViewCamera), one
    Cycles sample at each pixel's centre, colours as painted (Standard view), transparent
    where no copy is; `data`: the textures are numbers (nearest texel, no colour management)."""
    scene = stage.scene
    stage.render_at(camera, resolution)
    made = []
    folder = tempfile.mkdtemp(prefix="characterforge-paint-")
    path = os.path.join(folder, "painted.png")
    try:
        for name, copy in stage.copies.items():
            pixels = textures.get(name)
            material = _node_material(f".characterforge_paint_{name}")
            image = None
            tree = material.node_tree
            tree.nodes.clear()
            emission = tree.nodes.new("ShaderNodeEmission")
            out = tree.nodes.new("ShaderNodeOutputMaterial")
            tree.links.new(emission.outputs[0], out.inputs["Surface"])
            if pixels is None or not len(copy.data.uv_layers):  # a mesh not painted: plain grey, it only hides
                emission.inputs["Color"].default_value = (0.2, 0.2, 0.2, 1.0)
            else:
                size = pixels.shape[0]
                image = bpy.data.images.new(f".characterforge_paint_{name}", size, size, alpha=True)
                image.colorspace_settings.name = "Non-Color" if data else "sRGB"
                rgba = np.concatenate([pixels, np.full(pixels.shape[:2] + (1,), 255, np.uint8)], -1)
                image.pixels.foreach_set((rgba.astype(np.float32) / 255.0).ravel())
                uv = tree.nodes.new("ShaderNodeUVMap")
                uv.uv_map = copy.data.uv_layers.active.name
                tex = tree.nodes.new("ShaderNodeTexImage")
                tex.image, tex.interpolation, tex.extension = image, "Closest" if data else "Linear", "EXTEND"
                tree.links.new(uv.outputs[0], tex.inputs["Vector"])
                tree.links.new(tex.outputs["Color"], emission.inputs["Color"])
            made.append((image, material))
            copy.data.materials.clear()
            copy.data.materials.append(material)
            for slot in copy.material_slots:
                slot.link = "DATA"
        exact_cycles(scene, transparent=True)
        plain_view(scene)
        settings = scene.render.image_settings
        settings.file_format, settings.color_mode, settings.color_depth = "PNG", "RGBA", "8"
        scene.render.filepath = path
        bpy.ops.render.render(write_still=True, scene=scene.name)
        with open(path, "rb") as f:
            return decode_png(f.read())
    finally:
        for copy in stage.copies.values():
            copy.data.materials.clear()
        for image, material in made:
            if image is not None:
                bpy.data.images.remove(image)
            bpy.data.materials.remove(material)
        if os.path.exists(path):
            os.remove(path)
        os.rmdir(folder)


# ---------------------------------------------------------------------------------------------
# The painting: the sheet's views, then fills, written as textures after every step

class Painting:
    """One model painted from one sheet, kept between the fill jobs (numpy only: no Blender data)."""

    def __init__(self, folder, manifest, record, picture, rig, meshes, occluders, size, shading, fill, fill_size,
                 max_fills):
        self.folder, self.manifest, self.record, self.picture = folder, manifest, record, picture
        self.rig = rig.name if rig is not None else None
        self.meshes, self.occluders = [m.name for m in meshes], [m.name for m in occluders]
        self.size, self.shading, self.fill, self.fill_size, self.max_fills = size, shading, fill, fill_size, max_fills
        self.uv, self.texels, self.slices = {}, {}, {}  # per mesh: (UV map, made now), covered texels, their slice
        self.points = self.normals = None  # (N, 3) every covered texel's position and normal in the sheet's pose
        self.up = self.front = self.spacing = self.cameras = None
        self.base = None  # the sheet's views blended (a core Blend)
        self.layers = []  # what painted the holes since, in order: fills and texels closed from their neighbours
        self.fill_records, self.closed = [], 0
        self.reachable = None  # (N,) the texels some fill camera could see (computed at the first fill)
        self.tried = None  # (N,) the texels a fill camera aimed at but did not paint: not aimed at again
        self.report = {}

    @property
    def texture_dir(self):
        return os.path.join(self.folder, identity_pack.TEXTURES)

    def texture_path(self, name):
        return os.path.join(self.texture_dir, f"{bpy.path.clean_name(name)}.png")

    def close(self, only=None):
        """Close holes from their painted neighbours in each texture (`only`: just these texels),
        as one more layer of the painting; returns how many were closed."""
        done = self.result()
        colours = done.colours.copy()
        closed = np.zeros(len(colours), bool)
        for name in self.meshes:
            sl = self.slices[name]
            if done.painted[sl].all() or not done.painted[sl].any():
                continue  # a mesh no view reached at all stays magenta: nothing to take colours from
            colours[sl], closed[sl] = rule.close_holes(self.size, self.texels[name], done.colours[sl], done.painted[sl],
                                                       None if only is None else only[sl])
        if closed.any():
            self.layers.append(rule.Blend(colours, closed.astype(float), closed, np.where(closed, 0, -1),
                                         ["closed from neighbours"]))
        self.closed += int(closed.sum())
        return int(closed.sum())

    def result(self):
        return rule.combine(self.base, self.layers)

    def holes(self):
        return ~self.result().painted

    def textures(self, colours=None, painted=None):
        """{object name: (size, size, 3) uint8, rows bottom-up} of the current painting."""
        done = self.result()
        colours = done.colours if colours is None else colours
        painted = done.painted if painted is None else painted
        out = {}
        for name in self.meshes:
            sl = self.slices[name]
            out[name] = rule.texture(self.size, self.texels[name], colours[sl], painted[sl])
        return out


def _objects(scene, names):
    out = []
    for name in names:
        obj = scene.objects.get(name)
        if obj is None:
            raise UserError(f"'{name}' is no longer in scene '{scene.name}': paint the model again")
        out.append(obj)
    return out


def paint(context, folder, obj, size=1024, shading="EMISSION", fill="GENERATE", fill_size=512,
          max_fills=rule.MAX_FILLS, layout_path=None):
    """Paint the selected model (`obj`: a mesh or its rig) from the sheet of the pack in
    `folder`; the textures and the material are there when this returns, holes magenta, and
    with `fill` "GENERATE" the first fill job is started (each one starts the next). Returns
    (Painting, message)."""
    if size not in rule.TEXTURE_SIZES:
        raise UserError(f"texture size {size} must be one of {', '.join(map(str, rule.TEXTURE_SIZES))} pixels")
    if shading not in {s[0] for s in rule.SHADINGS} or fill not in {f[0] for f in rule.FILLS}:
        raise UserError(f"shading {shading!r} or fill {fill!r} is not one of {[s[0] for s in rule.SHADINGS]} and "
                        f"{[f[0] for f in rule.FILLS]}")
    if fill == "GENERATE" and (fill_size % 64 or not 128 <= fill_size <= 2048):
        raise UserError(f"fill size {fill_size} must be a multiple of 64 from 128 to 2048 pixels")
    if not 0 <= max_fills <= 16:
        raise UserError(f"{max_fills} fills: use 0 to 16")
    start = time.perf_counter()
    rig, meshes, occluders = character_of(obj)
    manifest, record, picture = load_sheet(folder, layout_path)
    if context.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    painting = Painting(folder, manifest, record, picture, rig, meshes, occluders, size, shading, fill, fill_size,
                        max_fills)
    unstacked = []
    for mesh in meshes:
        uv_map, made, why = ensure_uv(context, mesh)
        if why:
            unstacked.append(why)
        before = json.loads(mesh.get(PAINTED, "{}"))  # painted before: a UV map made then is still ours
        painting.uv[mesh.name] = (uv_map, made or (before.get("uv_made", False) and before.get("uv_map") == uv_map))
    context.view_layer.update()
    points, normals, area = [], [], 0.0
    with sheet_pose(context, rig, occluders, record) as stage:
        timings = {}
        t = time.perf_counter()
        offset = 0
        for mesh in meshes:
            texels, p, n, a = bake_geometry(stage, stage.copies[mesh.name], painting.uv[mesh.name][0], size)
            painting.texels[mesh.name], painting.slices[mesh.name] = texels, slice(offset, offset + len(texels))
            offset += len(texels)
            points.append(p)
            normals.append(n)
            area += a
        timings["bake_s"] = round(time.perf_counter() - t, 2)
        if offset == 0:
            raise UserError(f"the UV map of {', '.join(painting.meshes)} covers no texel: unwrap the model (UV > Smart "
                            "UV Project) or remove its empty UV map")
        t = time.perf_counter()
        cameras, found = view_cameras(stage, rig, record)
        views = [view_projection(stage, v, cameras[v["name"]], picture, record)
                 for v in record["views"] if v["name"] in cameras]
        timings["view_depth_s"] = round(time.perf_counter() - t, 2)
        source = stage.actor if stage.actor is not None else stage.copies[meshes[0].name]
        painting.up, painting.front = character_axes(source)
        pose = stage.pose
    painting.points, painting.normals = np.concatenate(points), np.concatenate(normals)
    painting.spacing = math.sqrt(area / len(painting.points))
    painting.cameras = cameras
    t = time.perf_counter()
    painting.base = rule.blend(painting.points, painting.normals, views)
    holes = float(painting.holes().mean())
    if fill != "NONE":  # seams where parts meet: closed from their neighbours, not worth a generation
        thin = np.zeros(len(painting.points), bool)
        for name in painting.meshes:
            sl = painting.slices[name]
            thin[sl] = rule.thin_holes(size, painting.texels[name], painting.holes()[sl], painting.spacing)
        painting.close(thin)
    timings["blend_s"] = round(time.perf_counter() - t, 2)
    painting.report = {"sheet": manifest["sheet"], "character": manifest["name"], "cameras": found, "pose": pose,
                       "texture_size": size, "texels": int(len(painting.points)), "views": painting.base.shares(),
                       "holes_after_views": round(holes, 4), "thin_holes_closed": painting.closed,
                       "uv_maps_made_for_stacked_faces": unstacked,
                       "timings": timings}
    t = time.perf_counter()
    _write(context.scene, painting)
    timings["write_s"] = round(time.perf_counter() - t, 2)
    timings["paint_s"] = round(time.perf_counter() - start, 2)
    _save_report(painting)
    message = "; ".join([f"Painted {', '.join(painting.meshes)} from {len(views)} views of {manifest['name']}'s "
                         f"sheet ({found}); {holes:.1%} of the texels were not reached"] + unstacked)
    return painting, message + "; " + next_step(context, painting)


def next_step(context, painting):
    """Start the next fill job, or finish (close what is left from the neighbours, as `fill`
    says); returns what happened, for the panel."""
    holes = painting.holes()
    if not holes.any():
        return _finish(context.scene, painting, "no hole left")
    if painting.fill != "GENERATE":
        return _finish(context.scene, painting, "")
    pixel = max(2.5 * painting.spacing, np.ptp(painting.points, axis=0).max() / 512)
    if painting.reachable is None:
        painting.reachable = rule.reachable(painting.points, painting.normals, painting.up, painting.front, pixel)
    if painting.tried is None:
        painting.tried = np.zeros(len(holes), bool)
    wanted = holes & painting.reachable & ~painting.tried
    if len(painting.fill_records) >= painting.max_fills or wanted.mean() < MIN_FILL_SHARE:
        return _finish(context.scene, painting, f"{wanted.mean():.2%} of the texels left to fill after "
                                                f"{len(painting.fill_records)} fill(s)")
    direction, targets = rule.choose_fill_view(painting.points, painting.normals, wanted, painting.up, painting.front,
                                               pixel)
    if direction is None:
        return _finish(context.scene, painting, "no camera sees the holes squarely")
    matrix, scale, clip, target = rule.frame_fill(painting.points, targets, direction, painting.up, painting.front)
    n = len(painting.fill_records) + 1
    camera = sheet_layout.ViewCamera(f"fill {n}", matrix, scale, target, clip)
    resolution = (painting.fill_size, painting.fill_size)
    rig = context.scene.objects.get(painting.rig) if painting.rig else None
    with sheet_pose(context, rig, _objects(context.scene, painting.occluders), painting.record) as stage:
        painted = render_painted(stage, camera, resolution, painting.textures())
        covered = painting.result().painted.astype(np.uint8) * 255
        coverage = render_painted(stage, camera, resolution,
                                  painting.textures(np.repeat(covered[:, None], 3, 1).astype(float),
                                                    np.ones(len(covered), bool)), data=True)
        stage.render_at(camera, resolution)
        depth, _ = render_passes(stage.scene, stage.camera, {})
    surface = depth < BACKGROUND_DEPTH
    mask = surface & (coverage[..., 0] < 128) & (coverage[..., 3] > 127)
    if not mask.any():  # the holes it aimed at do not show from there after all
        painting.tried |= targets
        return next_step(context, painting)
    # two pixels more, so holes thinner than a pixel are claimed too (the fill paints holes only)
    mask = surface & rule.grow(mask, FILL_GROW_PX)
    alpha = painted[..., 3:4].astype(float) / 255.0
    context_picture = np.rint(painted[..., :3] * alpha + np.array(GREY) * (1 - alpha)).astype(np.uint8)
    s = context.scene.characterforge
    seed = pick_seed(s)
    prompt = painting.manifest.get("prompt", "").strip() or s.prompt.strip()  # the sheet's style says "turnaround"
    if not prompt:
        raise UserError(f"character {painting.manifest['name']!r} keeps no prompt: write what it looks like in the "
                        "Prompt field, it guides what fills the holes")
    spec = background_spec(prompt, resolution[0], resolution[1], encode_png(control_maps.depth_image(depth, surface)),
                           s.depth_strength, painting.manifest.get("negative_prompt", "") or s.negative_prompt, seed,
                           s.steps, s.guidance, preferences.job_profile(context),
                           name=f"model_fill{n}_seed{seed}", sharp=False,
                           fill=(encode_png(context_picture), encode_png(np.where(mask, np.uint8(255), np.uint8(0)))))
    out_dir = os.path.join(painting.texture_dir, "fills")
    os.makedirs(out_dir, exist_ok=True)
    write_atomic(os.path.join(out_dir, f"fill{n}_context.png"), encode_png(context_picture))
    write_atomic(os.path.join(out_dir, f"fill{n}_mask.png"), encode_png(np.where(mask, np.uint8(255), np.uint8(0))))
    record = {"camera": camera.record(), "direction": [round(float(v), 4) for v in direction],
              "holes_before": round(float(holes.mean()), 4), "mask_pixels": int(mask.sum()), "seed": seed,
              "picture": f"{identity_pack.TEXTURES}/fills/{spec['name']}.png"}
    jobs.start(context, spec, out_dir, functools.partial(place_fill, painting, camera, depth, mask, record, targets))
    return (f"{wanted.mean():.1%} of the texels left to fill: fill {n} from "
            f"{_direction_name(direction, painting.up, painting.front)}")


def place_fill(painting, camera, depth, mask, record, targets, scene, files, job_id):
    """Main thread, when a fill job ends: its picture projected onto the holes it made, the
    textures written again, and the next fill started (or the painting finished)."""
    with open(files[0], "rb") as f:
        picture = decode_png(f.read())[..., :3]
    h, w = mask.shape
    if picture.shape[:2] != (h, w):
        raise UserError(f"the fill came back {picture.shape[1]}x{picture.shape[0]}, not {w}x{h}: paint the model again")
    model = rule.ortho_camera(camera.matrix, camera.ortho_scale, (w, h), camera.clip[0])
    view = rule.Projection(camera.name, "fill", model, picture, depth, claimed=mask)
    holes = painting.holes()
    blended = rule.blend(painting.points, painting.normals, [view], only=holes)
    painting.layers.append(blended)
    painting.tried |= targets & ~blended.painted
    record["filled"] = round(float((blended.painted & holes).sum() / max(len(holes), 1)), 4)
    record["holes_after"] = round(float(painting.holes().mean()), 4)
    record["job_id"] = job_id
    painting.fill_records.append(record)
    painting.report["fills"] = painting.fill_records
    _write(scene, painting)
    _save_report(painting)
    done = f"fill {len(painting.fill_records)} painted {record['filled']:.1%} of the texels"
    return f"{done}; " + next_step(bpy.context, painting)


def _finish(scene, painting, why):
    """Close the holes left from their neighbours (unless they are to stay magenta), write the
    textures and the report; returns the summary."""
    left = int(painting.holes().sum())
    closed = ""
    if left and painting.fill != "NONE":
        n = painting.close()
        _write(scene, painting)
        closed = f"{n} texel(s) closed from their neighbours"
        painting.report["holes_closed_at_the_end"] = n
    painting.report.update(closed_from_neighbours=painting.closed, holes_left=int(painting.holes().sum()),
                           finished=why or "done")
    _save_report(painting)
    parts = [p for p in (why, closed) if p]
    return "; ".join(parts + [f"texture in {painting.texture_dir}"])


def _direction_name(direction, up, front):
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, float(np.dot(direction, up))))))
    if elevation > 80:
        return "above"
    if elevation < -80:
        return "below"
    side = np.cross(up, front)
    yaw = math.degrees(math.atan2(float(np.dot(direction, side)), float(np.dot(direction, front)))) % 360
    return f"{'above' if elevation > 0 else 'below'} at {yaw:.0f} degrees"


def _save_report(painting):
    os.makedirs(painting.texture_dir, exist_ok=True)
    write_atomic(os.path.join(painting.texture_dir, "paint.json"),
                 json.dumps(painting.report, indent=1).encode("utf-8"))


def _write(scene, painting, colours=None, painted=None):
    """The textures into the pack, and each painted object's material showing its own."""
    os.makedirs(painting.texture_dir, exist_ok=True)
    space, note = colour_space(scene, painting.shading)
    objects = {}
    for name, pixels in painting.textures(colours, painted).items():
        path = painting.texture_path(name)
        write_atomic(path, encode_png(pixels[::-1]))  # PNG rows go top-down
        obj = scene.objects.get(name)
        if obj is not None:
            apply_material(obj, path, painting.uv[name][0], painting.shading, space, scene)
            obj[PAINTED] = json.dumps({"character": painting.manifest["name"], "pack": painting.folder,
                                       "texture": path, "uv_map": painting.uv[name][0],
                                       "uv_made": painting.uv[name][1]})
        objects[name] = {"texture": os.path.relpath(path, painting.folder), "uv_map": painting.uv[name][0],
                         "uv_made": painting.uv[name][1], "texels": int(len(painting.texels[name]))}
    painting.report.update(objects=objects, shading=painting.shading, colour_space=space,
                           colour_note=note)


# ---------------------------------------------------------------------------------------------
# The material on the user's model, its colours, and taking it off

def colour_space(scene, shading):
    """(colour space for the texture, a note when the render will not show the file's colours):
    lit, it is an ordinary sRGB base colour; as painted (emission), the colour space that undoes
    the scene's view transform (view_colours: the same as every picture we show), so a render
    shows the sheet's colours without touching the user's view settings."""
    if shading == "PRINCIPLED":
        return "sRGB", ""
    space, note = view_colours.picture_space(scene)
    return space, note or ""


def apply_material(obj, path, uv_name, shading, space, scene):
    """`obj` shows the texture at `path` through its own paint material; its own materials are
    kept on the object once (restored by `remove`). As painted (emission), the texture follows
    the scene's view transform from then on, as every picture we show does (view_colours)."""
    name = f"{MATERIAL} ({obj.name})"
    material = _node_material(name, bpy.data.materials.get(name))
    tree = material.node_tree
    tree.nodes.clear()
    image = next((i for i in bpy.data.images if bpy.path.abspath(i.filepath) == path), None)
    if image is None:
        image = bpy.data.images.load(path)
    else:
        image.reload()
    try:
        image.colorspace_settings.name = space
    except TypeError:  # a Blender whose colour configuration lacks it
        image.colorspace_settings.name = "sRGB"
    uv = tree.nodes.new("ShaderNodeUVMap")
    uv.uv_map = uv_name
    tex = tree.nodes.new("ShaderNodeTexImage")
    tex.name = "texture"
    tex.image = image
    tree.links.new(uv.outputs[0], tex.inputs["Vector"])
    out = tree.nodes.new("ShaderNodeOutputMaterial")
    if shading == "PRINCIPLED":
        shader = tree.nodes.new("ShaderNodeBsdfPrincipled")
        tree.links.new(tex.outputs["Color"], shader.inputs["Base Color"])
    else:
        shader = tree.nodes.new("ShaderNodeEmission")
        tree.links.new(tex.outputs["Color"], shader.inputs["Color"])
    tree.links.new(shader.outputs[0], out.inputs["Surface"])
    if shading != "PRINCIPLED":
        view_colours.mark(image, scene)
        view_colours.mark_emission(material, scene)
    else:  # painted as painted before: the lit texture must not follow the view any more
        view_colours.unmark(image, material)
    if SAVED not in obj:
        obj[SAVED] = json.dumps([[slot.material.name if slot.material else "", slot.link]
                                 for slot in obj.material_slots])
    if obj.hide_render and str(obj.get(ROLE, "")).startswith("proxy_"):
        obj[SHOWN_PROXY] = True  # painted from its sheet, the rig's proxy is the model the user renders now
        obj.hide_render = False
    if not obj.material_slots:
        obj.data.materials.append(material)
    for slot in obj.material_slots:
        slot.link = "OBJECT"  # the object's own slot: a mesh shared with other objects keeps its material
        slot.material = material
    return material


def painted_objects(scene, obj=None):
    """The painted objects among `obj`'s character (all in the scene when `obj` is None)."""
    if obj is None:
        return [o for o in scene.objects if PAINTED in o]
    _, meshes, _ = character_of(obj)
    return [o for o in meshes if PAINTED in o]


def remove(scene, obj=None):
    """The painted objects (of `obj`'s character, or all) get their own materials back; the paint
    material, its image and a UV map made for it go. The texture files stay in the pack."""
    objects = painted_objects(scene, obj)
    if not objects:
        raise UserError("no painted model selected: select a model painted from a sheet (or its rig)")
    for o in objects:
        info = json.loads(o[PAINTED])
        kept = json.loads(o.get(SAVED, "[]"))
        for slot, (name, link) in zip(o.material_slots, kept):
            slot.link = link
            slot.material = bpy.data.materials.get(name) if name else None
        if not kept:  # an object that had no material: the slot it was given goes
            o.data.materials.clear()
        material = bpy.data.materials.get(f"{MATERIAL} ({o.name})")
        if material is not None:
            image = material.node_tree.nodes["texture"].image if "texture" in material.node_tree.nodes else None
            bpy.data.materials.remove(material)
            if image is not None and not image.users:
                bpy.data.images.remove(image)
        if info.get("uv_made") and info.get("uv_map") in o.data.uv_layers:
            o.data.uv_layers.remove(o.data.uv_layers[info["uv_map"]])
        if o.pop(SHOWN_PROXY, False):
            o.hide_render = True  # a posing aid and the maps' silhouette again
        for key in (SAVED, PAINTED):
            if key in o:
                del o[key]
    return [o.name for o in objects]


# ---------------------------------------------------------------------------------------------
# How well the painted model shows the sheet (tests, benchmarks, the script's --check)

def check_views(context, painting):
    """{view name: (mean, p95 per-pixel mean |difference| in levels)} between the painted model
    rendered from each sheet view's camera (its own cell size, as painted) and the sheet's cell,
    over the pixels the painted meshes cover, one pixel in from their outline."""
    rig = context.scene.objects.get(painting.rig) if painting.rig else None
    out = {}
    textures = painting.textures()
    with sheet_pose(context, rig, _objects(context.scene, painting.occluders), painting.record) as stage:
        for view in painting.record["views"]:
            camera = painting.cameras.get(view["name"])
            if camera is None:
                continue
            projection = view_projection(stage, view, camera, painting.picture, painting.record)
            h, w = projection.depth.shape
            render = render_painted(stage, camera, (w, h), textures)
            painted = {stage.copies[n]: INDEX_BASE + 1 for n in painting.meshes}
            _, index = render_passes(stage.scene, stage.camera, painted)
            ours = np.rint(index).astype(np.int64) == INDEX_BASE + 1
            shown = (render[..., 3] == 255) & (rule.inner_distance(ours, 1) >= 2)
            out[view["name"]] = rule.compare(render[..., :3], projection.picture, shown)
    return out
