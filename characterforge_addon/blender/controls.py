"""Control maps for one camera and frame: OpenPose skeleton and JSON, depth, hand depth,
a mask per character and, on request, normals, from every OpenPose rig in the scene.

Joints are projected in numpy (core.projection) and checked for occlusion with scene ray
casts. Depth and object index come from ONE Cycles render at 1 sample; hand depth, masks and
normals are cut from it, so the whole set costs about one depth render plus drawing.
"""

import functools
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import bpy
import numpy as np
from mathutils import Vector

from ..core import control_maps, keypoints, openpose_draw, projection, rig_layout, rig_mapping
from ..core.errors import UserError
from ..core.image_io import check_writable_folder, encode_png, write_atomic
from .rig import ROLE, character_meshes, rigs_in_scene

MAX_SIDE = 8192
OUTPUT_ROLES = ("result_plane",)  # our own image planes never appear in control maps


# ---------------------------------------------------------------------------------------------
# Cameras and rigs

def camera_model(scene, camera):
    render = scene.render
    scale = render.resolution_percentage / 100.0
    w, h = int(render.resolution_x * scale), int(render.resolution_y * scale)
    try:
        projection.validate_resolution(w, h, MAX_SIDE)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    cam = camera.data
    return projection.CameraModel(
        world_to_camera=np.array(camera.matrix_world.inverted()),
        resolution=(w, h), ortho=cam.type == "ORTHO", lens=cam.lens, ortho_scale=cam.ortho_scale,
        sensor_width=cam.sensor_width, sensor_height=cam.sensor_height, sensor_fit=cam.sensor_fit,
        shift=(cam.shift_x, cam.shift_y), pixel_aspect=(render.pixel_aspect_x, render.pixel_aspect_y),
        clip_start=cam.clip_start)


def find_camera(scene, name=None):
    if name:
        camera = scene.objects.get(name)
        if camera is None or camera.type != "CAMERA":
            cams = ", ".join(o.name for o in scene.objects if o.type == "CAMERA") or "none"
            raise UserError(f"no camera named '{name}' in scene '{scene.name}' (cameras: {cams})")
        return camera
    if scene.camera is None:
        raise UserError(f"scene '{scene.name}' has no active camera: add one (Add > Camera) and set it "
                        "active (Ctrl+Numpad 0), or pass --camera NAME")
    if scene.camera.type != "CAMERA":
        raise UserError(f"the scene camera '{scene.camera.name}' is a {scene.camera.type.lower()}, not a camera")
    return scene.camera


def mapping_for(rig):
    overrides = [(row.joint, row.bone, row.end) for row in rig.characterforge.joint_overrides]
    names = [b.name for b in rig.data.bones]
    return rig_mapping.resolve(names, overrides, rig_name=f"armature '{rig.name}'")


@functools.lru_cache(maxsize=16)
def _layout_see_through(height, preset):
    sets = rig_layout.see_through_bones(rig_layout.build_layout(height, preset))
    return {f"{part}.{j}": s for part in rig_mapping.PARTS for j, s in zip(rig_mapping.PART_JOINTS[part], sets[part])}


def _see_through_for(rig, convention, mapping):
    """{joint key: bones a ray may pass to reach it}; the layout knows more for our own rigs."""
    if convention == "CHARACTERFORGE":
        return _layout_see_through(round(rig.characterforge.height, 6), rig.characterforge.preset)
    hierarchy = _Hierarchy(rig)
    out = {}
    for key, (bone, end) in mapping.items():
        part = key.split(".", 1)[0]
        out[key] = set() if rig_layout.is_surface_joint(part, bone) else rig_layout.own_bones(hierarchy, bone, end)
    return out


class _Hierarchy:
    """Bone parents by name, in the shape rig_layout.own_bones reads."""

    def __init__(self, rig):
        self._parents = {b.name: (b.parent.name if b.parent else "") for b in rig.data.bones}

    def items(self):
        return ((name, _Parent(parent)) for name, parent in self._parents.items())

    def __getitem__(self, name):
        return _Parent(self._parents[name])


class _Parent:
    def __init__(self, parent):
        self.parent = parent


