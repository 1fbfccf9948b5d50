"""The light reference: the scene's own lights on a grey-clay version of the set and the
characters' proxies, seen from the shot's camera, for relighting (core.shots.lighting).

ONE Cycles render, as `passes` does for the control maps: a throw-away copy of the scene with
a clay material over every surface (the view layer's material override), a few samples,
Diffuse Direct and Indirect (so shadows and bounce light), every light in a light group of its
own, object index and depth, written as one multilayer EXR and read back with numpy
(core.maps.exr). From it: the light (direct + indirect) and where a surface was hit, each
light's share on each character, each character's key light and where it comes from in camera
space. The user's scene, render settings and lights are left as they were.
"""

import io
import json
import os
import time

import bpy
import numpy as np

from ...core.errors import UserError
from ...core.image_io import check_writable_folder, encode_png, write_atomic
from ...core.maps import exr
from ...core.shots import lighting
from ..generation.job_inputs import safe_key
from ..rig.joints import camera_model, OUTPUT_ROLES
from ..rig.rig import character_meshes, rigs_in_scene, ROLE
from .passes import exact_cycles, INDEX_BASE, scratch_scene

CLAY = 0.8  # the clay's albedo: light-group passes are this times the light
SAMPLES = 4
SCALE = 0.5  # of the render resolution: light is smooth, and the backend brings it to the picture's size
MANIFEST = "light.json"
NO_LIGHT = ("the scene has no light to relight with: add a light (Add > Light > Sun or Area), switch one on (shown in "
            "renders, power above 0), or give the world some light")


# ---------------------------------------------------------------------------------------------
# The camera and the lights

def camera_view(scene, camera):
    """The camera as the job specs name it (`view`): name, world matrix, lens, render resolution;
    a light reference and the picture it relights must come from the same view."""
    model = camera_model(scene, camera)
    data = camera.data
    ortho = data.type == "ORTHO"
    return {"camera": camera.name, "matrix": [round(v, 6) for row in camera.matrix_world for v in row],
            "lens": [1.0 if ortho else 0.0, round(data.ortho_scale if ortho else data.lens, 6),
                     round(data.sensor_width, 6), round(data.sensor_height, 6), round(data.shift_x, 6),
                     round(data.shift_y, 6)],
            "resolution": list(model.resolution)}


def scene_lights(scene):
    """The lights that light a render: light objects shown in renders with power above 0."""
    return [o for o in scene.objects if o.type == "LIGHT" and not o.hide_render and o.data.energy > 0]


def world_lights(scene):
    """Whether the world gives light: a colour above black, or a Background node with strength."""
    world = scene.world
    if world is None:
        return False
    tree = world.node_tree
    if tree is None:
        return any(c > 0 for c in world.color)
    for node in tree.nodes:
        if node.type == "BACKGROUND":
            color, strength = node.inputs["Color"], node.inputs["Strength"]
            if (strength.is_linked or strength.default_value > 0) and (
                    color.is_linked or any(c > 0 for c in color.default_value[:3])):
                return True
    return False


def _towards(light, centre):
    """World direction from `centre` towards `light` (a sun: against its beam)."""
    matrix = np.array(light.matrix_world)
    if light.data.type == "SUN":
        return matrix[:3, 2] / np.linalg.norm(matrix[:3, 2])
    d = matrix[:3, 3] - centre
    return d / (np.linalg.norm(d) or 1.0)


def to_camera(camera, direction):
    """A world direction in the camera's space (x right, y up, z towards the camera)."""
    rotation = np.array(camera.matrix_world)[:3, :3]
    rotation = rotation / np.linalg.norm(rotation, axis=0)
    out = rotation.T @ np.asarray(direction, dtype=np.float64)
    return out / (np.linalg.norm(out) or 1.0)


def _centre(rig):
    """The middle of a character's meshes, in world space."""
    corners = [np.array(o.matrix_world) @ np.array([*c, 1.0]) for o in sum(character_meshes(rig), [])
               for c in o.bound_box]
    return np.mean(corners, axis=0)[:3] if corners else np.array(rig.matrix_world)[:3, 3]


# ---------------------------------------------------------------------------------------------
# The one render

def _clay():
    material = bpy.data.materials.new(".characterforge_clay")
    if material.node_tree is None:  # Blender 4.2: a material gets its nodes on request
        material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    diffuse = tree.nodes.new("ShaderNodeBsdfDiffuse")
    diffuse.inputs["Color"].default_value = (CLAY, CLAY, CLAY, 1.0)
    out = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(diffuse.outputs[0], out.inputs["Surface"])
    return material


