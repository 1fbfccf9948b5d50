"""The relight job: a picture (a composite, a posed character, a background, a moving shot's
frame) relit by a light reference rendered from the scene's own lights for the picture's camera,
everything else kept.

The light reference is shown to the model the way its family takes pictures (`relight` of
each family): the Stable Diffusion families redraw at a low strength from the picture's
luminance re-shaded by the light reference (core.shots.lighting), the depth (and normal) maps
holding the geometry and each character's identity, through the adapters, its face or its look; an edit
family gets the picture and the light reference as input pictures with an instruction naming
the light. Inside the characters' masks (grown, feathered) only, or over the whole picture:
outside the grown masks every pixel is the picture's own. How much the picture's shading agrees
with the light reference (inside the masks) is measured before, after re-shading and after; each
character's identity before and after (a humanoid's face by ArcFace, a look by the appearance
score), and a fall past the margin is said.
"""

import base64
import io

import numpy as np
from PIL import Image

from ...core.characters import kinds
from ...core.errors import UserError
from ...core.shots import lighting
from ...core.spec.spec_fields import JobSpecError
from ..engine.adapters import Region
from ..engine.pictures import decode_image_bytes
from . import scoring
from .shot import decode_picture, feathered, grow, mask_image, paste

ASPECT_SLACK = 0.02  # a light reference or mask may be rendered at another size, not another shape
DARK = float(lighting.srgb_to_linear(1))  # a light reference no brighter than its first level shows no light
UNLIT = "_unlit"  # a relit shot's composite before relighting comes back under its name + this


# ---------------------------------------------------------------------------------------------
# Inputs, and their checks before a job is queued

def _png(value):
    return base64.b64decode(value)


def _rgba(png, field):
    decode_image_bytes(png, field)  # the same checks as every picture (PNG, size limit)
    return Image.open(io.BytesIO(png)).convert("RGBA")


def _same_shape(size, width, height, field, fix):
    w, h = size
    if abs(w / h - width / height) > ASPECT_SLACK * width / height:
        raise JobSpecError(field, f"is {w}x{h}: not the shape of the {width}x{height} picture", fix)


def _light(entry, field, width, height):
    """(light H, W, 3 linear over the white, coverage, (normals, where) or None) at the picture's
    size, refusing a light reference of another shape or one that shows no light."""
    image = _rgba(_png(entry["image"]), f"{field}.image")
    _same_shape(image.size, width, height, f"{field}.image",
                "render the light reference from the picture's camera at its resolution")
    if image.size != (width, height):
        image = image.resize((width, height), Image.BILINEAR)
    light, coverage = lighting.light_from_picture(np.asarray(image))
    if not coverage.any() or lighting.luminance(light)[coverage].max() <= DARK:
        raise JobSpecError(f"{field}.image", "shows no light: none of the scene's lights reaches anything the "
                           "camera sees", "add a light to the scene (or switch one on, or aim it at the set and the "
                           "characters) and render the light reference again")
    normals = None
    if "normal" in entry:
        image = decode_picture(_png(entry["normal"]), f"{field}.normal")
        _same_shape(image.size, width, height, f"{field}.normal", "send the normals rendered with the light reference")
        normals = lighting.normals_from_picture(np.asarray(image.resize((width, height), Image.NEAREST)))
    return light, coverage, normals


def _masks(characters, width, height):
    masks = []
    for i, ch in enumerate(characters):
        field = f"characters[{i}].mask"
        image = decode_picture(_png(ch["mask"]), field, mode="L")
        _same_shape(image.size, width, height, field, "send the mask rendered with the picture's camera")
        mask = np.asarray(image.resize((width, height), Image.NEAREST) if image.size != (width, height)
                          else image) > 127
        if not mask.any():
            raise JobSpecError(field, f"marks nothing: {ch['name']} is not in the picture", "leave that character out")
        masks.append(mask)
    return masks


