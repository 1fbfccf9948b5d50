"""The scored face pass: edit models keep a whole character but hold faces less well than SDXL's
identity adapters. Each face of an edit-family picture is redrawn by the profile's
`face_refine` profile (SDXL with IP-Adapter plus-face and FaceID) inside its box; the picture
before and after are both scored with insightface against the character, and the one with the
higher identity score is kept. Both scores are recorded."""

from ..engine.pictures import decode_image_bytes
from . import scoring
from .redraw import redraw_box

STRENGTH = 0.4   # enough to redraw a face's features, little enough to keep its lighting and angle
GROW = 1.6       # the square redrawn around the face: context for the model
MAX_FACES = 4


def _similarity(score):
    return score["similarity"] if score and score.get("status") == "ok" else None


def run(images, spec, pngs, refine, face_tools, target, progress, cancel):
    """[(pixels, record)]: each image, or its refined copy where that scored higher."""
    references = [decode_image_bytes(png, f"identity.images[{i}]") for i, png in enumerate(pngs.get("identity", []))]
    out = []
    for i, pixels in enumerate(images):
        faces = face_tools.find(pixels)[:MAX_FACES]
        if not faces:
            out.append((pixels, {"kept": "edit", "why": "no face found in the picture"}))
            continue
        progress.stage(f"face pass ({refine.profile.name}): {len(faces)} face(s)")
        refined = pixels
        for face in faces:
            refined, _ = redraw_box(refine, refined, face.box, spec, STRENGTH, spec["seed"] + 101 + i, references,
                                    progress, cancel, refine.profile.native_size, GROW)
        before, after = scoring.identity_scores(face_tools, [pixels, refined], target)
        better = _similarity(after) is not None and (_similarity(before) is None
                                                     or _similarity(after) > _similarity(before))
        record = {"profile": refine.profile.name, "faces": [list(f.box) for f in faces], "identity_edit": before,
                  "identity_refined": after, "kept": "refined" if better else "edit"}
        out.append((refined if better else pixels, record))
    return out


def refiner(engine_for, profile):
    """(the engine of the profile's face_refine, None) when it can redraw faces here, else (None, why)."""
    from .. import families
    from ..models import models, profiles
    name = profile.face_refine
    try:
        refine_profile = profiles.load_profile(name)
    except Exception as exc:  # a UserError naming the profile; the picture is kept as drawn
        return None, f"face_refine profile {name!r}: {exc}"
    if not {"inpaint", "identity"} <= families.capabilities(refine_profile):
        return None, f"face_refine profile {name} cannot redraw faces with an identity (inpaint + identity)"
    engine = engine_for(name)
    for role in ("base", "vae", "image_encoder", "ip_adapter_plus_face", "insightface"):
        if role in refine_profile.models:
            try:
                models.check(refine_profile.models[role], engine.models_dir)
            except models.ModelMissing as exc:
                return None, f"face pass skipped: {exc}"
    return engine, None

