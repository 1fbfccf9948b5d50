"""The set's workflow from the sidebar and scripts: project the shot's background onto the
set, fill the set from another camera (a `background` job with `fill`: only what no camera
painted is generated), each camera's shot getting its view of the set as its background."""

import functools
import os

import bpy
import numpy as np

from ...core.errors import UserError
from ...core.image_io import encode_png, write_atomic
from ...core.shots import set_projection as rule
from ...core.spec.job_spec import background_spec
from .. import preferences
from ..generation import generation, jobs, planes
from ..generation.job_inputs import pick_seed, resolve_dir
from ..rig import joints
from . import set_projection


def shown_background(scene, shot):
    """The background plane shown in `shot`, or None."""
    collection = bpy.data.collections.get(shot)
    if collection is None:
        return None
    return next((o for o in collection.objects if o.get(planes.LAYER) == "background" and not o.hide_render), None)


def project_background(context):
    """The active camera's shot background projected onto the set from that camera."""
    scene = context.scene
    shot = scene.characterforge.shot or "Shot"
    camera = joints.find_camera(scene)
    plane = shown_background(scene, shot)
    path = planes.file_of(plane) if plane else None
    if not path:
        raise UserError(f"shot '{shot}' has no background to project: make one first (Shot > Background)")
    set_projection.project(context, camera, path)
    return f"Projected '{os.path.basename(path)}' onto {len(set_projection.set_objects(scene))} set object(s) " \
           f"from {camera.name} (layer {len(set_projection.layers(scene))})"


def fill_from_camera(context, seed=None):
    """For the active camera: the set as painted so far; what no layer paints well is generated
    (the painted part as context, the set's depth guiding it) and projected from this camera.
    Its view becomes the shot's background. Returns the job, or None when nothing was missing."""
    scene = context.scene
    s = scene.characterforge
    camera = joints.find_camera(scene)
    shot = s.shot or "Shot"
    out_dir = os.path.join(resolve_dir(s.results_dir), shot)
    os.makedirs(out_dir, exist_ok=True)
    depth = set_projection.set_depth(scene, camera)
    painted = set_projection.render_view(scene, camera)
    missing = rule.unpainted(depth < rule.BACKGROUND_DEPTH, set_projection.render_view(scene, camera, coverage=True))
    if not missing.any():
        path = os.path.join(out_dir, f"set_view_{bpy.path.clean_name(camera.name)}.png")
        write_atomic(path, encode_png(painted))
        generation.place_background_picture(context, path, camera, shot)
        return None
    if not s.background_prompt.strip():
        raise UserError("describe the set (Background prompt): it guides what is generated where no camera painted it")
    if seed is None:
        seed = pick_seed(s)
    w, h = joints.camera_model(scene, camera).resolution
    mask = np.where(missing, np.uint8(255), np.uint8(0))
    spec = background_spec(s.background_prompt, w, h, generation.set_depth_png(context, camera), s.depth_strength,
                           s.negative_prompt, seed, s.steps, s.guidance, preferences.job_profile(context),
                           name=f"set_fill_{bpy.path.clean_name(camera.name)}_seed{seed}", sharp=s.background_sharp,
                           fill=(encode_png(painted), encode_png(mask)))
    spec["draft"] = s.draft
    return jobs.start(context, spec, out_dir, functools.partial(place_fill, spec, shot, camera.name, missing))


def place_fill(spec, shot, camera_name, missing, scene, files, job_id):
    """The fill's picture: projected from its camera (so from there the set shows exactly this
    picture), and shown as the shot's background."""
    camera = scene.objects.get(camera_name)
    if camera is None:
        return f"Saved {files[0]}; camera '{camera_name}' is gone, so the set was not filled"
    set_projection.project(bpy.context, camera, files[0])
    generation.place_shot(spec, shot, camera_name, scene, files, job_id, layer="background")
    return f"Filled {missing.mean():.0%} of {camera_name}'s view of the set; the rest kept as painted"