def _picture(spec):
    image = decode_picture(_png(spec["image"]), "image")
    if image.size != (spec["width"], spec["height"]):
        raise JobSpecError("image", f"is {image.size[0]}x{image.size[1]} but width x height say "
                           f"{spec['width']}x{spec['height']}", "send the picture at its own size as width and height")
    return np.asarray(image)


def check(job):
    """Before a job is queued: the picture's size, a light reference of the picture's shape that
    shows some light, masks of its shape that mark something (a relight, or a shot relit)."""
    w, h = job["width"], job["height"]
    if job["kind"] == "relight":
        _picture(job)
        _light(job["light"], "light", w, h)
        _masks(job["characters"], w, h)
    elif job.get("relight"):
        _light(job["relight"]["light"], "relight.light", w, h)


# ---------------------------------------------------------------------------------------------
# Relighting one picture

def light_words(light, characters, masks, whole):
    """{"subject", "light"}: what is relit and where its key light comes from, in words (each
    character's own when they differ)."""
    own = {c["name"]: lighting.direction_words(c["key"]) for c in light["characters"]}
    named = [(ch["name"], own[ch["name"]], mask) for ch, mask in zip(characters, masks) if ch["name"] in own]
    if whole or not characters:
        subject = "the whole picture"
    else:
        subject = "the character" if len(characters) == 1 else "the characters"
    if len({words for _, words, _ in named}) > 1:
        parts = [f"the character {lighting.place_words(mask)} is lit {words}" for _, words, mask in named]
        return {"subject": subject, "light": "; ".join(parts)}
    words = named[0][1] if named else lighting.direction_words(light["key"]) if "key" in light else None
    return {"subject": subject, "light": f"key light {words}" if words else "lit as the clay render shows"}


def _identity(engine, spec, characters, references, areas, h, w):
    """The regional identity arguments (each character's identity in its own area) for families
    that keep identities through adapters; None when no character has one or the family takes
    pictures instead."""
    if not any(references) or not engine.family.roles_for("identity"):
        return None
    engine.adapters.load()
    regions = []
    for ch, refs, area in zip(characters, references, areas):
        identity = ch.get("identity", {})
        look = identity.get("appearance")
        if kinds.is_humanoid(ch.get("kind", kinds.HUMANOID)):
            embedding = engine.identity_embedding({"identity": identity}, refs) if refs and engine.adapters.faceid \
                else None
            regions.append(Region(refs, embedding, identity.get("scale", 0.0), identity.get("faceid_scale", 0.0),
                                  mask_image(area), look and look["embedding"], look["scale"] if look else 0.0))
        else:  # no face (as in a shot): its pictures steer no face adapter; its look is its identity
            regions.append(Region(refs, None, 0.0, 0.0, mask_image(area), look and look["embedding"],
                                  look["scale"] if look else 0.0))
    return lambda pipe: engine.adapters.regional_kwargs(pipe, spec, regions, h, w)


def _crop(pixels, mask):
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return pixels
    return np.ascontiguousarray(pixels[ys.min():ys.max() + 1, xs.min():xs.max() + 1])


