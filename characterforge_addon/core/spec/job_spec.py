"""Job specs: the one type that crosses every boundary (panel -> client -> HTTP -> backend).

Pure Python so the add-on and the backend validate the very same fields with the very same
limits. A spec is plain JSON; `validate_job` returns a normalised copy or raises JobSpecError
naming the field, what is wrong and how to fix it. Each kind's fields are declared once
(`SCHEMAS`, with `spec_fields`): the validator and the published JSON Schema both come from
that declaration; the few rules that tie fields together follow it.
"""

from ..characters.kinds import HUMANOID, KINDS
from . import animation_spec
from .spec_fields import (Box, Choice, Const, Flag, Image, image_values, Integer, JobSpecError, ListOf, map_images,
                          MapOf, Name, Number, Obj, picture_ref, safe_name, Text)
from .training_spec import lora_field
from .training_spec import table as training_table

SPEC_VERSION = 1
JOB_KINDS = ("posed_character", "character_sheet", "background", "shot", "expression", "train_lora", "detect_pose",
             "animation", "relight")
CONTROL_KINDS = ("openpose", "depth", "hand_depth", "normal", "lineart")

LIMITS = {
    "max_side": 2048,          # width and height, pixels
    "max_pixels": 2048 * 2048,  # below Pillow's decompression-bomb limit (about 89 M pixels)
    "max_steps": 150,
    "max_batch": 4,
    "max_prompt_chars": 4000,
    "max_control_bytes": 16 * 1024 * 1024,
    "max_references": 4,
    "max_views": 16,
    "max_characters": 8,
    "max_hands": 32,
}

# What each expression preset adds to the face's prompt (and, for its opposite, to the negative).
EXPRESSIONS = {
    "happy": ("happy, smiling broadly, joyful eyes", "sad, frowning"),
    "sad": ("sad, downturned mouth, teary eyes, drooping eyebrows", "smiling, happy"),
    "angry": ("angry, furrowed brows, glaring eyes, clenched teeth", "smiling, calm"),
    "surprised": ("surprised, raised eyebrows, wide open eyes, open mouth", "calm, closed mouth"),
    "scared": ("scared, frightened, wide fearful eyes, raised eyebrows, tense mouth", "smiling, calm, relaxed"),
}
COMPOSITE_MODES = ("inpaint", "cutout")

# img2img runs int(steps x strength) steps and the engine raises `steps` to keep one: a strength
# must not ask for more than max_steps
MIN_STRENGTH = 0.01
EMBEDDING_SIZE = 512  # an insightface (ArcFace) face embedding: what FaceID and the identity score take
APPEARANCE_SIZES = (8, 4096)  # a CLIP image embedding: the profile's image encoder decides (ViT-H: 1024)


# ---------------------------------------------------------------------------------------------
# The declaration: one table per job kind, from which the validator and the JSON Schema come

def _control(doc):
    return Obj({"image": Image(LIMITS["max_control_bytes"], f"the {doc} map, base64 PNG at the job's size"),
                "strength": Number(0.0, 2.0, "ControlNet conditioning scale", 1.0),
                "start": Number(0.0, 1.0, "fraction of the steps where the control starts", 0.0),
                "end": Number(0.0, 1.0, "fraction of the steps where the control ends (not before start)", 1.0)},
               f"the {doc} control map", omit=True)


def _controls(names, doc, required=None, fix=""):
    fields = {n: _control(n.replace("_", " ")) for n in names}
    if required:
        fields[required] = Obj(fields[required].fields, fields[required].doc, fix=fix)
        return Obj(fields, doc, fix=fix)
    return Obj(fields, doc, default={}, fix=fix)


def _identity(doc):
    return Obj({
        "images": ListOf(Image(LIMITS["max_control_bytes"], "a picture of the character, base64 PNG"),
                         1, LIMITS["max_references"], "pictures of the character (IP-Adapter plus-face)",
                         fix="give one or more pictures of the character"),
        "scale": Number(0.0, 1.5, "IP-Adapter plus-face scale", 0.6),
        "faceid_scale": Number(0.0, 1.5, "IP-Adapter FaceID scale (used with an embedding)", 0.6),
        "embedding": ListOf(Number(-1e6, 1e6, "a component"), EMBEDDING_SIZE, EMBEDDING_SIZE,
                            f"the pack's mean insightface (ArcFace) embedding: {EMBEDDING_SIZE} numbers", omit=True,
                            fix="send the pack's mean embedding as it is, or none"),
        "lora": lora_field(),
        "appearance": Obj({
            "embedding": _appearance_vector("the pack's mean appearance embedding (CLIP image embedding of its views)"),
            "views": ListOf(_appearance_vector("one view's appearance embedding"), 0, LIMITS["max_views"],
                            "each whole view's appearance embedding: the appearance score names the closest", []),
            "scale": Number(0.0, 1.5, "IP-Adapter scale of the appearance (the look: an object's, a creature's, "
                            "a costume's); 0: scored only", 0.5)},
            "the pack's appearance: kept by the IP-Adapter (not plus-face) and scored on every output", omit=True),
    }, doc, omit=True)


def _appearance_vector(doc):
    lo, hi = APPEARANCE_SIZES
    return ListOf(Number(-1e6, 1e6, "a component"), lo, hi, f"{doc}: {lo} to {hi} numbers, as the pack holds it",
                  fix="send the pack's appearance embeddings as they are")


_JOINT = ListOf(Number(-1e5, 1e5, "x, y (pixels) or confidence"), 3, 3, "a joint as [x, y, confidence]")