def _pass(channels, names, components):
    """(H, W, len(components)) of the first of `names` (Blender 4.2's and 5's names for one pass)."""
    for name in names:
        keys = [k for k in channels if k.endswith(f".{name}.{components[0]}")]
        if keys:
            layer = keys[0][:-len(f"{name}.{components[0]}")]
            return np.dstack([channels[f"{layer}{name}.{c}"] for c in components])
    raise UserError(f"Cycles wrote no {names[0]} pass (found {sorted(channels)[:6]}...)")


def render_light(scene, camera, index_of, groups, hide=(), samples=SAMPLES, scale=SCALE):
    """({"direct", "indirect", "normal" (world space): (H, W, 3), "depth", "index": (H, W), "groups":
    {group: (H, W, 3) light}}, seconds) of one Cycles render of the clay scene from `camera` at `scale` of the
    render resolution. `index_of`: {object: pass index}; `groups`: {light or world: group name};
    `hide`: objects left out."""
    hide = [o for o in scene.objects if o.get(ROLE) in OUTPUT_ROLES or o in hide]  # and result planes moved out
    lightgroups = {owner: owner.lightgroup for owner in groups}
    with scratch_scene(scene, camera, "light.exr", index_of, hide) as (tmp, path):
        clay = _clay()
        try:
            for owner, group in groups.items():
                owner.lightgroup = group
            render, cycles = tmp.render, tmp.cycles
            exact_cycles(tmp, samples)  # pixel centres: object ids and depth exact, as in the control maps
            render.resolution_percentage = max(1, round(scene.render.resolution_percentage * scale))
            cycles.max_bounces = cycles.diffuse_bounces = 1  # one bounce of light between surfaces
            cycles.glossy_bounces = cycles.transmission_bounces = cycles.volume_bounces = 0
            cycles.transparent_max_bounces = 0
            cycles.caustics_reflective = cycles.caustics_refractive = False
            layer = tmp.view_layers[0]
            layer.material_override = clay
            layer.use_pass_diffuse_direct = layer.use_pass_diffuse_indirect = True
            layer.use_pass_object_index = layer.use_pass_z = layer.use_pass_normal = True
            for group in sorted(set(groups.values())):
                layer.lightgroups.add(name=group)
            settings = render.image_settings
            if hasattr(settings, "media_type"):  # Blender 5: every pass into one file is a media type
                settings.media_type = "MULTI_LAYER_IMAGE"
            settings.file_format = "OPEN_EXR_MULTILAYER"
            settings.color_depth = "16"
            settings.exr_codec = "NONE"  # a scratch file read straight back
            render.filepath = path
            started = time.perf_counter()
            bpy.ops.render.render(write_still=True, scene=tmp.name, layer=layer.name)
            seconds = time.perf_counter() - started
            if not os.path.exists(path):
                raise UserError(f"Blender did not write the light render to {path}")
            with open(path, "rb") as f:
                channels = exr.read_exr(f.read())
            out = {"direct": _pass(channels, ("Diffuse Direct", "DiffDir"), "RGB"),
                   "indirect": _pass(channels, ("Diffuse Indirect", "DiffInd"), "RGB"),
                   "depth": _pass(channels, ("Depth",), "Z")[..., 0],
                   "normal": _pass(channels, ("Normal",), "XYZ"),
                   "index": _pass(channels, ("Object Index", "IndexOB"), "X")[..., 0],
                   "groups": {g: _pass(channels, (f"Combined_{g}",), "RGB") / CLAY for g in set(groups.values())}}
            return out, seconds
        finally:
            bpy.data.materials.remove(clay)
            for owner, group in lightgroups.items():
                owner.lightgroup = group


# ---------------------------------------------------------------------------------------------
# The light reference of a shot

def _safe(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64] or "light"


