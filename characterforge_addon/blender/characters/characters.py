"""Characters in Blender: render a rig's (or a creature's or object's) sheet maps, send the
sheet job, turn its results into an identity pack and the sheet into an image plane; list,
rename, import and export packs; train a character's LoRA from its pack and keep it there."""

import functools
import os

import bpy

from ...core.characters import character_lora, identity_pack, kinds, sheet_layout
from ...core.errors import UserError
from ...core.spec.job_spec import character_sheet_spec, safe_name
from .. import preferences
from ..generation import jobs, planes
from ..generation.job_inputs import active_pack, identity_inputs, pick_seed, resolve_dir, selected_look
from ..maps import controls
from ..rig.rig import rigs_in_scene, ROLE
from . import subjects
from .object_sheet import render_object_sheet
from .sheet import render_sheet

SHEETS_COLLECTION = "Character sheets"
SHEET_HEIGHT = 2.0  # metres: the plane stands a little taller than the character


def packs_root(context=None):
    prefs = preferences.get(context)
    if prefs.characters_dir:
        return bpy.path.abspath(prefs.characters_dir)
    return bpy.utils.user_resource("DATAFILES", path=os.path.join("characterforge", "characters"), create=True)


def sheet_rig(context):
    """The rig the sheet is made from: the active object if it is a rig, else the only rig."""
    obj = context.active_object
    if obj is not None and obj.type == "ARMATURE" and obj.characterforge.is_rig:
        return obj
    rigs = rigs_in_scene(context.scene)
    if len(rigs) == 1:
        return rigs[0]
    raise UserError("select the rig to make the sheet from" if rigs else
                    "the scene has no OpenPose rig: add one with Pose > Add rig")


def sheet_subject(context):
    """The character the sheet is made from (a subjects.Subject): the 'Sheet of' setting, else
    the active object (an armature, a mesh; a rig's proxy or a mesh an armature moves stands
    for that armature), else the only rig."""
    s = context.scene.characterforge
    if s.sheet_subject:
        return subjects.subject_of(subjects.find(s.sheet_subject))
    obj = context.active_object
    if obj is not None and obj.type == "MESH" and obj.get(ROLE) != "result_plane":
        owner = obj.parent if obj.parent is not None and obj.parent.type == "ARMATURE" else next(
            (m.object for m in obj.modifiers if m.type == "ARMATURE" and m.object is not None), None)
        return subjects.subject_of(owner or obj)
    if obj is not None and obj.type == "ARMATURE":
        return subjects.subject_of(obj)
    return subjects.subject_of(sheet_rig(context))


def layout_from(settings):
    return sheet_layout.plan_sheet(
        settings.sheet_width, settings.sheet_height,
        sheet_layout.parse_views(settings.sheet_body_views, "Body views"),
        sheet_layout.parse_views(settings.sheet_face_views, "Face views"), settings.sheet_spacing)