def _common(kind, controls):
    return {
        "version": Const(SPEC_VERSION, "job spec format version", SPEC_VERSION),
        "kind": Const(kind, "what the job makes"),
        "prompt": Text(LIMITS["max_prompt_chars"], "what to draw"),
        "negative_prompt": Text(LIMITS["max_prompt_chars"], "what not to draw"),
        "seed": Integer(0, 2**32 - 1, "random seed", 0),
        "steps": Integer(1, LIMITS["max_steps"], "denoising steps", 30),
        "guidance": Number(0.0, 30.0, "classifier-free guidance scale", 6.0),
        "batch": Integer(1, LIMITS["max_batch"], "images made at once", 1),
        "draft": Flag("a quick few-step draft (the profile's draft settings replace steps and guidance); "
                      "labelled as a draft", False),
        "width": Integer(64, LIMITS["max_side"], "output width in pixels", 1024, multiple_of=8),
        "height": Integer(64, LIMITS["max_side"], "output height in pixels", 1024, multiple_of=8),
        "profile": Name("the backend's model profile", "sdxl"),
        "controls": controls,
        "identity": _identity("the character's identity: reference pictures and the pack's embedding"),
        "name": Name("result name (a file name)", "result"),
        "keypoints": MapOf(ListOf(_JOINT, 18, 18, "18 body joints [x, y, confidence]"), 16,
                           "the rigs' projected body joints the output's pose is scored against", omit=True),
        "retry": Obj({"min_identity": Number(0.0, 1.0, "retry while the identity score is below this", 0.5),
                      "max_tries": Integer(1, 5, "tries at most (new seeds), the best kept", 3)},
                     "retry with new seeds below a minimum identity score", omit=True),
    }


_POSE_FIX = ("render control maps first: a humanoid needs its OpenPose map, a creature or an object its depth, "
             "normal or line-art map")
_POSE_CONTROLS = _controls(CONTROL_KINDS, "ControlNet maps (at least one): openpose and hand depth (humanoids), depth, "
                           "normal, lineart (white lines on black)", fix=_POSE_FIX)


def _tile(doc, strength):
    return Obj({"strength": Number(0.0, 1.0, f"{doc} strength (0: no {doc} pass)", strength, least=MIN_STRENGTH),
                "tile": Integer(64, 2048, "tile side in pixels", 1024, multiple_of=8),
                "overlap": Integer(0, 512, "tile overlap in pixels (under half the tile)", 128)},
               f"the {doc} pass, tile by tile", default={})


_SHEET = {
    "style": Text(LIMITS["max_prompt_chars"], "the sheet's drawing style, joined to the prompt"),
    "subject": Choice(KINDS, "what the sheet shows: a humanoid (face close-ups, face pass), a creature or an "
                      "object (detail close-ups, no face pass)", HUMANOID),
    "views": ListOf(Obj({"name": Name("the view's name"),
                         "kind": Choice(("body", "face", "detail"), "a whole view (body), a face close-up or a "
                                        "detail close-up (creatures, objects)"),
                         "yaw": Number(-360.0, 360.0, "the camera's angle around the character, degrees", 0.0),
                         "elevation": Number(-90.0, 90.0, "the camera's angle above the horizon, degrees (90: "
                                             "from the top)", 0.0),
                         "part": Text(64, "the part a detail close-up shows"),
                         "box": Box(LIMITS["max_side"], "the view's box in the sheet"),
                         "face_box": Box(LIMITS["max_side"], "the face's box in the sheet, if it shows one",
                                         default=None)}, "one view of the sheet"),
                    1, LIMITS["max_views"], "the sheet's views", fix="render the sheet's maps first"),
    "upscale": Obj({"factor": Number(1.0, 2.0, "how much larger the sheet is made", 2.0),
                    **_tile("upscale", 0.3).fields}, "the tiled upscale", default={}),
    "faces": Obj({"enabled": Flag("redraw every face at the model's size", True),
                  "strength": Number(0.0, 1.0, "face redraw strength (0: faces left as they are)", 0.4, least=MIN_STRENGTH),
                  "size": Integer(0, 2048, "redraw size: 0 for the model's own, else a multiple of 8 from 64", 0,
                                  multiple_of=8),
                  "detector": Choice(("auto", "rig"), "auto: insightface when installed, else the rig's boxes",
                                     "auto")}, "the face pass", default={}),
}

_SHOT = {
    "background": Obj({"image": Image(LIMITS["max_control_bytes"], "the background, base64 PNG")},
                      "the shot's background", fix="make the shot's background first (Shot > Background)"),
    "characters": ListOf(Obj({"name": Name("the character's (rig's, creature's or object's) name"),
                              "kind": Choice(KINDS, "what the character is: a humanoid (OpenPose, face identity), "
                                             "a creature or an object (shape maps, appearance)", HUMANOID),
                              "prompt": Text(LIMITS["max_prompt_chars"], "what this character looks like"),
                              "mask": Image(LIMITS["max_control_bytes"], "where the character is, base64 PNG"),
                              "identity": _identity("this character's identity")}, "a character in the shot"),
                         1, LIMITS["max_characters"], "the characters in the shot",
                         fix="add an OpenPose rig, or mark a creature or object as a character, for each "
                             "character in the shot"),
    "composite": Obj({"mode": Choice(COMPOSITE_MODES, "inpaint in place, or cut out and paste", "inpaint"),
                      "grow": Integer(0, 256, "pixels the masks grow by", 24),
                      "feather": Integer(0, 128, "pixels the masks' edges are feathered by", 12),
                      "strength": Number(0.05, 1.0, "inpaint strength in the masks", 1.0),
                      "character_strength": Number(0.0, 1.0, "each character's own pass (0: none)", 0.5,
                                                    least=MIN_STRENGTH),
                      "harmonize": Number(0.0, 1.0, "cut-out harmonizing strength (0: none)", 0.3, least=MIN_STRENGTH)},
                     "how the characters are composited", default={}),
    "hands": Obj({"enabled": Flag("redraw each hand", True),
                  "strength": Number(0.0, 1.0, "hand redraw strength (0: hands left as they are)", 0.45,
                                     least=MIN_STRENGTH),
                  "boxes": ListOf(Box(LIMITS["max_side"], "a hand's box"), 0, LIMITS["max_hands"],
                                  "the hands' boxes", [])}, "the hands' fix pass", default={}),
    # A moving shot's frame after the first starts from the previous frame's result, warped onto it
    "previous": Obj({"image": Image(LIMITS["max_control_bytes"], "the previous frame's result warped onto this "
                                    "frame by its motion, base64 PNG"),
                     "holes": Image(LIMITS["max_control_bytes"], "where it has nothing to carry over (white: "
                                    "disoccluded, generated in full), base64 PNG"),
                     "strength": Number(0.05, 1.0, "how much the carried-over frame is redrawn", 0.5)},
                    "start from the previous frame (a moving shot)", default=None, omit=True),
}

