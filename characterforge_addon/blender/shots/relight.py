"""Relight a picture with the scene's own lights (Shot > Relight): the selected result (a
composite, a posed character, a background of the frame's shape), or the shot's picture shown;
the light reference rendered for the picture's camera (light_rig), the characters' masks, depth
and normals from the control maps, each character's identity, and a `relight` job over the
characters, one character, or the whole picture. The relit picture is a new variant next to
the original, which is kept."""

import functools
import json
import os

import bpy

from ...core.characters import kinds
from ...core.errors import UserError
from ...core.image_io import decode_png
from ...core.spec.job_spec import LIMITS, relight_spec
from .. import preferences
from ..characters.subjects import marked_in_scene
from ..generation import generation, job_inputs, jobs, planes
from ..maps import controls, light
from ..rig.rig import rigs_in_scene
from . import light_rig, shots

RELIGHT_DIR = "relight"  # in the shot's folder: the maps and light reference of the latest relight


def source_plane(context, obj=None):
    """The plane to relight: `obj` (the selected result), else the shot's picture shown."""
    scene = context.scene
    if obj is None or planes.file_of(obj) is None:
        collection = planes.shot_collection(scene, scene.characterforge.shot or "Shot")
        shown = [o for o in collection.objects if o.get(planes.LAYER) == planes.PICTURE and not o.hide_render]
        if not shown:
            raise UserError("select a result to relight (a composite, a posed character or a background), or make "
                            "the shot's composite first (Composite Characters)")
        obj = shown[-1]
    if str(obj.get(planes.LAYER, planes.PICTURE)).startswith("cutout"):
        raise UserError(f"'{obj.name}' is a cut-out: relight the composite it belongs to instead")
    if obj.parent is None or obj.parent.type != "CAMERA":
        raise UserError(f"'{obj.name}' is not attached to a camera any more: make the picture again")
    return obj


def _active_character(context, characters):
    """The name of the character the active object plays: itself (a rig, creature or object),
    or the collection character it is a part of; "" when it plays none."""
    active = context.view_layer.objects.active
    if active is None:
        return ""
    if active.type == "ARMATURE" and active.characterforge.is_rig or active.characterforge.is_character:
        return active.name
    return next((c.name for c in characters if isinstance(c, bpy.types.Collection) and active.name in c.all_objects),
                "")


def _relit_characters(context, target, manifest, controls_dir):
    """[(rig, creature or object, mask PNG)] of the characters to relight (or, for the whole
    picture, to keep their identities)."""
    scene = context.scene
    seen = []
    every = rigs_in_scene(scene) + [subject.obj or subject.collection for subject in marked_in_scene(scene)]
    for thing in every:
        with open(os.path.join(controls_dir, manifest["masks"][thing.name]), "rb") as f:
            mask = f.read()
        if decode_png(mask).any():
            seen.append((thing, mask))
    if target != "CHARACTER":
        if not seen and target == "CHARACTERS":
            raise UserError("the camera sees none of the characters (rigs, creatures or objects playing characters): "
                            "relight the whole shot, or frame a character")
        return seen
    wanted = scene.characterforge.relight_rig or _active_character(context, [thing for thing, _ in seen])
    if not wanted:
        raise UserError("choose whose light to change (Whose light), or select the character's rig, creature or "
                        "object")
    chosen = [(thing, mask) for thing, mask in seen if thing.name == wanted]
    if not chosen:
        raise UserError(f"the camera does not see character '{wanted}': frame it, or choose another under Whose light")
    return chosen


def relight(context, obj=None, seed=None):
    """Relight the picture of `obj` (or the shot's shown picture) with the scene's lights as they
    are now; the relit picture comes back as a new variant of the same layer."""
    scene = context.scene
    s = scene.characterforge
    plane = source_plane(context, obj)
    path = planes.file_of(plane)
    if not path or not os.path.isfile(path):
        raise UserError(f"the picture of '{plane.name}' ({path}) is missing on disk: make it again")
    with open(path, "rb") as f:
        png = f.read()
    height, width = decode_png(png).shape[:2]
    if width % 8 or height % 8:
        raise UserError(f"'{plane.name}' is {width}x{height}: a relight takes pictures whose sides are multiples of "
                        "8, as the add-on makes them (a picture of your own: make the shot's composite from it)")
    camera = plane.parent
    view = light_rig.picture_view(scene, plane, camera)
    work = os.path.join(os.path.dirname(path), RELIGHT_DIR)
    controls_dir = os.path.join(work, "controls")
    manifest = controls.render_controls(context, controls_dir, camera, s.drop_occluded, preview=False, normals=True)
    target = s.relight_target
    characters = []
    mw, mh = manifest["resolution"]
    if abs(width / height - mw / mh) > 0.02 * mw / mh:
        raise UserError(f"'{plane.name}' is {width}x{height}, not the shape of camera '{camera.name}''s {mw}x{mh} "
                        "frame: a relight follows the camera's frame; relight a picture made for it (a composite)")
    only = len(rigs_in_scene(scene)) + len(marked_in_scene(scene)) == 1
    for thing, mask in _relit_characters(context, target, manifest, controls_dir):
        kind = manifest["kinds"].get(thing.name, kinds.HUMANOID)
        pack = shots.rig_pack(scene, thing, only)
        references, embedding = job_inputs.pack_identity(pack) if pack else ([], None)
        _, look = job_inputs.pack_look(pack)
        characters.append({"name": job_inputs.safe_key(thing.name), "kind": kind,
                           "prompt": shots.rig_prompt(scene, thing), "mask": mask,
                           "references": references[:LIMITS["max_references"]], "embedding": embedding,
                           "scale": s.identity_scale if kind == kinds.HUMANOID else 0.0,
                           "appearance": look, "appearance_scale": s.appearance_scale})
    light_dir = os.path.join(work, light_rig.LIGHT_DIR)
    lit = light_rig.render(context, camera, light_dir)
    maps = {}
    if s.use_depth:
        for name in ("depth", "normal"):
            with open(os.path.join(controls_dir, f"{name}.png"), "rb") as f:
                maps[name] = {"png": f.read(), "strength": s.depth_strength}
    made = json.loads(plane.get("characterforge_job", "{}"))
    prompt = ", ".join(p for p in (made.get("prompt", "").strip(), s.relight_prompt.strip()) if p)
    if seed is None:
        seed = job_inputs.pick_seed(s)
    stem = os.path.splitext(os.path.basename(path))[0]
    spec = relight_spec(png, width, height, view, light.spec_light(light_dir, lit), characters, maps, prompt,
                        s.negative_prompt, seed, s.steps, s.guidance, preferences.job_profile(context),
                        name=f"{stem}_relit"[:64], whole=target == "WHOLE", grow=s.composite_grow,
                        feather=s.composite_feather, strength=s.relight_strength, shading=s.relight_shading,
                        margin=s.relight_margin)
    spec["draft"] = s.draft
    keep = {key: plane[key] for key in (planes.KEYPOINTS, planes.FACES) if key in plane}
    keep.update({light_rig.VIEW: json.dumps(view), "characterforge_source": plane.name})
    collection = plane.users_collection[0]
    place = functools.partial(generation.place_shot, spec, collection.name, camera.name,
                              layer=plane.get(planes.LAYER, planes.PICTURE), extra=keep)
    return jobs.start(context, spec, os.path.dirname(path), light_rig.placing_relit(place))