def identity_check(engine, face_tools, before, after, characters, masks, margin):
    """Per character (or the whole picture without characters), its identity before and after
    relighting: a humanoid's face against its identity pack when it has one, else against its own
    face before (ArcFace); the look of a character whose pack has one (the appearance score).
    {"by_character": {name: {"before", "after", "fall", "fell", "appearance": {...}}}, "fell":
    [names], "margin"}: a fall past `margin` in either is said."""
    out = {"margin": margin, "by_character": {}, "fell": []}
    faces = face_tools is not None and face_tools.has_recogniser
    if not faces:
        out["status"] = "unavailable: insightface recognition model (the profile's insightface role)"
    targets = list(zip(characters, masks)) or [({"name": "picture"}, np.ones(before.shape[:2], bool))]
    said = []
    for ch, mask in targets:
        entry = {}
        if faces and kinds.is_humanoid(ch.get("kind", kinds.HUMANOID)):
            entry = _face_check(face_tools, before, after, ch, mask, margin)
        if entry.get("fell"):
            said.append(f"{ch['name']} (face)")
        look = ch.get("identity", {}).get("appearance")
        if look:
            was, now = scoring.appearance_scores(engine, [before, after], [mask, mask], ch["identity"])
            entry["appearance"] = {"before": was, "after": now}
            if was.get("status") == "ok" and now.get("status") == "ok":
                fall = round(was["similarity"] - now["similarity"], 4)
                entry["appearance"].update(fall=fall, fell=fall > margin)
                if fall > margin:
                    said.append(f"{ch['name']} (look)")
        if entry.get("fell") or entry.get("appearance", {}).get("fell"):
            out["fell"].append(ch["name"])
        if entry:
            out["by_character"][ch["name"]] = entry
    if said:
        out["message"] = (f"identity fell by more than {margin:g} for {', '.join(said)}: the picture before "
                          "relighting is kept next to the relit one")
    return out


def _face_check(face_tools, before, after, ch, mask, margin):
    """A humanoid's face before and after relighting (ArcFace), inside its grown mask."""
    area = grow(mask, 8)
    was, now = _crop(before, area), _crop(after, area)
    if "identity" in ch:
        pngs = [_png(b) for b in ch["identity"]["images"]]
        target = scoring.identity_target(face_tools, {"identity": ch["identity"]}, pngs, decode_image_bytes)
        against = "identity pack"
    else:
        own = face_tools.embed(was)
        target = (own, [own]) if own is not None else (None, None)
        against = "its own face before relighting"
    if target[1] is None and target[0] is None:
        return {"status": "no_face", "reason": "no face found before relighting"}
    first, second = scoring.identity_scores(face_tools, [was, now], target)
    entry = {"against": against, "before": first, "after": second}
    if first.get("status") == "ok" and second.get("status") == "ok":
        entry["fall"] = round(first["similarity"] - second["similarity"], 4)
        entry["fell"] = entry["fall"] > margin
    elif first.get("status") == "ok":  # the face was there and is gone
        entry["fall"], entry["fell"] = round(first["similarity"], 4), True
    return entry


def clay_picture(light, coverage):
    """The light reference as the edit models see it: a grey clay render, mid grey where no surface is."""
    return np.where(coverage[..., None], lighting.linear_to_srgb(light), np.uint8(127))


def relight_picture(engine, spec, picture, light, characters, masks, references, controls, options, grow_px,
                    feather_px, whole, progress, cancel, face_tools):
    """(relit picture, record): `picture` (H, W, 3 uint8) relit by `light` ((light, coverage) at its
    size), inside the characters' masks grown by `grow_px` and feathered by `feather_px`, or whole.
    `references`: per character its PIL pictures; `controls`: [(map name, PIL image)];
    `options`: {"light" (the spec's entry), "strength", "shading", "margin"}."""
    h, w = picture.shape[:2]
    rgb, coverage, normals = light
    union = np.logical_or.reduce(masks) if masks else np.zeros((h, w), bool)
    areas = [grow(m, grow_px) for m in masks]
    area = np.ones((h, w), bool) if whole else grow(union, grow_px)
    blend = np.ones((h, w)) if whole else feathered(area, feather_px)
    measured = (union if union.any() else np.ones((h, w), bool)) & coverage
    progress.stage("re-shading")
    start, shading = lighting.reshade(picture, rgb, coverage, blend, options["shading"], normals, areas)
    words = light_words(options["light"], characters, masks, whole)
    progress.stage("relighting")
    first = [refs[0] for refs in references if refs]
    made, notes = engine.family.relight(engine, spec, picture, start, clay_picture(rgb, coverage), mask_image(area),
                                        options["strength"], first, spec["seed"], words, progress.step, cancel,
                                        controls, _identity(engine, spec, characters, references, areas, h, w))
    image = made if whole else paste(picture, made, blend)
    progress.stage("identity check")
    identity = identity_check(engine, face_tools, picture, image, characters, masks, options["margin"])
    agreement = {"before": lighting.agreement(picture, rgb, measured),
                 "reshaded": lighting.agreement(start, rgb, measured),
                 "after": lighting.agreement(image, rgb, measured),
                 "where": ("inside the characters' masks" if union.any()
                           else "wherever the light reference has a surface")}
    lora = engine.profile.models.get("relight_lora")
    record = {"whole": whole, "words": words, "white": options["light"]["white"], "shading": shading,
              "agreement": agreement, "identity": identity, "lora": lora.location if lora else None, **notes}
    return image, record


