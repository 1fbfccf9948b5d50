"""Job specs: the one type that crosses every boundary (panel -> client -> HTTP -> backend).

Pure Python so the add-on and the backend validate the very same fields with the very same
limits. A spec is plain JSON; `validate_job` returns a normalised copy or raises JobSpecError
naming the field, what is wrong and how to fix it.
"""

import math
import re

from .errors import UserError

SPEC_VERSION = 1
JOB_KINDS = ("posed_character", "character_sheet", "background", "shot", "expression")
CONTROL_KINDS = ("openpose", "depth", "hand_depth")

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

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class JobSpecError(UserError):
    def __init__(self, field, message, fix=""):
        self.field, self.fix = field, fix
        super().__init__(f"{field}: {message}" + (f" ({fix})" if fix else ""))


def _number(spec, key, default, lo, hi, integer=False, prefix=""):
    value, field = spec.get(key, default), prefix + key
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JobSpecError(field, f"must be a number, got {value!r}")
    if not math.isfinite(value):
        raise JobSpecError(field, f"must be finite, got {value!r}")
    if integer and value != int(value):
        raise JobSpecError(field, f"must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise JobSpecError(field, f"must be between {lo} and {hi}, got {value!r}")
    return int(value) if integer else float(value)


def _text(spec, field, default=""):
    value = spec.get(field, default)
    if not isinstance(value, str):
        raise JobSpecError(field, f"must be text, got {type(value).__name__}")
    if len(value) > LIMITS["max_prompt_chars"]:
        raise JobSpecError(field, f"is {len(value)} characters long; the limit is {LIMITS['max_prompt_chars']}")
    return value


def safe_name(value, field):
    """A file-safe name: letters, digits, '_', '-', '.', no path separators, no leading dot."""
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise JobSpecError(field, f"{value!r} is not a plain file name",
                           "use letters, digits, '_', '-' and '.', at most 64 characters, no folders")
    return value


def _image(value, field):
    if not isinstance(value, str) or not value:
        raise JobSpecError(field, "must be a base64 PNG")
    if len(value) * 3 // 4 > LIMITS["max_control_bytes"]:
        raise JobSpecError(field, f"is over {LIMITS['max_control_bytes'] // 2**20} MiB")
    return value


def _box(value, field, width, height, optional=False):
    if value is None and optional:
        return None
    if (not isinstance(value, list) or len(value) != 4
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
        raise JobSpecError(field, f"must be [x0, y0, x1, y1] in whole pixels, got {value!r}")
    x0, y0, x1, y1 = value
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise JobSpecError(field, f"{value} does not lie inside the {width}x{height} image")
    return list(value)


def validate_job(spec):
    """Check a job spec; returns the normalised spec (defaults filled in)."""
    if not isinstance(spec, dict):
        raise JobSpecError("job", "must be a JSON object")
    kind = spec.get("kind")
    if kind not in JOB_KINDS:
        raise JobSpecError("kind", f"unknown job kind {kind!r}", f"use one of {', '.join(JOB_KINDS)}")
    out = {"version": SPEC_VERSION, "kind": kind}
    out["prompt"] = _text(spec, "prompt")
    out["negative_prompt"] = _text(spec, "negative_prompt")
    out["seed"] = _number(spec, "seed", 0, 0, 2**32 - 1, integer=True)
    out["steps"] = _number(spec, "steps", 30, 1, LIMITS["max_steps"], integer=True)
    out["guidance"] = _number(spec, "guidance", 6.0, 0.0, 30.0)
    out["batch"] = _number(spec, "batch", 1, 1, LIMITS["max_batch"], integer=True)
    for side in ("width", "height"):
        value = _number(spec, side, 1024, 64, LIMITS["max_side"], integer=True)
        if value % 8:
            raise JobSpecError(side, f"{value} is not a multiple of 8", f"use {value - value % 8} or {value - value % 8 + 8}")
        out[side] = value
    if out["width"] * out["height"] > LIMITS["max_pixels"]:
        raise JobSpecError("width", f"{out['width']}x{out['height']} is over {LIMITS['max_pixels']} pixels")
    out["profile"] = safe_name(spec.get("profile", "sdxl"), "profile")
    controls = spec.get("controls", {})
    if not isinstance(controls, dict) or (not controls and kind not in ("background", "expression")):
        raise JobSpecError("controls", "must name at least the openpose map", "render control maps first")
    out["controls"] = {}
    for name, control in controls.items():
        if name not in CONTROL_KINDS:
            raise JobSpecError(f"controls.{name}", "is not a known control", f"use {', '.join(CONTROL_KINDS)}")
        if not isinstance(control, dict):
            raise JobSpecError(f"controls.{name}", "must be an object with image, strength, start and end")
        entry = {"image": _image(control.get("image"), f"controls.{name}.image"),
                 "strength": _number(control, "strength", 1.0, 0.0, 2.0, prefix=f"controls.{name}."),
                 "start": _number(control, "start", 0.0, 0.0, 1.0, prefix=f"controls.{name}."),
                 "end": _number(control, "end", 1.0, 0.0, 1.0, prefix=f"controls.{name}.")}
        if entry["end"] < entry["start"]:
            raise JobSpecError(f"controls.{name}.end", "is before start")
        out["controls"][name] = entry
    if kind == "background":
        extra = sorted(set(out["controls"]) - {"depth"})
        if extra:
            raise JobSpecError(f"controls.{extra[0]}", "is not for a background",
                               "a background takes only the set's depth (characters are added by the composite)")
    elif kind == "expression":
        if out["controls"]:
            raise JobSpecError("controls", "are not for an expression edit", "send the image and the face box only")
    elif "openpose" not in out["controls"]:
        raise JobSpecError("controls.openpose", "is missing", "a posed character needs the OpenPose map")
    identity = spec.get("identity")
    if identity is not None:
        out["identity"] = _identity(identity, "identity")
    if not out["prompt"].strip() and "identity" not in out and kind not in ("shot", "expression"):
        raise JobSpecError("prompt", "is empty", "describe the character, e.g. 'a knight in silver armour'"
                           + (", or give a reference picture" if kind == "character_sheet" else ""))
    out["name"] = safe_name(spec.get("name", "result"), "name")
    _score_fields(spec, out)
    if kind == "character_sheet":
        _sheet_fields(spec, out)
    elif kind == "shot":
        _shot_fields(spec, out)
    elif kind == "expression":
        _expression_fields(spec, out)
    elif kind == "background":
        out["sharp"] = bool(spec.get("sharp", True))
        detail = spec.get("detail", {})
        if not isinstance(detail, dict):
            raise JobSpecError("detail", "must be an object with strength, tile and overlap")
        out["detail"] = {"strength": _number(detail, "strength", 0.25, 0.0, 1.0, prefix="detail."),
                         "tile": _number(detail, "tile", 1024, 64, 2048, integer=True, prefix="detail."),
                         "overlap": _number(detail, "overlap", 128, 0, 512, integer=True, prefix="detail.")}
        if out["detail"]["tile"] % 8 or out["detail"]["overlap"] * 2 >= out["detail"]["tile"]:
            raise JobSpecError("detail.tile", "must be a multiple of 8 and more than twice the overlap")
    return out


def _identity(identity, field):
    """An identity: reference pictures (IP-Adapter plus-face), scales, optional pack embedding (FaceID)."""
    if not isinstance(identity, dict):
        raise JobSpecError(field, "must be an object with images and scale")
    images = identity.get("images")
    if not isinstance(images, list) or not 1 <= len(images) <= LIMITS["max_references"]:
        raise JobSpecError(f"{field}.images", f"must list 1 to {LIMITS['max_references']} base64 PNG images",
                           "give one or more pictures of the character")
    out = {"images": [_image(image, f"{field}.images[{i}]") for i, image in enumerate(images)],
           "scale": _number(identity, "scale", 0.6, 0.0, 1.5, prefix=f"{field}."),
           "faceid_scale": _number(identity, "faceid_scale", 0.6, 0.0, 1.5, prefix=f"{field}.")}
    embedding = identity.get("embedding")
    if embedding is not None:
        if not isinstance(embedding, list) or not 1 <= len(embedding) <= 4096:
            raise JobSpecError(f"{field}.embedding", "must be a list of 1 to 4096 numbers (the pack's mean)")
        out["embedding"] = [_number({"v": v}, "v", 0, -1e6, 1e6, prefix=f"{field}.embedding.") for v in embedding]
    return out


def _object(spec, key, what):
    value = spec.get(key, {})
    if not isinstance(value, dict):
        raise JobSpecError(key, f"must be an object with {what}")
    return value


def _shot_fields(spec, out):
    """A shot: the background, each character (prompt, mask, identity), how they are composited,
    and the hands' fix pass."""
    w, h = out["width"], out["height"]
    background = spec.get("background")
    if not isinstance(background, dict):
        raise JobSpecError("background", "is missing", "make the shot's background first (Shot > Background)")
    out["background"] = {"image": _image(background.get("image"), "background.image")}
    characters = spec.get("characters")
    if not isinstance(characters, list) or not 1 <= len(characters) <= LIMITS["max_characters"]:
        raise JobSpecError("characters", f"must list 1 to {LIMITS['max_characters']} characters",
                           "add an OpenPose rig for each character in the shot")
    out["characters"] = []
    for i, character in enumerate(characters):
        field = f"characters[{i}]"
        if not isinstance(character, dict):
            raise JobSpecError(field, "must be an object with name, prompt, mask and identity")
        entry = {"name": safe_name(character.get("name"), f"{field}.name"),
                 "prompt": _text(character, "prompt"), "mask": _image(character.get("mask"), f"{field}.mask")}
        if character.get("identity") is not None:
            entry["identity"] = _identity(character["identity"], f"{field}.identity")
        out["characters"].append(entry)
    if len({c["name"] for c in out["characters"]}) != len(out["characters"]):
        raise JobSpecError("characters", "two characters share a name")
    if not out["prompt"].strip() and not any(c["prompt"].strip() or "identity" in c for c in out["characters"]):
        raise JobSpecError("prompt", "is empty and no character has a prompt or an identity",
                           "describe the scene or the characters")
    c = _object(spec, "composite", "mode, grow, feather, strength, character_strength and harmonize")
    mode = c.get("mode", "inpaint")
    if mode not in COMPOSITE_MODES:
        raise JobSpecError("composite.mode", f"must be one of {', '.join(COMPOSITE_MODES)}, got {mode!r}")
    out["composite"] = {"mode": mode,
                        "grow": _number(c, "grow", 24, 0, 256, integer=True, prefix="composite."),
                        "feather": _number(c, "feather", 12, 0, 128, integer=True, prefix="composite."),
                        "strength": _number(c, "strength", 1.0, 0.05, 1.0, prefix="composite."),
                        "character_strength": _number(c, "character_strength", 0.5, 0.0, 1.0, prefix="composite."),
                        "harmonize": _number(c, "harmonize", 0.3, 0.0, 1.0, prefix="composite.")}
    hands = _object(spec, "hands", "enabled, strength and boxes")
    boxes = hands.get("boxes", [])
    if not isinstance(boxes, list) or len(boxes) > LIMITS["max_hands"]:
        raise JobSpecError("hands.boxes", f"must list up to {LIMITS['max_hands']} boxes [x0, y0, x1, y1]")
    out["hands"] = {"enabled": bool(hands.get("enabled", True)),
                    "strength": _number(hands, "strength", 0.45, 0.0, 1.0, prefix="hands."),
                    "boxes": [_box(b, f"hands.boxes[{i}]", w, h) for i, b in enumerate(boxes)]}


def _expression_fields(spec, out):
    """An expression edit: the picture, which face, which expression, how strongly."""
    out["image"] = _image(spec.get("image"), "image")
    expression = spec.get("expression")
    if expression not in (*EXPRESSIONS, "custom"):
        raise JobSpecError("expression", f"unknown expression {expression!r}",
                           f"use one of {', '.join(EXPRESSIONS)} or custom (with custom text)")
    out["expression"] = expression
    out["custom"] = _text(spec, "custom")
    if expression == "custom" and not out["custom"].strip():
        raise JobSpecError("custom", "is empty", "describe the expression, e.g. 'smirking, one eyebrow raised'")
    out["face_box"] = _box(spec.get("face_box"), "face_box", out["width"], out["height"], optional=True)
    out["strength"] = _number(spec, "strength", 0.6, 0.05, 1.0)
    out["detector"] = spec.get("detector", "auto")
    if out["detector"] not in ("auto", "rig"):
        raise JobSpecError("detector", "must be 'auto' (insightface, else face_box) or 'rig' (face_box only)")
    if out["detector"] == "rig" and out["face_box"] is None:
        raise JobSpecError("face_box", "is missing", "give the face's box (from the rig) or use detector 'auto'")


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
    out = [(f"controls.{name}.image", c["image"]) for name, c in job["controls"].items()]
    out += [(f"identity.images[{i}]", image) for i, image in enumerate(job.get("identity", {}).get("images", []))]
    if "background" in job:
        out.append(("background.image", job["background"]["image"]))
    if "image" in job:
        out.append(("image", job["image"]))
    for i, character in enumerate(job.get("characters", [])):
        out.append((f"characters[{i}].mask", character["mask"]))
        out += [(f"characters[{i}].identity.images[{j}]", image)
                for j, image in enumerate(character.get("identity", {}).get("images", []))]
    return out


def _score_fields(spec, out):
    """What outputs are scored against (the rig's keypoints) and the retry rule."""
    targets = spec.get("keypoints")
    if targets is not None:
        if not isinstance(targets, dict) or len(targets) > 16:
            raise JobSpecError("keypoints", "must map up to 16 rig names to their 18 body joints [x, y, confidence]")
        out["keypoints"] = {}
        for name, body in targets.items():
            field = f"keypoints.{name}"
            if not isinstance(body, list) or len(body) != 18 or any(not isinstance(j, list) or len(j) != 3 for j in body):
                raise JobSpecError(field, "must list 18 joints as [x, y, confidence]")
            out["keypoints"][safe_name(name, field)] = [
                [_number({"v": v}, "v", 0, -1e5, 1e5, prefix=f"{field}.") for v in joint] for joint in body]
    retry = spec.get("retry")
    if retry is not None:
        if not isinstance(retry, dict):
            raise JobSpecError("retry", "must be an object with min_identity and max_tries")
        out["retry"] = {"min_identity": _number(retry, "min_identity", 0.5, 0.0, 1.0, prefix="retry."),
                        "max_tries": _number(retry, "max_tries", 3, 1, 5, integer=True, prefix="retry.")}


def _sheet_fields(spec, out):
    """The character sheet's views, upscale and face pass."""
    w, h = out["width"], out["height"]
    out["style"] = _text(spec, "style")
    views = spec.get("views")
    if not isinstance(views, list) or not 1 <= len(views) <= LIMITS["max_views"]:
        raise JobSpecError("views", f"must list 1 to {LIMITS['max_views']} views", "render the sheet's maps first")
    out["views"] = []
    for i, view in enumerate(views):
        field = f"views[{i}]"
        if not isinstance(view, dict):
            raise JobSpecError(field, "must be an object with name, kind, box and face_box")
        if view.get("kind") not in ("body", "face"):
            raise JobSpecError(f"{field}.kind", f"must be 'body' or 'face', got {view.get('kind')!r}")
        out["views"].append({"name": safe_name(view.get("name"), f"{field}.name"), "kind": view["kind"],
                             "yaw": _number(view, "yaw", 0.0, -360.0, 360.0, prefix=f"{field}."),
                             "box": _box(view.get("box"), f"{field}.box", w, h),
                             "face_box": _box(view.get("face_box"), f"{field}.face_box", w, h, optional=True)})
    if len({v["name"] for v in out["views"]}) != len(out["views"]):
        raise JobSpecError("views", "two views share a name")
    upscale = spec.get("upscale", {})
    if not isinstance(upscale, dict):
        raise JobSpecError("upscale", "must be an object with factor, strength, tile and overlap")
    out["upscale"] = {"factor": _number(upscale, "factor", 2.0, 1.0, 2.0, prefix="upscale."),
                      "strength": _number(upscale, "strength", 0.3, 0.0, 1.0, prefix="upscale."),
                      "tile": _number(upscale, "tile", 1024, 64, 2048, integer=True, prefix="upscale."),
                      "overlap": _number(upscale, "overlap", 128, 0, 512, integer=True, prefix="upscale.")}
    if out["upscale"]["tile"] % 8 or out["upscale"]["overlap"] * 2 >= out["upscale"]["tile"]:
        raise JobSpecError("upscale.tile", "must be a multiple of 8 and more than twice the overlap")
    if max(w, h) * out["upscale"]["factor"] > LIMITS["max_side"] * 2:
        raise JobSpecError("upscale.factor", f"would make a side over {LIMITS['max_side'] * 2} pixels")
    faces = spec.get("faces", {})
    if not isinstance(faces, dict):
        raise JobSpecError("faces", "must be an object with enabled, strength, size and detector")
    out["faces"] = {"enabled": bool(faces.get("enabled", True)),
                    "strength": _number(faces, "strength", 0.4, 0.0, 1.0, prefix="faces."),
                    # 0: the profile's native size (1024 for SDXL)
                    "size": _number(faces, "size", 0, 0, 2048, integer=True, prefix="faces."),
                    "detector": faces.get("detector", "auto")}
    if out["faces"]["size"] % 8 or 0 < out["faces"]["size"] < 64:
        raise JobSpecError("faces.size", "must be 0 (the model's own size) or a multiple of 8 from 64")
    if out["faces"]["detector"] not in ("auto", "rig"):
        raise JobSpecError("faces.detector", "must be 'auto' (insightface when installed, else the rig) or 'rig'")


def _encoded(kind, prompt, controls, width, height, negative_prompt, seed, steps, guidance, profile, batch, name,
             references, identity_scale):
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
    return spec


def posed_character_spec(prompt, controls, width, height, negative_prompt="", seed=0, steps=30, guidance=6.0,
                         profile="sdxl", batch=1, name="result", references=(), identity_scale=0.6,
                         identity_embedding=None, keypoints=None, retry=None):
    """A validated `posed_character` spec. `controls`: {name: {"png": bytes, "strength", "start",
    "end"}}; `references`: PNG bytes of pictures of the character (identity via IP-Adapter),
    `identity_embedding` their pack's mean embedding; `keypoints`: {rig: 18 body joints} the
    output's pose is scored against; `retry`: {"min_identity", "max_tries"}. Width and height
    are rounded down to multiples of 8 (the render resolution need not be)."""
    spec = _encoded("posed_character", prompt, controls, width, height, negative_prompt, seed, steps, guidance,
                    profile, batch, name, references, identity_scale)
    if identity_embedding is not None and "identity" in spec:
        spec["identity"]["embedding"] = list(identity_embedding)
    if keypoints:
        spec["keypoints"] = keypoints
    if retry:
        spec["retry"] = retry
    return validate_job(spec)


def character_sheet_spec(prompt, controls, sheet, style="", negative_prompt="", seed=0, steps=30, guidance=6.0,
                         profile="sdxl", name="sheet", references=(), identity_scale=0.6, upscale=2.0,
                         upscale_strength=0.3, tile=1024, face_detail=True, face_strength=0.4, face_size=0):
    """A validated `character_sheet` spec from the sheet record that `render_sheet` wrote
    (sheet.json: size and views with their boxes)."""
    width, height = sheet["size"]
    spec = _encoded("character_sheet", prompt, controls, width, height, negative_prompt, seed, steps, guidance,
                    profile, 1, name, references, identity_scale)
    spec.update(style=style, views=[{k: v[k] for k in ("name", "kind", "yaw", "box", "face_box")}
                                    for v in sheet["views"] if v.get("box")],
                upscale={"factor": round(upscale, 4), "strength": round(upscale_strength, 4), "tile": tile,
                         "overlap": min(128, tile // 4)},
                faces={"enabled": face_detail, "strength": round(face_strength, 4), "size": face_size})
    return validate_job(spec)


def background_spec(prompt, width, height, depth_png=None, depth_strength=0.6, negative_prompt="", seed=0, steps=30,
                    guidance=6.0, profile="sdxl", name="background", sharp=True, detail_strength=0.25):
    """A validated `background` spec: a set from a prompt, guided by the set's depth if given."""
    controls = {"depth": {"png": depth_png, "strength": depth_strength}} if depth_png else {}
    spec = _encoded("background", prompt, controls, width, height, negative_prompt, seed, steps, guidance, profile,
                    1, name, (), 0.0)
    spec.update(sharp=sharp, detail={"strength": round(detail_strength, 4), "tile": 1024, "overlap": 128})
    return validate_job(spec)


def _b64(png):
    import base64
    return base64.b64encode(png).decode("ascii")


def _identity_entry(references, embedding, scale, faceid_scale=0.6):
    if not references:
        return None
    entry = {"images": [_b64(png) for png in references], "scale": round(scale, 4),
             "faceid_scale": round(faceid_scale, 4)}
    if embedding is not None:
        entry["embedding"] = list(embedding)
    return entry


def shot_spec(prompt, controls, width, height, background_png, characters, negative_prompt="", seed=0, steps=30,
              guidance=6.0, profile="sdxl", name="shot", mode="inpaint", grow=24, feather=12, strength=1.0,
              character_strength=0.5, harmonize=0.3, hands=True, hand_strength=0.45, hand_boxes=(), keypoints=None):
    """A validated `shot` spec: the characters generated into the background. `characters`:
    [{"name", "prompt", "mask" (PNG bytes), "references" (PNG bytes), "embedding", "scale"}]."""
    spec = _encoded("shot", prompt, controls, width, height, negative_prompt, seed, steps, guidance, profile, 1,
                    name, (), 0.0)
    spec["background"] = {"image": _b64(background_png)}
    spec["characters"] = []
    for c in characters:
        entry = {"name": c["name"], "prompt": c.get("prompt", ""), "mask": _b64(c["mask"])}
        identity = _identity_entry(c.get("references", ()), c.get("embedding"), c.get("scale", 0.6))
        if identity:
            entry["identity"] = identity
        spec["characters"].append(entry)
    spec["composite"] = {"mode": mode, "grow": int(grow), "feather": int(feather), "strength": round(strength, 4),
                         "character_strength": round(character_strength, 4), "harmonize": round(harmonize, 4)}
    spec["hands"] = {"enabled": bool(hands), "strength": round(hand_strength, 4), "boxes": [list(b) for b in hand_boxes]}
    if keypoints:
        spec["keypoints"] = keypoints
    return validate_job(spec)


def expression_spec(image_png, width, height, expression, prompt="", custom="", face_box=None, negative_prompt="",
                    seed=0, steps=30, guidance=6.0, profile="sdxl", name="expression", strength=0.6,
                    references=(), embedding=None, identity_scale=0.6, detector="auto"):
    """A validated `expression` spec: the face in `image_png` redrawn with `expression`."""
    spec = _encoded("expression", prompt, {}, width, height, negative_prompt, seed, steps, guidance, profile, 1,
                    name, (), 0.0)
    spec.update(image=_b64(image_png), expression=expression, custom=custom, face_box=face_box, strength=strength,
                detector=detector)
    identity = _identity_entry(references, embedding, identity_scale)
    if identity:
        spec["identity"] = identity
    return validate_job(spec)
