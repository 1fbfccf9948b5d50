"""Pose from Picture: a photo or drawing goes to the backend's pose detector (the one the pose
score uses); the people it finds come back as OpenPose JSON, are kept next to the results,
and go onto the rig like any pose file (the largest person, or the one picked)."""

import functools
import os
import re

import bpy
import numpy as np

from ...core.errors import UserError
from ...core.image_io import encode_png
from ...core.spec.job_spec import LIMITS, detect_pose_spec
from ...core.rig.pose_formats import NoPeople
from . import pose_import
from .. import preferences
from ..generation import jobs
from ..generation.job_inputs import resolve_dir


def picture_png(path):
    """(PNG bytes, (width, height)) of a picture Blender can read, at most the jobs' largest side."""
    if not os.path.isfile(path):
        raise UserError(f"picture {path} not found: choose the photo or drawing again (Pose > Picture)")
    try:
        image = bpy.data.images.load(path, check_existing=False)
    except RuntimeError as exc:
        raise UserError(f"cannot read picture {path} ({str(exc).strip()}): use a PNG or JPEG file") from None
    try:
        w, h = image.size
        if not w or not h:
            raise UserError(f"picture {path} has no pixels Blender can read: use a PNG or JPEG file")
        side = LIMITS["max_side"]
        if max(w, h) > side:  # the detector sees people well below this; the job refuses more
            factor = side / max(w, h)
            image.scale(max(1, round(w * factor)), max(1, round(h * factor)))
            w, h = image.size
        pixels = np.empty(w * h * image.channels, dtype=np.float32)
        image.pixels.foreach_get(pixels)
        pixels = pixels.reshape(h, w, image.channels)[::-1]  # Blender's rows run bottom-up
        rgb = pixels[:, :, :3] if image.channels >= 3 else np.repeat(pixels[:, :, :1], 3, axis=2)
        rgb = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    finally:
        bpy.data.images.remove(image)
    return encode_png(rgb), (w, h)


def start(context, rig, path):
    """Send the picture to the backend; its pose lands on `rig` when the job completes."""
    pose_import.skeleton_for(rig)  # refuse another armature before any work
    path = bpy.path.abspath(path)
    png, _ = picture_png(path)
    spec = detect_pose_spec(png, preferences.job_profile(context))
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(os.path.basename(path))[0]) or "picture"
    out_dir = os.path.join(resolve_dir(context.scene.characterforge.results_dir), "poses", stem)
    return jobs.start(context, spec, out_dir, functools.partial(place_pose, rig.name, os.path.basename(path)))


def place_pose(rig_name, picture, scene, files, job_id):
    """Main thread, when the detector has answered: the found people onto the rig."""
    found = [f for f in files if f.endswith(".json")]
    if not found:
        raise UserError(f"the backend returned no pose for {picture}")
    rig = scene.objects.get(rig_name)
    if rig is None:
        return f"The pose of {picture} is saved in {found[0]}, but rig '{rig_name}' is gone: import it with Import Pose"
    s = scene.characterforge.pose_import
    try:
        reports = pose_import.import_files(bpy.context, found[:1], rig, s.people, s.person, s.keyframe, s.face,
                                           s.min_confidence)
    except NoPeople:
        raise UserError(f"the pose detector found nobody in {picture}: try a picture where the whole person is "
                        "clearly seen, or import a pose file") from None
    return f"Pose from {picture}: {reports[0]['line']}"