def light_reference(context, camera, out_dir, hide=(), samples=SAMPLES, scale=SCALE, white=None):
    """Render the light reference for `camera` at the current frame into `out_dir`: light.png
    (core.shots.lighting's encoding), light_<light>.png per light (the same white), light.npz
    (the passes, for figures), light.json (written last). Returns the manifest: the view, the
    white, each light and each character (its share of every light, its key light and where it
    comes from). `white`: keep a white found before (a moving shot's frames share one)."""
    scene = context.scene
    context.view_layer.update()
    lights = scene_lights(scene)
    sky = world_lights(scene)
    if not lights and not sky:
        raise UserError(NO_LIGHT)
    out_dir = bpy.path.abspath(out_dir)
    try:
        check_writable_folder(out_dir)
    except OSError as exc:
        raise UserError(str(exc)) from None
    rigs = rigs_in_scene(scene)
    index_of = {}
    for i, rig in enumerate(rigs, start=1):
        for obj in sum(character_meshes(rig), []):
            index_of[obj] = INDEX_BASE + 2 * i  # the body's id in the control maps: hands count as the body
    groups = {light: f"cflight{i}" for i, light in enumerate(lights)}
    if sky:
        groups[scene.world] = "cfworld"
    passes, seconds = render_light(scene, camera, index_of, groups, hide, samples, scale)
    light = passes["direct"] + passes["indirect"]
    coverage = (passes["depth"] < 1e9) & (passes["depth"] > 0)
    white = white or lighting.white_point(light, coverage)
    if white <= 0:
        raise UserError("none of the scene's lights reaches anything the camera sees: aim a light at the set and the "
                        "characters, raise its power, or move what blocks it")
    ids = np.rint(passes["index"]).astype(np.int64)
    masks = {rig: ids == INDEX_BASE + 2 * i for i, rig in enumerate(rigs, start=1)}
    owners = {group: owner for owner, group in groups.items()}
    names = {group: ("world" if owner == scene.world else owner.name) for group, owner in owners.items()}
    lum = {group: lighting.luminance(values) for group, values in passes["groups"].items()}

    def shares(where):
        total = {g: float(v[where].sum()) for g, v in lum.items()}
        whole = sum(total.values()) or 1.0
        return {g: t / whole for g, t in total.items()}

    def direction(group, centre):
        owner = owners[group]
        towards = np.array([0.0, 0.0, 1.0]) if owner == scene.world else _towards(owner, centre)
        return [round(float(v), 4) for v in to_camera(camera, towards)]

    characters = []
    for rig, mask in masks.items():
        if not mask.any():
            continue
        share = shares(mask)
        key = max(share, key=share.get)
        key_dir = direction(key, _centre(rig))
        characters.append({"name": safe_key(rig.name), "rig": rig.name, "pixels": int(mask.sum()),
                           "lights": {names[g]: round(s, 4) for g, s in share.items()}, "key_light": names[key],
                           "key": key_dir, "words": lighting.direction_words(key_dir),
                           "mean_light": round(float(lighting.luminance(light)[mask].mean() / white), 4)})
    union = np.logical_or.reduce(list(masks.values())) if masks else np.zeros(coverage.shape, bool)
    where = union if union.any() else coverage
    share = shares(where)
    key = max(share, key=share.get)
    seen_rigs = [r for r, m in masks.items() if m.any()]
    centre = np.mean([_centre(r) for r in seen_rigs], axis=0) if seen_rigs else np.array(camera.matrix_world)[:3, 3]
    key_dir = direction(key, centre)
    rotation = np.array(camera.matrix_world)[:3, :3]
    rotation = rotation / np.linalg.norm(rotation, axis=0)
    normals = passes["normal"] @ rotation  # world to camera space: x right, y up, z towards the camera
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-9)
    files = {"light.png": encode_png(lighting.light_picture(light, coverage, white)),
             "light_normal.png": encode_png(lighting.normal_picture(normals, coverage))}
    lights_out = []
    for group, values in sorted(passes["groups"].items()):
        file = f"light_{_safe(names[group])}.png"
        files[file] = encode_png(lighting.light_picture(values, coverage, white))
        owner = owners[group]
        lights_out.append({"name": names[group], "type": "WORLD" if owner == scene.world else owner.data.type,
                           "file": file, "share": round(share[group], 4), "direction": direction(group, centre)})
    buf = io.BytesIO()
    np.savez(buf, direct=passes["direct"].astype(np.float16), indirect=passes["indirect"].astype(np.float16),
             coverage=coverage, index=ids.astype(np.int32), depth=passes["depth"].astype(np.float32))  # as rendered
    files["light.npz"] = buf.getvalue()
    for name, data in files.items():
        write_atomic(os.path.join(out_dir, name), data)
    h, w = coverage.shape
    manifest = {"view": camera_view(scene, camera), "frame": scene.frame_current, "size": [w, h], "white": white,
                "samples": samples, "scale": scale, "render_s": round(seconds, 3), "key_light": names[key],
                "key": key_dir, "words": lighting.direction_words(key_dir), "lights": lights_out,
                "characters": characters, "files": sorted(files)}
    write_atomic(os.path.join(out_dir, MANIFEST), json.dumps(manifest, indent=1).encode("utf-8"))
    return manifest


def read_light(out_dir):
    """(light H, W, 3 in Blender's units, coverage, object index) of a light reference on disk."""
    with np.load(os.path.join(out_dir, "light.npz")) as data:
        return data["direct"].astype(np.float64) + data["indirect"], data["coverage"], data["index"]


def spec_light(out_dir, manifest=None):
    """The light as a job spec takes it (job_spec.relight_options / relight_spec)."""
    if manifest is None:
        with open(os.path.join(out_dir, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
    with open(os.path.join(out_dir, "light.png"), "rb") as f:
        png = f.read()
    with open(os.path.join(out_dir, "light_normal.png"), "rb") as f:
        normal = f.read()
    return {"png": png, "normal": normal, "view": manifest["view"], "white": manifest["white"],
            "key": manifest["key"],
            "characters": [{"name": c["name"], "key": c["key"]} for c in manifest["characters"]]}