_EXPRESSION = {
    "image": Image(LIMITS["max_control_bytes"], "the picture whose face is edited, base64 PNG at the job's size"),
    "expression": Choice((*EXPRESSIONS, "custom"), "the new expression",
                         fix=f"use one of {', '.join(EXPRESSIONS)} or custom (with custom text)"),
    "custom": Text(LIMITS["max_prompt_chars"], "the expression in your words (with expression custom)"),
    "face_box": Box(LIMITS["max_side"], "the face's box (from the rig); found by insightface when absent",
                    default=None),
    "strength": Number(0.05, 1.0, "face redraw strength", 0.6),
    "detector": Choice(("auto", "rig"), "auto: insightface, else face_box; rig: face_box only", "auto"),
}

# Relighting: a picture (or a shot's composite) re-lit by a light reference rendered from the
# scene's own lights for the picture's camera (core.shots.lighting has the arithmetic)
VIEW_TOLERANCE = 1e-3  # of a camera matrix's elements (metres, or unitless rotation) and its lens


def _view(doc):
    return Obj({"camera": Text(256, "the camera object's name"),
                "matrix": ListOf(Number(-1e7, 1e7, "an element"), 16, 16, "its world matrix, row by row"),
                "lens": ListOf(Number(-1e7, 1e7, "a value"), 6, 6, "its projection: [orthographic (0 or 1), focal "
                               "length in mm or orthographic scale, sensor width, sensor height, shift x, shift y]"),
                "resolution": ListOf(Integer(1, 65536, "pixels"), 2, 2, "the render resolution [width, height]")},
               doc, fix="send the camera as the add-on describes it (maps.light.camera_view)")


_DIRECTION = ListOf(Number(-1.0, 1.0, "a component"), 3, 3, "towards the light from the subject, in camera "
                    "space: x right, y up, z towards the camera")

_LIGHT = Obj({
    "image": Image(LIMITS["max_control_bytes"], "the light reference, base64 PNG of the picture's shape: the diffuse "
                   "light on grey clay seen from the camera, sRGB-coded light over white in RGB, alpha 255 where "
                   "a surface is"),
    "view": _view("the camera the light reference was rendered from"),
    "white": Number(1e-9, 1e9, "the light (Blender's units) that is white in the picture"),
    "normal": Image(LIMITS["max_control_bytes"], "the camera-space normals of the surfaces the light falls on, "
                    "base64 PNG of the light reference's size (RGB = (n + 1) x 127.5: x right, y up, z towards the "
                    "camera; black where no surface is): the re-shading reads the picture's own shading off them",
                    omit=True),
    "key": ListOf(Number(-1.0, 1.0, "a component"), 3, 3, "the key light's direction over all characters (or "
                  "the whole picture): from the subject towards the light, camera space (x right, y up, z "
                  "towards the camera)", omit=True),
    "characters": ListOf(Obj({"name": Name("the character's (rig's) name"), "key": _DIRECTION},
                             "a character's own key light"), 0, LIMITS["max_characters"],
                         "each character's own key light (its light group with the most light on it)", []),
}, "the light reference rendered from the scene's lights for the picture's camera",
    fix="render the light reference first (Shot > Relight renders it)")


def _relight_options():
    return {"strength": Number(0.05, 1.0, "how much the re-shaded picture is redrawn (families that redraw at a "
                               "strength; an edit decides for itself)", 0.35),
            "shading": Number(0.0, 1.0, "how far the picture's own shading is replaced by the light reference's "
                              "before the redraw (0: not at all)", 1.0),
            "margin": Number(0.0, 2.0, "how far an identity score (the face's ArcFace cosine, the look's appearance "
                             "cosine) may fall before the relight says so", 0.1)}


_RELIGHT = {
    "image": Image(LIMITS["max_control_bytes"], "the picture to relight, base64 PNG of exactly width x height"),
    "view": _view("the camera the picture was made from, as it stood then"),
    "light": _LIGHT,
    "characters": ListOf(Obj({"name": Name("the character's (rig's, creature's or object's) name"),
                              "kind": Choice(KINDS, "what the character is: a humanoid (its face kept and checked), "
                                             "a creature or an object (its look kept and checked)", HUMANOID),
                              "prompt": Text(LIMITS["max_prompt_chars"], "what this character looks like"),
                              "mask": Image(LIMITS["max_control_bytes"], "where the character is, base64 PNG"),
                              "identity": _identity("this character's identity, kept through the relight")},
                             "a character in the picture"), 0, LIMITS["max_characters"],
                         "the characters in the picture: where they are, who they are", []),
    "whole": Flag("relight the whole picture (the masks still place the identities); false: only inside the "
                  "characters' masks", False),
    "grow": Integer(0, 256, "pixels the masks grow by", 16),
    "feather": Integer(0, 128, "pixels the masks' edges are feathered by", 12),
    **_relight_options(),
}