def _face_bone(obj, face_index, cache):
    """The bone a face of a skinned mesh follows (its first vertex's strongest group)."""
    key = (obj.name, face_index)
    if key not in cache:
        mesh = obj.data
        bone = ""
        if face_index < len(mesh.polygons):
            groups = mesh.vertices[mesh.polygons[face_index].vertices[0]].groups
            if len(groups):
                bone = obj.vertex_groups[max(groups, key=lambda g: g.weight).group].name
        cache[key] = bone
    return cache[key]


def _check_camera_outside(scene, depsgraph, camera):
    """Refuse a camera sitting inside a closed mesh: every map would be that mesh's inside."""
    origin = camera.matrix_world.translation
    forward = -camera.matrix_world.col[2].xyz.normalized()
    hits = []
    for direction in (forward, -forward, camera.matrix_world.col[0].xyz, camera.matrix_world.col[1].xyz):
        hit, location, normal, _, obj, _ = scene.ray_cast(depsgraph, origin, direction.normalized())
        hits.append(hit and normal.dot(direction) > 0 and obj)
    if all(hits):
        raise UserError(f"camera '{camera.name}' is inside '{hits[0].name}': move the camera out of the mesh "
                        "or hide that object from render")


def _visible(scene, depsgraph, origin, target, slack, see_through):
    """Is `target` seen from `origin`? Rays pass our own output planes and what
    `see_through(obj, face_index)` allows (the joint's own limbs); the joint may lie up to
    `slack` behind the first surface left."""
    direction = target - origin
    distance = direction.length
    if distance < 1e-9:
        return True
    direction /= distance
    start, travelled = origin, 0.0
    for _ in range(16):
        hit, location, _, face, obj, _ = scene.ray_cast(depsgraph, start, direction, distance=distance - travelled + slack)
        if not hit:
            return True
        travelled += (location - start).length
        if obj.get(ROLE) not in OUTPUT_ROLES and not see_through(obj, face):
            return travelled >= distance - slack
        start = location + direction * 1e-5
    return True


def project_rig(scene, depsgraph, camera, cam, rig):
    """(Person, mean depth) for one rig seen through `camera`."""
    convention, mapping = mapping_for(rig)
    through = _see_through_for(rig, convention, mapping)
    slack = 0.01 * max(max(rig.dimensions), 0.1)  # a joint on a surface is seen
    own_meshes = {o.name for o in sum(character_meshes(rig), [])}
    face_bones = {}
    person = keypoints.Person(rig.name)
    cam_origin = camera.matrix_world.translation
    forward = -camera.matrix_world.col[2].xyz.normalized()
    depths = []
    for part in rig_mapping.PARTS:
        keys = rig_mapping.joint_keys(part)
        world = np.full((len(keys), 3), np.nan)
        for i, key in enumerate(keys):
            if key in mapping:
                bone, end = mapping[key]
                pb = rig.pose.bones[bone]
                world[i] = rig.matrix_world @ (pb.head if end == "head" else pb.tail)
        xy, depth = projection.project(cam, world)
        points = np.zeros((len(keys), 3))
        present = ~np.isnan(world[:, 0]) & projection.in_frame(xy, depth, cam.resolution)
        for i in np.flatnonzero(present):
            def see_through(obj, face, own=through[keys[i]]):
                return obj.name in own_meshes and _face_bone(obj, face, face_bones) in own

            target = Vector(world[i])
            origin = cam_origin if not cam.ortho else target - forward * depth[i]
            seen = _visible(scene, depsgraph, origin, target, slack, see_through)
            points[i] = (xy[i, 0], xy[i, 1], 1.0 if seen else keypoints.OCCLUDED_CONFIDENCE)
            depths.append(depth[i])
        setattr(person, part, points)
    return person, (float(np.mean(depths)) if depths else float("inf"))


# ---------------------------------------------------------------------------------------------
# The one render: depth and object index

# Character pass indices start here: above what users usually give their own objects, and
# exact in the half-float EXR (integers up to 2048).
INDEX_BASE = 1000


def _exclude_our_planes(tmp):
    """Exclude the result-plane collection in the throw-away scene's view layer (the user's
    scene is untouched); returns the names of the objects that hides."""
    from .planes import SHOTS_COLLECTION

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

def _compositor(scene):
    """Route Depth into red and Object Index into green of the output, for both 4.2 and 5.x."""
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
    tree.links.new(combine.outputs[0], out.inputs[0])
    return tree if hasattr(scene, "compositing_node_group") else None


