"""What every job takes from the scene, shared by the sheet, posed-character, background, shot
and expression code: seeds, folders, control maps, reference pictures, the selected character's
identity, the rigs' keypoints and face boxes."""

import json
import os
import random
import tempfile

import bpy
import numpy as np

from ...core.characters import character_lora, identity_pack, kinds
from ...core.errors import UserError
from ...core.image_io import encode_png
from ...core.rig import keypoints
from ...core.shots import shot_regions
from ...core.spec.job_spec import LIMITS

SEEDS = 2**31  # Blender's int properties (the Seed field, the planes' custom properties) are signed 32-bit


def pick_seed(settings):
    """The seed for a new job: a new random one, or the Seed field's."""
    return random.randrange(SEEDS) if settings.random_seed else settings.seed


def resolve_dir(path):
    """A folder setting as an absolute path; `//` in an unsaved file goes to the temp folder."""
    if path.startswith("//") and not bpy.data.filepath:
        return os.path.join(tempfile.gettempdir(), "characterforge", path[2:])
    return bpy.path.abspath(path)


def control_inputs(settings, folder):
    """{map: {"png", "strength"}} of the maps in `folder` a job sends: OpenPose (and hand depth)
    when humanoids are in view, depth, and the normal and line-art maps of creatures and objects."""
    manifest = {}
    if os.path.isfile(os.path.join(folder, "controls.json")):
        with open(os.path.join(folder, "controls.json"), encoding="utf-8") as f:
            manifest = json.load(f)
    found = manifest.get("kinds", {})
    humans = not found or any(k == kinds.HUMANOID for k in found.values())
    shapes = any(k != kinds.HUMANOID for k in found.values())
    # a batch's [shot] settings may not name the shape maps' strengths: the sidebar's defaults then
    shape = {k: getattr(settings, k, default) for k, default in (("shape_depth_strength", 0.8),
                                                                 ("normal_strength", 0.5), ("lineart_strength", 0.5))}
    files = {"openpose": settings.openpose_strength} if humans else {}
    if settings.use_depth or shapes:
        files["depth"] = shape["shape_depth_strength"] if shapes and not humans else settings.depth_strength
    if settings.use_hand_depth and humans:
        files["hand_depth"] = settings.hand_depth_strength
    if shapes:
        files.update(normal=shape["normal_strength"], lineart=shape["lineart_strength"])
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
    """(identity PNGs, mean face embedding or None) of a character pack (a PG_character): a
    humanoid's picked face crops, a creature's or object's whole views (it has no face)."""
    if pack.problem:
        raise UserError(f"character {pack.name!r} cannot be used: {pack.problem}")
    manifest = identity_pack.load_pack(pack.folder)
    if manifest["kind"] != kinds.HUMANOID:
        return identity_pack.identity_views(pack.folder), None
    return identity_pack.identity_faces(pack.folder), manifest.get("embedding")


def pack_look(pack):
    """(the pack's kind, its appearance embeddings or None) for a PG_character, or (humanoid,
    None) without a pack."""
    if pack is None or pack.problem:
        return kinds.HUMANOID, None
    return identity_pack.load_pack(pack.folder)["kind"], identity_pack.appearance(pack.folder)


def selected_look(context):
    """pack_look of the selected character when Generate uses it."""
    settings = context.scene.characterforge
    return pack_look(active_pack(context.scene) if settings.use_character else None)


def pack_lora(pack):
    """The `lora` a job sends for a character (a PG_character): its pack's LoRA at the weight set
    in the pack, or None without one."""
    return character_lora.job_lora(pack.folder)[0] if pack is not None else None


def identity_inputs(context):
    """(reference PNGs, mean embedding or None, LoRA or None): the selected character's identity
    faces and LoRA when Generate uses it, then the Reference picture if one is set."""
    settings = context.scene.characterforge
    references, embedding, lora = list(reference_pngs(settings)), None, None
    if settings.use_character:
        pack = active_pack(context.scene)
        faces, embedding = pack_identity(pack)
        references, lora = faces + references, pack_lora(pack)
    if len(references) > LIMITS["max_references"]:
        references = references[:LIMITS["max_references"]]  # the first faces picked, then the picture
    return references, embedding, lora


def lora_files(scene, spec):
    """{sha256: file} of the character LoRAs `spec` names, from the packs in the Characters list
    (sent to a backend that lacks them before the job)."""
    wanted = {i["lora"]["sha256"] for i in [spec.get("identity")] + [c.get("identity") for c in
                                                                     spec.get("characters", ())]
              if i and "lora" in i}
    out = {}
    for pack in scene.characterforge.characters:
        if wanted and not pack.problem and pack.lora:
            lora, path = character_lora.job_lora(pack.folder)
            if lora and lora["sha256"] in wanted:
                out[lora["sha256"]] = path
    missing = wanted - set(out)
    if missing:
        raise UserError(f"no character in the list holds the LoRA {sorted(missing)[0][:12]}…: refresh Characters")
    return out


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


def active_pack(scene, required=True):
    s = scene.characterforge
    if 0 <= s.active_character < len(s.characters):
        return s.characters[s.active_character]
    if required:
        raise UserError("pick a character in Characters first (or make a sheet)")
    return None
