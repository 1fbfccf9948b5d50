"""Turning the scene into a job: control maps for the camera, the spec, where results go."""

import functools
import json
import os
import random
import tempfile

import bpy
import numpy as np

from ..core import control_maps, identity_pack, keypoints, shot_regions
from ..core.errors import UserError
from ..core.image_io import encode_png
from ..core.job_spec import LIMITS, background_spec, posed_character_spec
from . import controls, jobs, joints, passes, planes, preferences
from .rig import character_meshes, rigs_in_scene


SEEDS = 2**31  # Blender's int properties (the Seed field, the planes' custom properties) are signed 32-bit


def pick_seed(settings):
    """The seed for a new job: a new random one, or the Seed field's."""
    return random.randrange(SEEDS) if settings.random_seed else settings.seed


def resolve_dir(path):
    """A folder setting as an absolute path; `//` in an unsaved file goes to the temp folder."""
    if path.startswith("//") and not bpy.data.filepath:
        return os.path.join(tempfile.gettempdir(), "characterforge", path[2:])
    return bpy.path.abspath(path)


def subject_distance(scene, camera, rigs=None):
    """How far in front of the camera the rigs (default: all) stand: where a result plane goes."""
    forward = -camera.matrix_world.col[2].xyz.normalized()
    origin = camera.matrix_world.translation
    depths = [(rig.matrix_world.translation - origin).dot(forward) for rig in rigs or rigs_in_scene(scene)]
    depths = [d for d in depths if d > camera.data.clip_start]
    return sum(depths) / len(depths) if depths else 5.0


def control_inputs(settings, folder):
    files = {"openpose": settings.openpose_strength}
    if settings.use_depth:
        files["depth"] = settings.depth_strength
    if settings.use_hand_depth:
        files["hand_depth"] = settings.hand_depth_strength
    out = {}
    for name, strength in files.items():
        with open(os.path.join(folder, f"{name}.png"), "rb") as f:
            out[name] = {"png": f.read(), "strength": strength}
    return out