def render_passes(scene, camera, index_of):
    """(depth, object index) arrays, rows top-down, for `camera` at the scene's resolution.

    `index_of`: {object: pass index}. Renders a throw-away copy of the scene so the user's
    render settings and compositor stay untouched. Objects are changed only where they must
    be and restored afterwards; our proxies keep their indices, so in the usual case nothing
    is changed and Blender has nothing to re-evaluate after the render.
    """
    saved = {}
    for obj, index in index_of.items():
        if obj.pass_index != index:
            if not str(obj.get(ROLE, "")).startswith("proxy_"):
                saved[obj] = ("pass_index", obj.pass_index)
            obj.pass_index = index
    tmp = scene.copy()
    group = None
    folder = tempfile.mkdtemp(prefix="characterforge-")
    path = os.path.join(folder, "passes.exr")
    image = None
    try:
        hidden = _exclude_our_planes(tmp)
        for obj in scene.objects:  # result planes moved out of our collection by the user
            if obj.get(ROLE) in OUTPUT_ROLES and obj.name not in hidden and not obj.hide_render:
                saved.setdefault(obj, ("hide_render", False))
                obj.hide_render = True
        tmp.camera = camera
        tmp.render.engine = "CYCLES"
        tmp.cycles.samples = 1
        tmp.cycles.use_denoising = False
        tmp.cycles.use_adaptive_sampling = False
        tmp.cycles.filter_width = 0.01  # sample pixel centres: exact ids and depth
        tmp.cycles.device = "CPU"
        tmp.render.film_transparent = False
        tmp.render.use_compositing = True
        tmp.render.use_sequencer = False
        layer = tmp.view_layers[0]
        layer.use_pass_z = True
        layer.use_pass_object_index = True
        group = _compositor(tmp)
        settings = tmp.render.image_settings
        settings.file_format = "OPEN_EXR"
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
        return buf[..., 0].astype(np.float64), buf[..., 1].copy()
    finally:
        if image is not None:
            bpy.data.images.remove(image)
        bpy.data.scenes.remove(tmp)
        if group is not None:
            bpy.data.node_groups.remove(group)
        for obj, (attribute, value) in saved.items():
            setattr(obj, attribute, value)
        try:
            os.remove(path)
        except OSError:
            pass
        os.rmdir(folder)


# ---------------------------------------------------------------------------------------------
# The whole set

def _hand_region(person, shape):
    """Pixels near an own rig's projected hand joints (own rigs have no separate hand mesh)."""
    region = np.zeros(shape, dtype=bool)
    for hand in (person.left_hand, person.right_hand):
        present = hand[:, 2] > 0
        if present.sum() < 2:
            continue
        radius = max(int(np.ptp(hand[present, :2], axis=0).max() * 0.25), 3)
        for pixels in openpose_draw.discs(shape, hand[present, :2].astype(np.int64), radius):
            region.ravel()[pixels] = True
    return region


def _maps_from_passes(pool, cam, depth, index, characters, normals):
    """({file: PNG bytes} of the depth, hand depth, mask (and normal) maps, made side by side
    on `pool`; {character: mask file})."""
    ids = np.rint(index).astype(np.int32)
    hand_mask = np.zeros(depth.shape, dtype=bool)
    images, mask_files = {}, {}
    for rig, person, body_id, hand_id, has_hand_mesh in characters:
        mask = (ids == body_id) | (ids == hand_id)
        hand_mask |= (ids == hand_id) if has_hand_mesh else (mask & _hand_region(person, depth.shape))
        mask_files[rig.name] = f"mask_{_safe_name(rig.name)}.png"
        images[mask_files[rig.name]] = lambda mask=mask: np.where(mask, np.uint8(255), np.uint8(0))
    images["depth.png"] = lambda: control_maps.depth_image(depth)
    images["hand_depth.png"] = lambda: control_maps.depth_image(depth, hand_mask)
    if normals:
        def normal_map():
            shown = (depth < control_maps.BACKGROUND_DEPTH) & (depth > 0)
            return control_maps.normal_image(projection.unproject(cam, np.where(shown, depth, 0.0)), shown)
        images["normal.png"] = normal_map
    done = {name: pool.submit(lambda make=make: encode_png(make())) for name, make in images.items()}
    return {name: future.result() for name, future in done.items()}, mask_files