def make_sheet(context, name=None, seed=None):
    """Render the sheet maps from the rig and start the sheet job; the pack is made when it ends.
    Returns what would make the figures fill their cells better ("" when they do)."""
    scene = context.scene
    s = scene.characterforge
    name = safe_name(name or s.character_name, "character name")
    root = packs_root(context)
    if os.path.exists(os.path.join(root, name)):
        raise UserError(f"a character named {name!r} already exists in {root}: pick another name")
    subject = sheet_subject(context)
    out_dir = os.path.join(resolve_dir(s.results_dir), "sheets", name)
    maps_dir = os.path.join(out_dir, "maps")
    if subject.kind == kinds.HUMANOID:
        record = render_sheet(context, subject.obj, maps_dir, layout_from(s), depth=s.sheet_use_depth,
                              pose=s.sheet_pose)
        wanted = [("openpose", s.openpose_strength)] + ([("depth", s.depth_strength)] if s.sheet_use_depth else [])
    else:
        record = render_object_sheet(context, subject, maps_dir, s.sheet_width, s.sheet_height, s.sheet_object_views,
                                     s.sheet_detail_views, s.sheet_detail_part, s.sheet_spacing)
        wanted = [("depth", s.shape_depth_strength), ("normal", s.normal_strength), ("lineart", s.lineart_strength)]
    if seed is None:
        seed = pick_seed(s)
    s.seed = seed
    controls = {}
    for control, strength in wanted:
        with open(os.path.join(maps_dir, f"{control}.png"), "rb") as f:
            controls[control] = {"png": f.read(), "strength": strength}
    references, _, lora = identity_inputs(context)  # a new sheet of the selected character keeps it
    look_kind, _ = selected_look(context)
    style = s.sheet_style
    if subject.kind != kinds.HUMANOID and style == kinds.STYLE[kinds.HUMANOID]:  # the humanoid default: the kind's
        style = kinds.STYLE[subject.kind]
    spec = character_sheet_spec(
        s.prompt, controls, record, style=style, negative_prompt=s.negative_prompt, seed=seed,
        steps=s.steps, guidance=s.guidance, profile=preferences.job_profile(context), name=name,
        references=references, identity_scale=s.identity_scale if look_kind == kinds.HUMANOID else 0.0,
        upscale=s.sheet_upscale, upscale_strength=s.sheet_upscale_strength, tile=1024,
        face_detail=s.sheet_face_detail and subject.kind == kinds.HUMANOID, face_strength=s.sheet_face_strength,
        lora=lora, subject=subject.kind)
    jobs.start(context, spec, out_dir, functools.partial(place_sheet, name, root, subject.name, record=record))
    return record["advice"]


def place_sheet(name, root, subject_name, scene, files, job_id, record=None):
    """Main thread, when the sheet job ends: the identity pack (keeping the sheet's layout
    `record`), and the sheet as a plane."""
    results = {}
    for path in files:
        with open(path, "rb") as f:
            results[os.path.splitext(os.path.basename(path))[0]] = f.read()
    versions = {"characterforge": "0.1.0", "blender": bpy.app.version_string}
    folder = identity_pack.create_pack(root, name, results, versions, layout=record)
    thing = scene.objects.get(subject_name) or bpy.data.collections.get(subject_name)
    sheet_plane(scene, os.path.join(folder, "sheet.png"), name, thing, job_id)
    refresh(scene)
    scene.characterforge.active_character = next(
        (i for i, c in enumerate(scene.characterforge.characters) if c.name == name), 0)
    return f"Character '{name}' saved to {folder}"


def sheet_plane(scene, path, name, rig, job_id=""):
    """The sheet as an upright image plane in the 'Character sheets' collection, beside the rig."""
    root = bpy.data.collections.get(SHEETS_COLLECTION)
    if root is None:
        root = bpy.data.collections.new(SHEETS_COLLECTION)
    if root.name not in scene.collection.children:
        scene.collection.children.link(root)
    result = bpy.ops.image.import_as_mesh_planes(files=[{"name": os.path.basename(path)}],
                                                 directory=os.path.dirname(path), shader="EMISSION",
                                                 align_axis="-Y", relative=False, size_mode="ABSOLUTE",
                                                 height=SHEET_HEIGHT)
    if result != {"FINISHED"}:
        raise UserError(f"Import Images as Planes failed for {path}")
    obj = bpy.context.active_object
    obj.name = f"{name} sheet"
    for coll in list(obj.users_collection):
        coll.objects.unlink(obj)
    root.objects.link(obj)
    # stand it behind the character, facing the same way, its bottom on the floor
    base = (0.0, 0.0, 0.0)
    if isinstance(rig, bpy.types.Collection):
        meshes = [o for o in rig.all_objects if o.type == "MESH"]
        base = sum((o.matrix_world.translation for o in meshes), meshes[0].matrix_world.translation * 0) / len(
            meshes) if meshes else base
    elif rig is not None:
        base = rig.matrix_world.translation
    obj.location = (base[0], base[1] + 2.0, base[2] + SHEET_HEIGHT / 2)
    obj[ROLE] = "result_plane"
    planes.tag_scores(obj, path)  # the sheet's faces compared with each other
    obj["characterforge_character"] = name
    obj["characterforge_job_id"] = job_id
    return obj