_BACKGROUND = {
    "sharp": Flag("prompt against shallow depth of field and refine tile by tile", True),
    "detail": _tile("detail", 0.25),
    # A second camera's view of a set already painted from another: only the mask is made
    "fill": Obj({"image": Image(LIMITS["max_control_bytes"], "the set as this camera sees it so far (the context), "
                                "base64 PNG"),
                 "mask": Image(LIMITS["max_control_bytes"], "where the set is not painted yet (white: generate), "
                               "base64 PNG")},
                "fill only the unpainted part of a set seen from another camera", default=None, omit=True),
}

# Pose from Picture: the backend's pose detector (the one the pose score uses) finds the people
_DETECT_POSE = {
    "version": Const(SPEC_VERSION, "job spec format version", SPEC_VERSION),
    "kind": Const("detect_pose", "what the job makes"),
    "profile": Name("the backend's model profile (a test profile has a stand-in detector)", "sdxl"),
    "name": Name("result name: the people found, as OpenPose JSON (<name>.json)", "pose"),
    "image": Image(LIMITS["max_control_bytes"], "the picture whose people are found, base64 PNG (at most "
                   f"{LIMITS['max_side']} pixels a side)", fix="send a PNG; the add-on converts photos itself"),
    "hands": Flag("also find each person's hands (21 points each)", True),
    "face": Flag("also find each person's face (70 points)", True),
}

# A shot may be relit after compositing (the composite before relighting comes back too)
_SHOT["relight"] = Obj({"light": _LIGHT, "view": _view("the camera the shot's maps were rendered from"),
                        **_relight_options()},
                       "relight the composite with the scene's own lights", default=None, omit=True)

SCHEMAS = {
    "posed_character": Obj({**_common("posed_character", _POSE_CONTROLS),
                            "mask": Image(LIMITS["max_control_bytes"], "where the character is (white), base64 PNG: "
                                          "the region its appearance is scored on", omit=True)},
                           "a posed character from the rig's maps"),
    "character_sheet": Obj({**_common("character_sheet", _POSE_CONTROLS), **_SHEET},
                           "a character sheet: views and faces, upscaled, faces redrawn"),
    "background": Obj({**_common("background", _controls(("depth",), "the set's depth map (optional)")),
                       **_BACKGROUND}, "a background, optionally following the set's depth"),
    "shot": Obj({**_common("shot", _POSE_CONTROLS), **_SHOT}, "characters composited into a background"),
    "expression": Obj({**_common("expression", _controls((), "none: an expression edit takes no maps")),
                       **_EXPRESSION}, "a face's expression redrawn"),
    "train_lora": Obj(training_table({"version": Const(SPEC_VERSION, "job spec format version", SPEC_VERSION),
                                      "kind": Const("train_lora", "what the job makes")},
                                     LIMITS["max_control_bytes"], LIMITS["max_prompt_chars"]),
                      "a character LoRA trained from an identity pack's pictures"),
    "detect_pose": Obj(_DETECT_POSE, "the people in a picture as OpenPose keypoints (body, hands, face)"),
    "animation": Obj(animation_spec.table(LIMITS["max_prompt_chars"]),
                     "one segment of an animated shot made by a video model from the rig's control videos"),
    "relight": Obj({**_common("relight", _controls(("depth", "normal"), "maps holding the geometry: depth, and "
                                                   "normal where the profile has a normal ControlNet")),
                    **_RELIGHT}, "a picture relit by the scene's own lights"),
}


def json_schemas():
    """{kind: JSON Schema of that kind's spec}, made from the same tables the validator reads."""
    return {kind: {"title": kind, **table.schema()} for kind, table in SCHEMAS.items()}


# ---------------------------------------------------------------------------------------------
# Checking: the tables, then what no single field can say

def validate_job(spec):
    """Check a job spec; returns the normalised spec (defaults filled in)."""
    if not isinstance(spec, dict):
        raise JobSpecError("job", "must be a JSON object")
    kind = spec.get("kind")
    if kind not in JOB_KINDS:
        raise JobSpecError("kind", f"unknown job kind {kind!r}", f"use one of {', '.join(JOB_KINDS)}")
    out = SCHEMAS[kind].check(spec, "job", None, prefix="")
    if kind in ("train_lora", "detect_pose"):  # no size, maps or prompt of their own
        return out
    if kind == "animation":
        return animation_spec.check(out)
    if out["width"] * out["height"] > LIMITS["max_pixels"]:
        raise JobSpecError("width", f"{out['width']}x{out['height']} is over {LIMITS['max_pixels']} pixels")
    for name, control in out["controls"].items():
        if control["end"] < control["start"]:
            raise JobSpecError(f"controls.{name}.end", "is before start")
    if kind in ("posed_character", "character_sheet", "shot") and not out["controls"]:
        raise JobSpecError("controls", "no control map was sent", _POSE_FIX)
    if not out["prompt"].strip() and "identity" not in out and kind not in ("shot", "expression", "relight"):
        raise JobSpecError("prompt", "is empty", "describe the character, e.g. 'a knight in silver armour'"
                           + (", or give a reference picture" if kind == "character_sheet" else ""))
    _RULES.get(kind, lambda o: None)(out)
    return out


