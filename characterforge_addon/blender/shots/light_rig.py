"""The shot's light rig as jobs take it: the light reference rendered with the Shot section's
settings (samples, size; the set's dome left out, or it would shadow every sun), turned into a
shot spec's `relight`; the camera a picture was made from, kept on its plane so a relight can
tell when the camera has moved since; and what a relit result's planes show and say."""

import json
import os

from ...core.image_io import read_png_text
from ...core.spec.job_spec import relight_options
from ..generation import planes
from ..maps import light
from ..sets.set_projection import dome

VIEW = "characterforge_view"  # on a plane: the camera (maps.light.camera_view) as it stood for its picture
LIGHT_DIR = "light"  # a shot's (or a frame's) light reference, next to its controls


def view_props(scene, camera):
    """The custom property keeping `camera`'s view on the planes of a picture made now."""
    return {VIEW: json.dumps(light.camera_view(scene, camera))}


def picture_view(scene, obj, camera):
    """The view a plane's picture was made from: kept on the plane, else `camera` as it is now
    (planes made before views were kept)."""
    return json.loads(obj[VIEW]) if VIEW in obj else light.camera_view(scene, camera)


def render(context, camera, out_dir, white=None):
    """The light reference for `camera` into `out_dir` (maps.light.light_reference) with the
    Shot section's samples and size."""
    s = context.scene.characterforge
    hide = [d for d in (dome(context.scene),) if d is not None]
    return light.light_reference(context, camera, out_dir, hide=hide, samples=s.light_samples, scale=s.light_scale,
                                 white=white)


def shot_relight(context, camera, out_dir, white=None):
    """(a shot spec's `relight`, the light reference's manifest): the light reference for
    `camera` rendered into `out_dir` with the Shot section's relight settings."""
    s = context.scene.characterforge
    manifest = render(context, camera, out_dir, white)
    options = relight_options(light.spec_light(out_dir, manifest), light.camera_view(context.scene, camera),
                              s.relight_strength, s.relight_shading, s.relight_margin)
    return options, manifest


def previous_white(previous_dir):
    """The white of the light reference a moving shot's previous frame used (its frames share
    one, so the light's brightness does not flicker), or None."""
    path = os.path.join(previous_dir, LIGHT_DIR, light.MANIFEST) if previous_dir else ""
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)["white"]


def relight_record(path):
    """The relight's record in a result PNG's metadata, or None."""
    with open(path, "rb") as f:
        return json.loads(read_png_text(f.read()).get("characterforge", "{}")).get("relight")


def summary(record):
    """What a relight found, in a line: how well the shading follows the light before and after,
    and an identity that fell past the margin."""
    agreement = record["agreement"]
    parts = []
    if agreement["before"] is not None and agreement["after"] is not None:
        parts.append(f"shading follows the light {agreement['before']:.2f} -> {agreement['after']:.2f}")
    if record["identity"].get("message"):
        parts.append(record["identity"]["message"])
    return "; ".join(parts)


def placing_relit(place):
    """`place` (generation.place_shot bound to its shot) for a job whose first result is relit:
    the relit plane shown over the others of its layer, what the relight found said."""
    def placed(scene, files, job_id):
        message = place(scene, files, job_id)
        relit = next((o for o in scene.objects if o.get("characterforge_job_id") == job_id
                      and planes.file_of(o) == files[0]), None) if files else None
        if relit is None:
            return message
        planes.show_variant(relit)
        record = relight_record(files[0])
        if record:
            relit["characterforge_relight"] = json.dumps({k: record[k] for k in ("agreement", "identity", "words")})
            said = summary(record)
            return f"{message}; {said}" if said else message
        return message
    return placed