def _safe_name(name):
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def render_controls(context, out_dir, camera=None, drop_occluded=False, preview=True, normals=False):
    """Write the control maps for the scene camera (or `camera`) at the current frame.

    Returns the manifest (also written as controls.json, last, once every map is in place).
    """
    scene = context.scene
    context.view_layer.update()  # matrices are stale after any change until the depsgraph runs
    camera = camera or find_camera(scene)
    cam = camera_model(scene, camera)
    rigs = rigs_in_scene(scene)
    if not rigs:
        raise UserError(f"scene '{scene.name}' has no OpenPose rig: add one with Pose > Add rig, or mark your "
                        "own armature with Pose > Use as OpenPose rig")
    out_dir = bpy.path.abspath(out_dir)
    try:
        check_writable_folder(out_dir)
    except OSError as exc:
        raise UserError(str(exc)) from None
    timings = {}
    t0 = time.perf_counter()
    depsgraph = context.evaluated_depsgraph_get()
    _check_camera_outside(scene, depsgraph, camera)

    people, index_of, characters = [], {}, []
    for i, rig in enumerate(rigs, start=1):
        person, mean_depth = project_rig(scene, depsgraph, camera, cam, rig)
        body, hands = character_meshes(rig)
        body_id, hand_id = INDEX_BASE + 2 * i, INDEX_BASE + 2 * i + 1
        for obj in body:
            index_of[obj] = body_id
        for obj in hands:
            index_of[obj] = hand_id
        people.append((mean_depth, person))
        characters.append((rig, person, body_id, hand_id, bool(hands)))
    people = [p for _, p in sorted(people, key=lambda item: -item[0])]  # far first: near overlaps far
    timings["project_s"] = time.perf_counter() - t0

    drawn = [p.without_occluded() for p in people] if drop_occluded else people
    w, h = cam.resolution
    pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))

    def draw():
        start = time.perf_counter()
        files = {"openpose.png": encode_png(openpose_draw.draw_people(w, h, drawn)),
                 "openpose.json": keypoints.to_openpose_json(w, h, drawn).encode("utf-8")}
        timings["draw_s"] = time.perf_counter() - start
        return files

    try:
        # The skeleton needs no render: it is drawn while Cycles renders (the render runs in
        # Blender's own threads; numpy and zlib release the GIL).
        drawing = pool.submit(draw)
        t2 = time.perf_counter()
        depth, index = render_passes(scene, camera, index_of)
        timings["render_s"] = time.perf_counter() - t2
        files = drawing.result()
        t3 = time.perf_counter()
        maps, mask_files = _maps_from_passes(pool, cam, depth, index, characters, normals)
        files.update(maps)
        timings["encode_s"] = time.perf_counter() - t3
        t4 = time.perf_counter()
        for written in [pool.submit(write_atomic, os.path.join(out_dir, f), data) for f, data in files.items()]:
            written.result()
    finally:
        pool.shutdown(wait=True)

    manifest = {
        "camera": camera.name, "frame": scene.frame_current, "resolution": [w, h],
        "files": sorted(files), "masks": mask_files,
        "people": [{"name": p.name,
                    "visible": int((np.concatenate([a[:, 2] for a in p.parts().values()]) == 1).sum()),
                    "occluded": int((np.concatenate([a[:, 2] for a in p.parts().values()]) == keypoints.OCCLUDED_CONFIDENCE).sum())}
                   for p in people],
        "drop_occluded": drop_occluded,
    }
    write_atomic(os.path.join(out_dir, "controls.json"), json.dumps(manifest, indent=1).encode("utf-8"))
    timings["write_s"] = time.perf_counter() - t4
    manifest["timings"] = timings
    if preview:
        load_previews(out_dir, files)
    return manifest


def load_previews(out_dir, files):
    """Show the maps as Blender images (Image Editor), reloading ones shown before."""
    for file in files:
        if not file.endswith(".png"):
            continue
        name = f"CF {file[:-4]}"
        path = os.path.join(out_dir, file)
        image = bpy.data.images.get(name)
        if image is None:
            image = bpy.data.images.load(path, check_existing=False)
            image.name = name
        else:
            image.filepath = path
            image.reload()
        image.colorspace_settings.name = "Non-Color" if file != "openpose.png" else "sRGB"