def _unique(items, field, what):
    if len({i["name"] for i in items}) != len(items):
        raise JobSpecError(field, f"two {what} share a name")


def _tiles(tiles, field):
    if tiles["overlap"] * 2 >= tiles["tile"]:
        raise JobSpecError(f"{field}.tile", f"{tiles['tile']} must be more than twice the overlap ({tiles['overlap']})")


def _appearance_rules(identity, field):
    look = (identity or {}).get("appearance")
    if look and any(len(v) != len(look["embedding"]) for v in look["views"]):
        raise JobSpecError(f"{field}.appearance.views", f"hold embeddings of another length than the mean "
                           f"({len(look['embedding'])} numbers)", "send the pack's appearance embeddings as they are")


def _sheet_rules(out):
    _unique(out["views"], "views", "views")
    _appearance_rules(out.get("identity"), "identity")
    faces = [v["name"] for v in out["views"] if v["kind"] == "face"]
    if out["subject"] != HUMANOID and faces:
        raise JobSpecError("views", f"a {out['subject']}'s sheet has no face close-ups ({faces[0]})",
                           "use detail close-ups, or subject humanoid")
    if out["subject"] != HUMANOID and "openpose" in out["controls"]:
        raise JobSpecError("controls.openpose", f"a {out['subject']} has no OpenPose skeleton",
                           "send its depth, normal and line-art maps")
    _tiles(out["upscale"], "upscale")
    if max(out["width"], out["height"]) * out["upscale"]["factor"] > LIMITS["max_side"] * 2:
        raise JobSpecError("upscale.factor", f"would make a side over {LIMITS['max_side'] * 2} pixels")
    if 0 < out["faces"]["size"] < 64:
        raise JobSpecError("faces.size", "must be 0 (the model's own size) or a multiple of 8 from 64")


def _shot_rules(out):
    _unique(out["characters"], "characters", "characters")
    for i, character in enumerate(out["characters"]):
        _appearance_rules(character.get("identity"), f"characters[{i}].identity")
    if "previous" in out and out["composite"]["mode"] != "inpaint":
        raise JobSpecError("previous", "carries a frame over only in composite.mode inpaint",
                           "use composite.mode inpaint for a moving shot")
    for i, character in enumerate(out["characters"]):
        if "lora" in character.get("identity", {}) and out["composite"]["character_strength"] == 0:
            raise JobSpecError(f"characters[{i}].identity.lora", "acts in the character's own pass, which is off",
                               "set composite.character_strength above 0, or send no LoRA")
    if not out["prompt"].strip() and not any(c["prompt"].strip() or "identity" in c for c in out["characters"]):
        raise JobSpecError("prompt", "is empty and no character has a prompt or an identity",
                           "describe the scene or the characters")
    if out.get("relight"):
        same_view(out["relight"]["light"]["view"], out["relight"]["view"], "relight.light.view")


def _expression_rules(out):
    if out["expression"] == "custom" and not out["custom"].strip():
        raise JobSpecError("custom", "is empty", "describe the expression, e.g. 'smirking, one eyebrow raised'")
    if out["detector"] == "rig" and out["face_box"] is None:
        raise JobSpecError("face_box", "is missing", "give the face's box (from the rig) or use detector 'auto'")


def same_view(light, picture, field):
    """Refuse a light reference rendered from another camera than the picture's (another camera,
    the same one moved, turned or with another lens, or another frame shape)."""
    fix = ("render the light reference from the picture's camera as it stood when the picture was made: put the "
           "camera back, or make the picture again from where the camera is now")
    if light["camera"] != picture["camera"]:
        raise JobSpecError(field, f"the light reference was rendered from camera {light['camera']!r} but the picture "
                           f"was made from camera {picture['camera']!r}", fix)
    moved = max(abs(a - b) for a, b in zip(light["matrix"], picture["matrix"]))
    if moved > VIEW_TOLERANCE:
        raise JobSpecError(field, f"camera {picture['camera']!r} has moved or turned since the picture was made "
                           f"(its matrix differs by up to {moved:.3g})", fix)
    lens = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(light["lens"], picture["lens"]))
    if lens > VIEW_TOLERANCE:
        raise JobSpecError(field, f"the lens of camera {picture['camera']!r} has changed since the picture was made",
                           fix)
    (lw, lh), (pw, ph) = light["resolution"], picture["resolution"]
    if abs(lw / lh - pw / ph) > 0.005 * pw / ph:
        raise JobSpecError(field, f"the light reference was rendered for a {lw}x{lh} frame but the picture was "
                           f"made for {pw}x{ph}: another frame shape", fix)


def _relight_rules(out):
    for field in ("identity", "retry"):
        if field in out:
            raise JobSpecError(field, "is not used by a relight", "send each character's identity in "
                               "characters[i].identity" if field == "identity" else "send none")
    if out["batch"] != 1:
        raise JobSpecError("batch", "a relight makes one picture", "use batch 1")
    _unique(out["characters"], "characters", "characters")
    for i, character in enumerate(out["characters"]):
        if "lora" in character.get("identity", {}):
            raise JobSpecError(f"characters[{i}].identity.lora", "is not used by a relight: identities are kept "
                               "through the identity adapters", "send the identity without its LoRA")
    if not out["whole"] and not out["characters"]:
        raise JobSpecError("characters", "is empty and whole is false: there is nothing to relight",
                           "send the characters' masks, or set whole to true to relight the whole picture")
    same_view(out["light"]["view"], out["view"], "light.view")


_RULES = {"character_sheet": _sheet_rules, "shot": _shot_rules, "expression": _expression_rules,
          "background": lambda out: _tiles(out["detail"], "detail"),
          "posed_character": lambda out: _appearance_rules(out.get("identity"), "identity"), "relight": _relight_rules}


