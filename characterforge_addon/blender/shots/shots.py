"""A shot's characters composited into its background, and expression edits of a result:
the jobs built from the scene (rigs, creatures and objects playing characters, their identity
packs and prompts, masks, hand boxes) and their results placed as planes in the shot's
collection."""

import functools
import json
import os

import bpy
import numpy as np

from ...core.errors import UserError
from ...core.image_io import decode_png
from ...core.rig import keypoints
from ...core.shots import shot_regions
from ...core.spec.job_spec import expression_spec, LIMITS, shot_spec, validate_job
from .. import preferences
from ...core.characters import kinds
from ..characters.subjects import marked_in_scene
from ..generation import generation, job_inputs, jobs, planes
from ..maps import controls
from ..rig import joints
from ..rig.rig import rigs_in_scene
from . import light_rig

def background_file(scene, shot):
    """The image file of the shot's background plane shown now (the latest if none is shown)."""
    collection = bpy.data.collections.get(shot)
    found = [o for o in (collection.objects if collection else ()) if o.get(planes.LAYER) == "background"]
    shown = [o for o in found if not o.hide_render] or found
    if not shown:
        raise UserError(f"shot '{shot}' has no background yet: make one first (Shot > Make Background), "
                        "generated or from your own picture")
    path = planes.file_of(shown[-1])
    if not path or not os.path.isfile(path):
        raise UserError(f"the background of shot '{shot}' ({path}) is missing on disk: make the background again")
    return path


def rig_pack(scene, rig, only_rig):
    """The identity pack a rig (or a creature or object: an Object or a Collection) plays (a
    PG_character), or None."""
    s = scene.characterforge
    name = rig.characterforge.character
    if name:
        pack = s.characters.get(name)
        if pack is None:  # the list is not saved with the .blend: read the packs folder again
            from ..characters.characters import refresh
            refresh(scene)
            pack = s.characters.get(name)
        if pack is None:
            raise UserError(f"'{rig.name}' plays character {name!r}, which is not in Characters "
                            f"({s.characters and ', '.join(c.name for c in s.characters) or 'none'}): refresh the "
                            "list or pick another character for the rig")
        return pack
    if only_rig and s.use_character:
        return job_inputs.active_pack(scene)
    return None


def rig_prompt(scene, rig):
    return rig.characterforge.prompt.strip() or scene.characterforge.prompt


def make_shot(context, seed=None):
    """Render the maps, build the shot job from every rig in view and start it; the composite
    (and, cut out, the characters with alpha) come back as planes of the shot."""
    scene = context.scene
    s = scene.characterforge
    camera = joints.find_camera(scene)
    shot = s.shot or "Shot"
    background = job_inputs.picture_png(background_file(scene, shot), "background")
    shot_dir = os.path.join(job_inputs.resolve_dir(s.results_dir), shot)
    if seed is None:
        seed = job_inputs.pick_seed(s)
    s.seed = seed
    relight = None  # Relight on: the composite relit by the scene's lights in the same job
    if s.relight_composite:
        relight, _ = light_rig.shot_relight(context, camera, os.path.join(shot_dir, light_rig.LIGHT_DIR))
    spec, rigs, (w, h) = shot_job(context, camera, background, os.path.join(shot_dir, "controls"), seed,
                                  relight=relight)
    controls_dir = os.path.join(shot_dir, "controls")
    # each character's cut-out is a plane of its own, so it can be moved or hidden on its own
    cutouts = {f"{spec['name']}_cutout_{job_inputs.safe_key(rig.name)}" for rig in rigs}
    extra = {**planes.pose_props(spec, job_inputs.rig_faces(controls_dir, w, h)), **light_rig.view_props(scene, camera)}
    place = functools.partial(generation.place_shot, spec, shot, camera.name, cutouts=cutouts, extra=extra)
    return jobs.start(context, spec, shot_dir, light_rig.placing_relit(place) if relight else place)