# ---------------------------------------------------------------------------------------------
# The job kinds

def _references(characters):
    return [[decode_picture(_png(b), f"characters[{i}].identity.images[{j}]")
             for j, b in enumerate(ch["identity"]["images"])] if "identity" in ch else []
            for i, ch in enumerate(characters)]


def _controls(spec, pngs, names):
    size = (spec["width"], spec["height"])
    return [(n, decode_picture(pngs[n], f"controls.{n}.image", size)) for n in names if n in pngs]


def run(engine, spec, pngs, progress, cancel, face_tools, pose_detector=None):
    """[(name, pixels, record)]: the relit picture."""
    w, h = spec["width"], spec["height"]
    picture = _picture(spec)
    light = _light(spec["light"], "light", w, h)
    masks = _masks(spec["characters"], w, h)
    image, record = relight_picture(engine, spec, picture, light, spec["characters"], masks,
                                    _references(spec["characters"]), _controls(spec, pngs, ("depth", "normal")),
                                    spec, spec["grow"], spec["feather"], spec["whole"], progress, cancel, face_tools)
    scores = {}
    if pose_detector is not None:
        scores["pose"] = scoring.pose_scores(pose_detector, [image], spec)[0]
    found = [e["after"] for e in record["identity"]["by_character"].values() if "after" in e]
    if found:
        scores["identity"] = min(found, key=lambda s: s.get("similarity", 2.0))
    looks = {name: e["appearance"]["after"] for name, e in record["identity"]["by_character"].items()
             if "appearance" in e}
    if looks:  # as a shot's scores give them
        ok = [s for s in looks.values() if s.get("status") == "ok"]
        scores["appearance"] = min(ok, key=lambda s: s["similarity"]) if ok else next(iter(looks.values()))
        scores["appearance_by_character"] = looks
    return [(spec["name"], image, {"relight": record, "scores": scores})]


def after_shot(engine, spec, pngs, outputs, progress, cancel, face_tools):
    """A shot with `relight`: its composite relit inside the characters' grown masks, returned
    first (what a moving shot carries on), the composite before relighting after it."""
    if not outputs:
        raise UserError("the shot made no composite to relight")
    (name, composite, record), rest = outputs[0], outputs[1:]
    w, h = spec["width"], spec["height"]
    options = spec["relight"]
    job = dict(spec, prompt=", ".join(p for p in [spec["prompt"].strip()] + [ch["prompt"].strip()
                                                                           for ch in spec["characters"]] if p))
    masks = [np.asarray(decode_picture(_png(ch["mask"]), f"characters[{i}].mask", (w, h), "L")) > 127
             for i, ch in enumerate(spec["characters"])]
    image, relit = relight_picture(engine, job, composite, _light(options["light"], "relight.light", w, h),
                                   spec["characters"], masks, _references(spec["characters"]),
                                   _controls(spec, pngs, ("depth",)), options, spec["composite"]["grow"],
                                   spec["composite"]["feather"], False, progress, cancel, face_tools)
    return [(name, image, dict(record, relight=relit)), (name + UNLIT, composite, record)] + rest