def refresh(scene):
    """Fill the panel's character list (each one's faces and LoRA) from the packs folder."""
    s = scene.characterforge
    s.characters.clear()
    for name, folder, problem in identity_pack.list_packs(packs_root()):
        item = s.characters.add()
        item.name, item.folder, item.problem = name, folder, problem or ""
        if not problem:
            manifest = identity_pack.load_pack(folder)
            item.kind = manifest["kind"]
            for face in manifest["faces"]:
                entry = item.faces.add()
                entry.name, entry.use = face["name"], bool(face.get("use_as_identity", True))
            lora = manifest.get("lora")
            if lora:
                item.lora, item.lora_trigger, item.lora_weight = lora["name"], lora.get("trigger", ""), lora["weight"]
                item.lora_info = lora_info(lora)


def lora_info(lora):
    """How a LoRA was trained, in one line for the panel."""
    learned = ""
    if lora.get("loss_before") and lora.get("loss_after"):
        learned = f", loss {lora['loss_before']:.3f} → {lora['loss_after']:.3f}"
    return f"rank {lora.get('rank')}, {lora.get('steps')} steps on {lora.get('profile') or 'its base'}{learned}"


def train_lora(context):
    """Send the selected character's pack as a LoRA training job; the LoRA and its samples go
    into the pack when the job is complete (and only then)."""
    s = context.scene.characterforge
    pack = active_pack(context.scene)
    if pack.problem:
        raise UserError(f"character {pack.name!r} cannot be used: {pack.problem}")
    trigger = s.dataset_trigger or character_lora.default_trigger(pack.name)
    spec = character_lora.train_spec(pack.folder, trigger, preferences.job_profile(context), s.dataset_flip,
                                     steps=s.train_steps, rank=s.train_rank, resolution=s.train_resolution,
                                     train_text_encoder=s.train_text_encoder, seed=pick_seed(s),
                                     sample_every=max(1, s.train_steps // 5), checkpoint_every=max(1, s.train_steps // 10))
    out_dir = os.path.join(resolve_dir(s.results_dir), "loras", pack.name)
    return jobs.start(context, spec, out_dir, functools.partial(place_lora, pack.folder, pack.name))


def place_lora(folder, name, scene, files, job_id):
    """Main thread, when the training job is complete: the LoRA and its samples into the pack."""
    lora = next((f for f in files if f.endswith(".safetensors")), None)
    if lora is None:
        raise UserError(f"the training job {job_id} returned no LoRA file")
    samples = sorted(f for f in files if os.path.basename(f).startswith("sample_"))
    entry = character_lora.add_lora(folder, lora, samples)
    refresh(scene)
    show_lora_samples(scene, folder)
    return f"LoRA of '{name}' saved in its pack ({lora_info(entry)}); trigger word '{entry['trigger']}'"


def show_lora_samples(scene, folder):
    """The LoRA's sample pictures as Blender images ('<character> LoRA <sample>'), the last one
    shown as the preview; returns their names."""
    entry, _ = character_lora.pack_lora(folder)
    if entry is None:
        raise UserError(f"character {os.path.basename(folder)!r} has no LoRA yet: train one first")
    names = []
    for relative in entry["samples"]:
        name = f"{entry['name']} LoRA {os.path.splitext(os.path.basename(relative))[0]}"
        controls.show_image(name, os.path.join(folder, relative))
        names.append(name)
    if entry["samples"]:
        controls.show_image(jobs.PREVIEW_IMAGE, os.path.join(folder, entry["samples"][-1]))
    return names


def toggle_identity_face(scene, index):
    """Switch one face crop of the selected character in or out of its identity references."""
    character = active_pack(scene)
    if not 0 <= index < len(character.faces):
        raise UserError(f"character {character.name!r} has no face number {index + 1}")
    face = character.faces[index]
    picked = [f.name for f in character.faces if f.use != (f == face)]
    identity_pack.pick_identity_faces(character.folder, picked)
    face.use = not face.use
