"""Turning the scene into a job: control maps for the camera, the spec, where results go."""

import functools
import os

import bpy
import numpy as np

from ...core.errors import UserError
from ...core.image_io import decode_png, encode_png
from ...core.maps import control_maps
from ...core.spec.job_spec import background_spec, posed_character_spec
from .. import preferences
from ..maps import controls, passes
from ..rig import joints
from ..sets.set_projection import characters, dome
from . import jobs, planes
from .job_inputs import (
    control_inputs,
    identity_inputs,
    pick_seed,
    resolve_dir,
    rig_faces,
    rig_keypoints,
    selected_look,
)


def generate(context, seed=None, draft=None):
    """Render the control maps, build the posed-character spec and start the job; `draft`:
    a draft or not (None: the Draft toggle's choice)."""
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
    references, embedding, lora = identity_inputs(context)
    kind, look = selected_look(context)
    humanoid = kind == "humanoid"
    spec = posed_character_spec(
        settings.prompt, control_inputs(settings, controls_dir), w, h, settings.negative_prompt, seed,
        settings.steps, settings.guidance, preferences.job_profile(context), name=f"seed{seed}",
        references=references, identity_scale=settings.identity_scale if humanoid else 0.0,
        identity_embedding=embedding, lora=lora, appearance=look, appearance_scale=settings.appearance_scale,
        faceid_scale=None if humanoid else 0.0,
        mask=characters_mask(controls_dir, manifest, humanoid) if look else None,
        keypoints=rig_keypoints(controls_dir, w, h),
        retry={"min_identity": settings.min_identity, "max_tries": settings.max_tries} if settings.retry else None)
    spec["draft"] = settings.draft if draft is None else draft
    return jobs.start(context, spec, shot_dir, functools.partial(place_shot, spec, shot, camera.name,
                                                                extra=planes.pose_props(spec, rig_faces(controls_dir, w, h))))


def characters_mask(controls_dir, manifest, humanoid=True):
    """PNG bytes of where the characters of the pack's sort are (humanoids, or creatures and
    objects: their masks joined): the region a posed character's appearance is scored on; None
    without such masks."""
    joined = None
    for name, file in manifest["masks"].items():
        if (manifest.get("kinds", {}).get(name, "humanoid") == "humanoid") != humanoid:
            continue
        with open(os.path.join(controls_dir, file), "rb") as f:
            mask = decode_png(f.read())
        mask = (mask if mask.ndim == 2 else mask[..., 0]) > 127
        joined = mask if joined is None else joined | mask
    return None if joined is None else encode_png(np.where(joined, np.uint8(255), np.uint8(0)))


def spec_summary(spec):
    """The job as kept on its plane: everything but the pictures and the embedding (a LoRA by
    name, weight, trigger and SHA-256)."""
    def identity(entry):
        return {"references": len(entry["images"]), "scale": entry["scale"], "embedding": "embedding" in entry,
                **({"lora": entry["lora"]} if "lora" in entry else {})}
    out = {k: v for k, v in spec.items() if k not in ("controls", "identity", "background", "image", "characters",
                                                      "mask")}
    if "identity" in spec:
        out["identity"] = identity(spec["identity"])
    if "light" in spec:  # a relight's light reference: its camera, white and keys, not its picture
        out["light"] = {k: v for k, v in spec["light"].items() if k not in ("image", "normal")}
    if spec.get("relight"):
        light = {k: v for k, v in spec["relight"]["light"].items() if k not in ("image", "normal")}
        out["relight"] = dict(spec["relight"], light=light)
    if "characters" in spec:
        out["characters"] = [{"name": c["name"], **({"kind": c["kind"]} if "kind" in c else {}), "prompt": c["prompt"],
                              **({"identity": identity(c["identity"])} if "identity" in c else {})}
                             for c in spec["characters"]]
    return out


def place_shot(spec, shot, camera_name, scene, files, job_id, layer=planes.PICTURE, cutouts=(), extra=None):
    """Results as camera-filling planes in the shot's collection (planes.distance_for their
    layer), each shown in place of the earlier variants of its layer. `cutouts`: the file names
    of cut-outs; `extra`: custom properties for every plane."""
    camera = scene.objects.get(camera_name)
    out_dir = os.path.dirname(files[0]) if files else ""
    if camera is None:
        return f"Saved {len(files)} image(s) to {out_dir}; camera '{camera_name}' is gone, so no plane"
    collection = planes.shot_collection(scene, shot)
    for path in files:
        stem = os.path.splitext(os.path.basename(path))[0]
        cutout = stem in cutouts
        # each character's cut-outs are a layer of their own
        own = f"cutout:{stem.rsplit('_cutout_', 1)[-1]}" if cutout else layer
        obj = planes.import_plane(bpy.context, path, camera, planes.distance_for(camera, own), collection,
                                  f"{shot}_{stem}" + (" (draft)" if spec.get("draft") else ""))
        planes.tag(obj, spec_summary(spec), job_id, [path])
        obj[planes.DRAFT] = bool(spec.get("draft"))
        planes.tag_scores(obj, path)
        obj[planes.LAYER] = own
        for key, value in (extra or {}).items():
            obj[key] = value
        planes.show_variant(obj)
    return f"Done: {len(files)} image(s) in '{planes.SHOTS_COLLECTION}/{shot}'"


def set_depth_png(context, camera):
    """The depth of the set as seen by `camera`, characters and the far dome left out (its
    distance would flatten the set's depth range), as a depth-ControlNet PNG; None when the
    camera sees no set geometry."""
    scene = context.scene
    context.view_layer.update()
    hide = characters(scene) + [o for o in (dome(scene),) if o is not None]
    depth, _ = passes.render_passes(scene, camera, {}, hide=hide)
    image = control_maps.depth_image(depth)
    return encode_png(image) if image.any() else None


def place_background_picture(context, path, camera, shot):
    """A picture (not a job's result) shown as the shot's background plane, covering the frame."""
    obj = planes.import_plane(context, path, camera, planes.distance_for(camera, "background"),
                              planes.shot_collection(context.scene, shot),
                              f"{shot}_background", cover=True)
    obj["characterforge_background"] = path
    obj[planes.LAYER] = "background"
    planes.show_variant(obj)
    return obj


def make_background(context, seed=None):
    """A background for the shot: the user's own picture as a plane at once, or a generated one
    (following the set's depth when asked) placed when the job ends."""
    scene = context.scene
    s = scene.characterforge
    camera = joints.find_camera(scene)
    shot = s.shot or "Shot"
    if s.background_image:
        path = bpy.path.abspath(s.background_image)
        if not os.path.isfile(path):
            raise UserError(f"background picture {path} not found: choose another file or clear Background picture")
        place_background_picture(context, path, camera, shot)
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
    spec["draft"] = s.draft
    out_dir = os.path.join(resolve_dir(s.results_dir), shot)
    return jobs.start(context, spec, out_dir, functools.partial(place_shot, spec, shot, camera.name,
                                                                layer="background"))