# The capability a family declares for following each map (`needs`, `extra_maps`)
CONTROL_CAPABILITY = {"openpose": "pose_control", "depth": "depth_control", "hand_depth": "depth_control",
                      "normal": "normal_control", "lineart": "line_control"}


def extra_maps(spec):
    """The maps a validated job sends that steer only where its profile can follow them: normal
    and line-art maps beside a depth map (a profile without them still follows the depth; the
    output's record says which maps steered)."""
    controls = spec.get("controls", {})
    return [n for n in ("normal", "lineart") if n in controls] if "depth" in controls else []


def needs(spec):
    """What a validated job asks of its profile's model family, as capability names (the
    backend's families declare theirs): the maps it sends, the identities, the passes it runs."""
    if spec["kind"] == "train_lora":
        return {"train_lora"}
    if spec["kind"] == "detect_pose":
        return set()  # the detector is no family's: every profile can run it where it is installed
    if spec["kind"] == "animation":
        return animation_spec.needs(spec)
    controls, kind = spec["controls"], spec["kind"]
    wanted = {"pose_control"} if "openpose" in controls else set()
    if "depth" in controls or "hand_depth" in controls:
        wanted.add("depth_control")
    else:  # normal and line-art maps beside a depth map steer where the profile can (see `extra_maps`)
        wanted |= {CONTROL_CAPABILITY[n] for n in ("normal", "lineart") if n in controls}
    identities = [spec.get("identity")] + [c.get("identity") for c in spec.get("characters", ())]
    if any(identities):
        wanted.add("identity")
    if any(i and "lora" in i for i in identities):
        wanted.add("lora")
    if kind == "background" and "fill" in spec:
        wanted.add("inpaint")
    elif kind in ("posed_character", "background", "character_sheet"):
        wanted.add("draw" if controls or "identity" in spec else "txt2img")
    if kind == "background" and spec["sharp"] and spec["detail"]["strength"] > 0:
        wanted.add("img2img")
    if kind == "character_sheet":
        if spec["upscale"]["strength"] > 0:
            wanted.add("img2img")
        if spec["faces"]["enabled"] and spec["faces"]["strength"] > 0:
            wanted.add("inpaint")
    if kind in ("shot", "expression"):
        wanted.add("inpaint")
    if kind == "shot" and spec["composite"]["mode"] == "cutout" and spec["composite"]["harmonize"] > 0:
        wanted.add("img2img")
    if kind == "relight" or spec.get("relight"):
        wanted.add("relight")
    if spec["draft"]:
        wanted.add("draft")
    return wanted


def expression_prompt(spec):
    """(prompt, negative prompt) for an expression edit of the face."""
    if spec["expression"] == "custom":
        words, opposite = spec["custom"].strip(), ""
    else:
        words, opposite = EXPRESSIONS[spec["expression"]]
    prompt = ", ".join(p for p in (spec["prompt"].strip(), f"{words} facial expression", "detailed face") if p)
    negative = ", ".join(p for p in (spec["negative_prompt"].strip(), opposite) if p)
    return prompt, negative


def image_fields(job):
    """[(field, base64 PNG)] of every picture in a validated job, for checking them all up front."""
    return list(image_values(SCHEMAS[job["kind"]], job, ""))


def map_image_fields(job, change):
    """A copy of a validated `job` with every picture replaced by `change(field, value)`: the
    add-on swaps pictures the backend keeps for "sha256:<hex>", the backend swaps them back."""
    return map_images(SCHEMAS[job["kind"]], job, change)


def picture_refs(job):
    """{field: SHA-256} of the pictures a validated `job` names by hash."""
    return {field: picture_ref(value) for field, value in image_fields(job) if picture_ref(value)}