def shot_job(context, camera, background, controls_dir, seed, previous=None, manifest=None, relight=None):
    """(the validated shot spec of the scene's shot as `camera` sees it now, the rigs in view,
    the maps' resolution): maps rendered into `controls_dir`, the rigs' packs and prompts,
    the hands' boxes, on `background` (PNG bytes); `previous`: a moving shot's carried frame;
    `manifest`: the maps' manifest when they are rendered already; `relight`: the composite
    relit too (light_rig.shot_relight)."""
    scene = context.scene
    s = scene.characterforge
    if manifest is None:
        manifest = controls.render_controls(context, controls_dir, camera, s.drop_occluded, preview=False)
    w, h = manifest["resolution"]
    seen = []  # (rig, creature or object, mask PNG) of the characters the camera sees
    every = rigs_in_scene(scene) + [subject.obj or subject.collection for subject in marked_in_scene(scene)]
    for rig in every:
        with open(os.path.join(controls_dir, manifest["masks"][rig.name]), "rb") as f:
            mask = f.read()
        if decode_png(mask).any():
            seen.append((rig, mask))
    if not seen:
        raise UserError(f"the camera '{camera.name}' sees none of the rigs, creatures or objects playing characters: "
                        "frame at least one character")
    rigs = [rig for rig, _ in seen]
    characters = []
    for rig, mask in seen:
        kind = manifest["kinds"].get(rig.name, kinds.HUMANOID)
        pack = rig_pack(scene, rig, len(rigs) == 1)
        references, embedding = job_inputs.pack_identity(pack) if pack else ([], None)
        _, look = job_inputs.pack_look(pack)
        characters.append({"name": job_inputs.safe_key(rig.name), "kind": kind, "prompt": rig_prompt(scene, rig),
                           "mask": mask, "references": references[:LIMITS["max_references"]], "embedding": embedding,
                           "scale": s.identity_scale if kind == kinds.HUMANOID else 0.0,
                           "lora": job_inputs.pack_lora(pack), "appearance": look,
                           "appearance_scale": s.appearance_scale})
    map_w, map_h, people = job_inputs.maps_people(controls_dir)
    boxes = shot_regions.hand_boxes(people, w // 8 * 8, h // 8 * 8, (map_w, map_h)) if s.fix_hands else []
    spec = shot_spec(s.background_prompt, job_inputs.control_inputs(s, controls_dir), w, h, background, characters,
                     s.negative_prompt, seed, s.steps, s.guidance, preferences.job_profile(context),
                     name=f"shot_seed{seed}", mode=s.composite_mode.lower(), grow=s.composite_grow,
                     feather=s.composite_feather, character_strength=s.character_strength, harmonize=s.harmonize,
                     hands=s.fix_hands, hand_strength=s.hand_fix_strength, hand_boxes=boxes[:LIMITS["max_hands"]],
                     keypoints=job_inputs.rig_keypoints(controls_dir, w, h), previous=previous)
    spec["draft"] = s.draft
    if relight:
        spec = validate_job(dict(spec, relight=relight))
    return spec, rigs, (w, h)


def expression_face(scene, obj, width, height):
    """(rig, face box in the picture's pixels) of the face to change, from the pose that made
    the picture (kept on its plane): the chosen rig's, else the first whose face shows. The box
    is the rig's face keypoints', or its head joints' (nose, eyes, ears) where those are missing."""
    wanted = job_inputs.safe_key(scene.characterforge.expression_rig) if scene.characterforge.expression_rig else ""
    faces = json.loads(obj.get(planes.FACES, "{}"))
    bodies = json.loads(obj.get(planes.KEYPOINTS, "{}"))
    for name in list(faces) + [n for n in bodies if n not in faces]:
        if wanted and name != wanted:
            continue
        box = faces.get(name) or shot_regions.face_box(
            keypoints.Person(name, body=np.asarray(bodies[name], dtype=np.float64)), width, height)
        if box:
            return next((r for r in rigs_in_scene(scene) if job_inputs.safe_key(r.name) == name), None), box
    who = f"rig '{scene.characterforge.expression_rig}'" if wanted else "any rig"
    raise UserError(f"'{obj.name}' shows no face of {who} large enough to redraw (or it was not made from the "
                    "rigs): turn the face towards the camera or frame it closer, make the picture again, or choose "
                    "another rig under Whose face")


def make_expression(context, obj, seed=None):
    """Redraw the face in the result plane `obj` with the chosen expression; the new picture
    becomes a variant next to it (the original is kept)."""
    scene = context.scene
    s = scene.characterforge
    path = planes.file_of(obj) if obj is not None else None
    if not path or obj.get(planes.LAYER, planes.PICTURE) != planes.PICTURE:
        raise UserError("select a result plane (a posed character or a composite) to change its expression")
    if not os.path.isfile(path):
        raise UserError(f"the picture of '{obj.name}' ({path}) is missing on disk: generate it again")
    with open(path, "rb") as f:
        png = f.read()
    height, width = decode_png(png).shape[:2]
    collection = obj.users_collection[0]
    shot_dir = os.path.dirname(path)
    rig, box = expression_face(scene, obj, width, height)
    pack = rig_pack(scene, rig, len(rigs_in_scene(scene)) == 1) if rig else None
    references, embedding = job_inputs.pack_identity(pack) if pack else ([], None)
    expression = s.expression.lower()
    if seed is None:
        seed = job_inputs.pick_seed(s)
    stem = os.path.splitext(os.path.basename(path))[0]
    spec = expression_spec(png, width, height, expression, rig_prompt(scene, rig) if rig else s.prompt,
                           s.expression_custom, box, s.negative_prompt, seed, s.steps, s.guidance,
                           preferences.job_profile(context), name=f"{stem}_{expression}"[:64],
                           strength=s.expression_strength, references=references[:LIMITS["max_references"]],
                           embedding=embedding, identity_scale=s.identity_scale, lora=job_inputs.pack_lora(pack))
    spec["draft"] = s.draft
    camera = obj.parent
    if camera is None:
        raise UserError(f"'{obj.name}' is not attached to a camera any more: make the result again")
    # the pose goes along (a later edit of this edit finds the face), and the source (for Regenerate)
    keep = {key: obj[key] for key in (planes.KEYPOINTS, planes.FACES) if key in obj}
    keep["characterforge_source"] = obj.name
    place = functools.partial(generation.place_shot, spec, collection.name, camera.name, extra=keep)
    return jobs.start(context, spec, shot_dir, place)
