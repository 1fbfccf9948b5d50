"""Job specs: the one type that crosses every boundary (panel -> client -> HTTP -> backend).

Pure Python so the add-on and the backend validate the very same fields with the very same
limits. A spec is plain JSON; `validate_job` returns a normalised copy or raises JobSpecError
naming the field, what is wrong and how to fix it.
"""

import math
import re

from .errors import UserError

SPEC_VERSION = 1
JOB_KINDS = ("posed_character", "character_sheet", "background")
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
}

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
    if not isinstance(controls, dict) or (not controls and kind != "background"):
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
    elif "openpose" not in out["controls"]:
        raise JobSpecError("controls.openpose", "is missing", "a posed character needs the OpenPose map")
    identity = spec.get("identity")
    if identity is not None:
        if not isinstance(identity, dict):
            raise JobSpecError("identity", "must be an object with images and scale")
        images = identity.get("images")
        if not isinstance(images, list) or not 1 <= len(images) <= LIMITS["max_references"]:
            raise JobSpecError("identity.images", f"must list 1 to {LIMITS['max_references']} base64 PNG images",
                               "give one or more pictures of the character")
        out["identity"] = {"images": [_image(image, f"identity.images[{i}]") for i, image in enumerate(images)],
                           "scale": _number(identity, "scale", 0.6, 0.0, 1.5, prefix="identity."),
                           "faceid_scale": _number(identity, "faceid_scale", 0.6, 0.0, 1.5, prefix="identity.")}
        embedding = identity.get("embedding")
        if embedding is not None:
            if not isinstance(embedding, list) or not 1 <= len(embedding) <= 4096:
                raise JobSpecError("identity.embedding", "must be a list of 1 to 4096 numbers (the pack's mean)")
            out["identity"]["embedding"] = [_number({"v": v}, "v", 0, -1e6, 1e6, prefix="identity.embedding.")
                                            for v in embedding]
    if not out["prompt"].strip() and "identity" not in out:
        raise JobSpecError("prompt", "is empty", "describe the character, e.g. 'a knight in silver armour'"
                           + (", or give a reference picture" if kind == "character_sheet" else ""))
    out["name"] = safe_name(spec.get("name", "result"), "name")
    _score_fields(spec, out)
    if kind == "character_sheet":
        _sheet_fields(spec, out)
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