def _encoded(kind, prompt, controls, width, height, negative_prompt, seed, steps, guidance, profile, batch, name,
             references, identity_scale, lora=None):
    import base64
    spec = {
        # Blender's float properties are single precision: round so 0.8 stays 0.8 in the metadata
        "kind": kind, "prompt": prompt, "negative_prompt": negative_prompt, "seed": seed,
        "steps": steps, "guidance": round(guidance, 4), "batch": batch, "profile": profile, "name": name,
        "width": max(64, int(width) // 8 * 8), "height": max(64, int(height) // 8 * 8),
        "controls": {n: {"image": base64.b64encode(c["png"]).decode("ascii"),
                         "strength": round(c.get("strength", 1.0), 4), "start": round(c.get("start", 0.0), 4),
                         "end": round(c.get("end", 1.0), 4)}
                     for n, c in controls.items()},
    }
    if references:
        spec["identity"] = {"images": [base64.b64encode(png).decode("ascii") for png in references],
                            "scale": round(identity_scale, 4)}
        if lora:
            spec["identity"]["lora"] = lora
    return spec


def _appearance_entry(appearance, scale):
    """The identity's `appearance` from a pack's (`identity_pack.appearance`), or None."""
    if not appearance:
        return None
    return {"embedding": list(appearance["embedding"]), "views": [list(v) for v in appearance.get("views", ())],
            "scale": round(scale, 4)}


def posed_character_spec(prompt, controls, width, height, negative_prompt="", seed=0, steps=30, guidance=6.0,
                         profile="sdxl", batch=1, name="result", references=(), identity_scale=0.6,
                         identity_embedding=None, keypoints=None, retry=None, lora=None, appearance=None,
                         appearance_scale=0.5, mask=None, faceid_scale=None):
    """A validated `posed_character` spec. `controls`: {name: {"png": bytes, "strength", "start",
    "end"}}; `references`: PNG bytes of pictures of the character (identity via IP-Adapter),
    `identity_embedding` their pack's mean embedding, `lora` its trained LoRA, `appearance` its
    appearance embeddings (kept at `appearance_scale`, scored in `mask`: PNG bytes of where the
    character is); `keypoints`: {rig: 18 body joints} the output's pose is scored against;
    `retry`: {"min_identity", "max_tries"}. Width and height are rounded down to multiples of
    8 (the render resolution need not be)."""
    spec = _encoded("posed_character", prompt, controls, width, height, negative_prompt, seed, steps, guidance,
                    profile, batch, name, references, identity_scale, lora)
    if identity_embedding is not None and "identity" in spec:
        spec["identity"]["embedding"] = list(identity_embedding)
    if faceid_scale is not None and "identity" in spec:  # 0 for a creature or an object: no face to keep
        spec["identity"]["faceid_scale"] = round(faceid_scale, 4)
    look = _appearance_entry(appearance, appearance_scale)
    if look and "identity" in spec:
        spec["identity"]["appearance"] = look
    if mask is not None:
        spec["mask"] = _b64(mask)
    if keypoints:
        spec["keypoints"] = keypoints
    if retry:
        spec["retry"] = retry
    return validate_job(spec)


def character_sheet_spec(prompt, controls, sheet, style="", negative_prompt="", seed=0, steps=30, guidance=6.0,
                         profile="sdxl", name="sheet", references=(), identity_scale=0.6, upscale=2.0,
                         upscale_strength=0.3, tile=1024, face_detail=True, face_strength=0.4, face_size=0,
                         lora=None, subject=HUMANOID):
    """A validated `character_sheet` spec from the sheet record that `render_sheet` (or the
    object sheet's) wrote (sheet.json: size and views with their boxes); `lora`: the
    character's, with its references; `subject`: the kind of character the sheet shows."""
    width, height = sheet["size"]
    spec = _encoded("character_sheet", prompt, controls, width, height, negative_prompt, seed, steps, guidance,
                    profile, 1, name, references, identity_scale, lora)
    spec.update(style=style, subject=subject,
                views=[{"name": v["name"], "kind": v["kind"], "yaw": v["yaw"], "box": v["box"],
                        "face_box": v.get("face_box"), "elevation": v.get("elevation", 0.0), "part": v.get("part", "")}
                       for v in sheet["views"] if v.get("box")],
                upscale={"factor": round(upscale, 4), "strength": round(upscale_strength, 4), "tile": tile,
                         "overlap": min(128, tile // 4)},
                faces={"enabled": face_detail, "strength": round(face_strength, 4), "size": face_size})
    return validate_job(spec)


def background_spec(prompt, width, height, depth_png=None, depth_strength=0.6, negative_prompt="", seed=0, steps=30,
                    guidance=6.0, profile="sdxl", name="background", sharp=True, detail_strength=0.25, fill=None):
    """A validated `background` spec: a set from a prompt, guided by the set's depth if given;
    `fill`: (context PNG, mask PNG) to make only the mask's part of a set painted before."""
    controls = {"depth": {"png": depth_png, "strength": depth_strength}} if depth_png else {}
    spec = _encoded("background", prompt, controls, width, height, negative_prompt, seed, steps, guidance, profile,
                    1, name, (), 0.0)
    spec.update(sharp=sharp, detail={"strength": round(detail_strength, 4), "tile": 1024, "overlap": 128})
    if fill:
        spec["fill"] = {"image": _b64(fill[0]), "mask": _b64(fill[1])}
    return validate_job(spec)


def detect_pose_spec(image_png, profile="sdxl", name="pose", hands=True, face=True):
    """A validated `detect_pose` spec: find the people in a picture (PNG bytes)."""
    return validate_job({"kind": "detect_pose", "image": _b64(image_png), "profile": profile, "name": name,
                         "hands": bool(hands), "face": bool(face)})


def _b64(png):
    import base64
    return base64.b64encode(png).decode("ascii")


def _identity_entry(references, embedding, scale, faceid_scale=0.6, lora=None, appearance=None,
                    appearance_scale=0.5):
    if not references:
        return None
    entry = {"images": [_b64(png) for png in references], "scale": round(scale, 4),
             "faceid_scale": round(faceid_scale, 4)}
    if embedding is not None:
        entry["embedding"] = list(embedding)
    if lora:
        entry["lora"] = lora
    look = _appearance_entry(appearance, appearance_scale)
    if look:
        entry["appearance"] = look
    return entry


def shot_spec(prompt, controls, width, height, background_png, characters, negative_prompt="", seed=0, steps=30,
              guidance=6.0, profile="sdxl", name="shot", mode="inpaint", grow=24, feather=12, strength=1.0,
              character_strength=0.5, harmonize=0.3, hands=True, hand_strength=0.45, hand_boxes=(), keypoints=None,
              previous=None):
    """A validated `shot` spec: the characters generated into the background. `characters`:
    [{"name", "kind", "prompt", "mask" (PNG bytes), "references" (PNG bytes), "embedding", "scale",
    "lora", "appearance", "appearance_scale"}];
    `previous`: (warped previous frame PNG, holes PNG, strength) for a moving shot's later frames."""
    spec = _encoded("shot", prompt, controls, width, height, negative_prompt, seed, steps, guidance, profile, 1,
                    name, (), 0.0)
    spec["background"] = {"image": _b64(background_png)}
    spec["characters"] = []
    for c in characters:
        entry = {"name": c["name"], "kind": c.get("kind", HUMANOID), "prompt": c.get("prompt", ""),
                 "mask": _b64(c["mask"])}
        identity = _identity_entry(c.get("references", ()), c.get("embedding"), c.get("scale", 0.6),
                                   lora=c.get("lora"), appearance=c.get("appearance"),
                                   appearance_scale=c.get("appearance_scale", 0.5))
        if identity:
            entry["identity"] = identity
        spec["characters"].append(entry)
    spec["composite"] = {"mode": mode, "grow": int(grow), "feather": int(feather), "strength": round(strength, 4),
                         "character_strength": round(character_strength, 4), "harmonize": round(harmonize, 4)}
    spec["hands"] = {"enabled": bool(hands), "strength": round(hand_strength, 4), "boxes": [list(b) for b in hand_boxes]}
    if keypoints:
        spec["keypoints"] = keypoints
    if previous:
        spec["previous"] = {"image": _b64(previous[0]), "holes": _b64(previous[1]), "strength": round(previous[2], 4)}
    return validate_job(spec)


def expression_spec(image_png, width, height, expression, prompt="", custom="", face_box=None, negative_prompt="",
                    seed=0, steps=30, guidance=6.0, profile="sdxl", name="expression", strength=0.6,
                    references=(), embedding=None, identity_scale=0.6, detector="auto", lora=None, appearance=None,
                    appearance_scale=0.5):
    """A validated `expression` spec: the face in `image_png` redrawn with `expression`."""
    spec = _encoded("expression", prompt, {}, width, height, negative_prompt, seed, steps, guidance, profile, 1,
                    name, (), 0.0)
    spec.update(image=_b64(image_png), expression=expression, custom=custom, face_box=face_box, strength=strength,
                detector=detector)
    identity = _identity_entry(references, embedding, identity_scale, lora=lora, appearance=appearance,
                               appearance_scale=appearance_scale)
    if identity:
        spec["identity"] = identity
    return validate_job(spec)


def animation_segment_spec(prompt, frames, width, height, previous=(), references=(), negative_prompt="", seed=0,
                           steps=30, guidance=5.0, profile="wan-vace", name="clip", fps=16, mode="replace",
                           control="openpose", strength=1.0, grow=16, segment=None):
    """(a validated `animation` spec (core.animation_spec), {sha256: PNG bytes} of the pictures it
    names: send them with PUT /pictures first). `frames`: [{map: PNG bytes}] in order, the carried
    ones first; `previous`: PNG bytes of the previous segment's last results; `references`: the
    character's pictures; `segment`: {"index", "count", "first_frame"}."""
    media = {}

    def named(png):
        key = animation_spec.media_name(png)
        media[key] = png
        return key

    spec = {"kind": "animation", "prompt": prompt, "negative_prompt": negative_prompt, "seed": seed, "steps": steps,
            "guidance": round(guidance, 4), "width": max(64, int(width) // 16 * 16),
            "height": max(64, int(height) // 16 * 16), "fps": int(fps), "profile": profile, "name": name,
            "frames": [{m: named(png) for m, png in frame.items()} for frame in frames],
            "previous": [named(png) for png in previous], "references": [named(png) for png in references],
            "mode": mode, "control": control, "strength": round(strength, 4), "grow": int(grow),
            "segment": dict(segment or {})}
    return validate_job(spec), media


def _light_entry(light):
    entry = {"image": _b64(light["png"]), "view": light["view"], "white": light["white"],
             **({"normal": _b64(light["normal"])} if light.get("normal") else {}),
             "characters": [{"name": c["name"], "key": [round(v, 6) for v in c["key"]]}
                            for c in light.get("characters", ())]}
    if light.get("key") is not None:
        entry["key"] = [round(v, 6) for v in light["key"]]
    return entry


def relight_options(light, view, strength=0.35, shading=1.0, margin=0.1):
    """A shot spec's `relight`: `light` as `maps.light` renders it ({"png", "view", "white", "key",
    "characters": [{"name", "key"}]}), `view` the camera the maps were rendered from."""
    return {"light": _light_entry(light), "view": view, "strength": round(strength, 4),
            "shading": round(shading, 4), "margin": round(margin, 4)}


def relight_spec(image_png, width, height, view, light, characters=(), controls=None, prompt="", negative_prompt="",
                 seed=0, steps=30, guidance=6.0, profile="sdxl", name="relit", whole=False, grow=16, feather=12,
                 strength=0.35, shading=1.0, margin=0.1):
    """A validated `relight` spec: `image_png` (width x height) relit by `light` (see
    `relight_options`); `view`: the camera the picture was made from; `characters`: [{"name",
    "kind", "prompt", "mask" (PNG bytes), "references", "embedding", "scale", "appearance",
    "appearance_scale"}]; `controls`: {"depth"/"normal": {"png", "strength"}}."""
    spec = _encoded("relight", prompt, controls or {}, width, height, negative_prompt, seed, steps, guidance, profile,
                    1, name, (), 0.0)
    spec.update(image=_b64(image_png), view=view, light=_light_entry(light), whole=bool(whole), grow=int(grow),
                feather=int(feather), strength=round(strength, 4), shading=round(shading, 4), margin=round(margin, 4))
    spec["characters"] = []
    for c in characters:
        entry = {"name": c["name"], "kind": c.get("kind", HUMANOID), "prompt": c.get("prompt", ""),
                 "mask": _b64(c["mask"])}
        identity = _identity_entry(c.get("references", ()), c.get("embedding"), c.get("scale", 0.6),
                                   appearance=c.get("appearance"), appearance_scale=c.get("appearance_scale", 0.5))
        if identity:
            entry["identity"] = identity
        spec["characters"].append(entry)
    return validate_job(spec)