def picture_png(path, what):
    """A picture file as PNG bytes (Blender converts any format it reads)."""
    if not os.path.isfile(path):
        raise UserError(f"{what} {path} not found: choose another file")
    if path.lower().endswith(".png"):
        with open(path, "rb") as f:
            return f.read()
    try:
        image = bpy.data.images.load(path, check_existing=False)
    except RuntimeError as exc:
        raise UserError(f"cannot read {what} {path}: {str(exc).strip()}") from None
    try:
        w, h = image.size
        pixels = np.empty(w * h * 4, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        rgb = (np.clip(pixels.reshape(h, w, 4)[::-1, :, :3], 0, 1) * 255 + 0.5).astype(np.uint8)
    finally:
        bpy.data.images.remove(image)
    return encode_png(rgb)


def reference_pngs(settings):
    """The reference picture as PNG bytes, or ()."""
    if not settings.reference_image:
        return ()
    return (picture_png(bpy.path.abspath(settings.reference_image), "reference picture"),)


def pack_identity(pack):
    """(identity face PNGs, mean embedding or None) of a character pack (a PG_character)."""
    if pack.problem:
        raise UserError(f"character {pack.name!r} cannot be used: {pack.problem}")
    return identity_pack.identity_faces(pack.folder), identity_pack.load_pack(pack.folder).get("embedding")


def identity_inputs(context):
    """(reference PNGs, mean embedding or None): the selected character's identity faces when
    Generate uses it, then the Reference picture if one is set."""
    settings = context.scene.characterforge
    references, embedding = list(reference_pngs(settings)), None
    if settings.use_character:
        from .characters import active_pack
        faces, embedding = pack_identity(active_pack(context.scene))
        references = faces + references
    if len(references) > LIMITS["max_references"]:
        references = references[:LIMITS["max_references"]]  # the first faces picked, then the picture
    return references, embedding


def maps_people(controls_dir):
    """(width, height, people) of the maps' openpose.json."""
    with open(os.path.join(controls_dir, "openpose.json"), encoding="utf-8") as f:
        return keypoints.from_openpose_dict(json.load(f))


def rig_keypoints(controls_dir, width, height):
    """{rig: 18 body joints} from the maps' openpose.json, in the job's pixel size, to score
    the output's pose against."""
    w, h, people = maps_people(controls_dir)
    sx, sy = (width // 8 * 8) / w, (height // 8 * 8) / h
    return {safe_key(p.name): [[round(x * sx, 2), round(y * sy, 2), c] for x, y, c in p.body.tolist()]
            for p in people if p.name}


def rig_faces(controls_dir, width, height):
    """{rig: face box} from the maps' face keypoints (nose, eyes and ears without them), in the
    job's pixel size; rigs whose face is too small to redraw are left out."""
    w, h, people = maps_people(controls_dir)
    boxes = {safe_key(p.name): shot_regions.face_box(p, width // 8 * 8, height // 8 * 8, (w, h))
             for p in people if p.name}
    return {name: box for name, box in boxes.items() if box}


def safe_key(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64] or "rig"


def generate(context, seed=None):
    """Render the control maps, build the posed-character spec and start the job."""
    scene = context.scene
    settings = scene.characterforge
    camera = joints.find_camera(scene)
    shot = settings.shot or "Shot"
    shot_dir = os.path.join(resolve_dir(settings.results_dir), shot)
    controls_dir = os.path.join(shot_dir, "controls")
    manifest = controls.render_controls(context, controls_dir, camera, settings.drop_occluded, preview=False)
    if seed is None:
        seed = pick_seed(settings)
    settings.seed = seed
    w, h = manifest["resolution"]
    references, embedding = identity_inputs(context)
    spec = posed_character_spec(
        settings.prompt, control_inputs(settings, controls_dir), w, h, settings.negative_prompt, seed,
        settings.steps, settings.guidance, preferences.job_profile(context), name=f"seed{seed}",
        references=references, identity_scale=settings.identity_scale, identity_embedding=embedding,
        keypoints=rig_keypoints(controls_dir, w, h),
        retry={"min_identity": settings.min_identity, "max_tries": settings.max_tries} if settings.retry else None)
    distance = subject_distance(scene, camera)
    return jobs.start(context, spec, shot_dir, functools.partial(place_shot, spec, shot, camera.name, distance,
                                                                extra=planes.pose_props(spec, rig_faces(controls_dir, w, h))))


def spec_summary(spec):
    """The job as kept on its plane: everything but the pictures and the embedding."""
    def identity(entry):
        return {"references": len(entry["images"]), "scale": entry["scale"], "embedding": "embedding" in entry}
    out = {k: v for k, v in spec.items() if k not in ("controls", "identity", "background", "image", "characters")}
    if "identity" in spec:
        out["identity"] = identity(spec["identity"])
    if "characters" in spec:
        out["characters"] = [{"name": c["name"], "prompt": c["prompt"],
                              **({"identity": identity(c["identity"])} if "identity" in c else {})}
                             for c in spec["characters"]]
    return out


def place_shot(spec, shot, camera_name, distance, scene, files, job_id, layer=planes.PICTURE, distances=None,
               extra=None):
    """Results as camera-filling planes in the shot's collection, each shown in place of the
    earlier variants of its layer. `distances`: {file name: distance} of cut-outs;
    `extra`: custom properties for every plane."""
    camera = scene.objects.get(camera_name)
    out_dir = os.path.dirname(files[0]) if files else ""
    if camera is None:
        return f"Saved {len(files)} image(s) to {out_dir}; camera '{camera_name}' is gone, so no plane"
    collection = planes.shot_collection(scene, shot)
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        cutout = stem in (distances or {})
        obj = planes.import_plane(bpy.context, path, camera, distances[stem] if cutout else distance, collection,
                                  f"{shot}_{stem}")
        planes.tag(obj, spec_summary(spec), job_id, [path])
        planes.tag_scores(obj, path)
        # each character's cut-outs are a layer of their own
        obj[planes.LAYER] = f"cutout:{stem.rsplit('_cutout_', 1)[-1]}" if cutout else layer
        for key, value in (extra or {}).items():
            obj[key] = value
        planes.show_variant(obj)
    return f"Done: {len(files)} image(s) in '{planes.SHOTS_COLLECTION}/{shot}'"


def regenerate(context, obj, new_seed):
    """Run the job behind a result plane again, with its seed or a new one: the same kind of
    job from the scene as it is now (pose, characters, settings), with the plane's prompts."""
    from . import shots
    settings = context.scene.characterforge
    spec = json.loads(obj["characterforge_job"])
    seed = random.randrange(SEEDS) if new_seed else spec["seed"]
    settings.negative_prompt = spec.get("negative_prompt", "")
    settings.steps, settings.guidance = spec["steps"], spec["guidance"]
    kind = spec.get("kind", "posed_character")
    if kind == "posed_character":
        settings.prompt = spec["prompt"]
        return generate(context, seed=seed)
    if kind == "background":
        settings.background_prompt, settings.background_image = spec["prompt"], ""
        return make_background(context, seed=seed)
    if kind == "shot":
        settings.background_prompt = spec["prompt"]
        return shots.make_shot(context, seed=seed)
    if kind == "expression":
        source = context.scene.objects.get(obj.get("characterforge_source", ""))
        if source is None:
            raise UserError(f"the picture '{obj.get('characterforge_source', '?')}' this expression was made from "
                            "is gone: select another result and use Change Expression")
        settings.expression = spec["expression"].upper()
        settings.expression_custom = spec.get("custom", "")
        return shots.make_expression(context, source, seed=seed)
    raise UserError(f"a {kind.replace('_', ' ')} is made again from its own section (Characters > Make Sheet)")


BACKGROUND_AT = 0.98  # of the camera's clip end: the background plane stands at the far end of the frustum


def set_depth_png(context, camera):
    """The depth of the set as seen by `camera`, characters left out, as a depth-ControlNet
    PNG; None when the camera sees no set geometry."""
    scene = context.scene
    context.view_layer.update()
    hide = [o for rig in rigs_in_scene(scene) for o in sum(character_meshes(rig), [])]
    depth, _ = passes.render_passes(scene, camera, {}, hide=hide)
    image = control_maps.depth_image(depth)
    return encode_png(image) if image.any() else None


def make_background(context, seed=None):
    """A background for the shot: the user's own picture as a plane at once, or a generated one
    (following the set's depth when asked) placed when the job ends."""
    scene = context.scene
    s = scene.characterforge
    camera = joints.find_camera(scene)
    shot = s.shot or "Shot"
    distance = camera.data.clip_end * BACKGROUND_AT
    if s.background_image:
        path = bpy.path.abspath(s.background_image)
        if not os.path.isfile(path):
            raise UserError(f"background picture {path} not found: choose another file or clear Background picture")
        obj = planes.import_plane(context, path, camera, distance, planes.shot_collection(scene, shot),
                                  f"{shot}_background", cover=True)
        obj["characterforge_background"] = path
        obj[planes.LAYER] = "background"
        planes.show_variant(obj)
        return None
    if not s.background_prompt.strip():
        raise UserError("describe the background (Background prompt), or choose a Background picture")
    if seed is None:
        seed = pick_seed(s)
    w, h = joints.camera_model(scene, camera).resolution
    depth = set_depth_png(context, camera) if s.background_use_set_depth else None
    spec = background_spec(s.background_prompt, w, h, depth, s.depth_strength, s.negative_prompt, seed, s.steps,
                           s.guidance, preferences.job_profile(context), name=f"background_seed{seed}",
                           sharp=s.background_sharp)
    out_dir = os.path.join(resolve_dir(s.results_dir), shot)
    return jobs.start(context, spec, out_dir, functools.partial(place_shot, spec, shot, camera.name, distance,
                                                                layer="background"))
