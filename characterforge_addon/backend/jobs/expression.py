"""The expression job: a finished picture's face redrawn with another expression (a preset or
the user's words), keeping the character's identity through the adapters. Only the face's
feathered ellipse changes; the original stays a separate result (the add-on keeps both)."""

import base64

import numpy as np

from ...core.errors import UserError
from ...core.spec.job_spec import expression_prompt
from ..engine.pictures import decode_image_bytes
from . import redraw, scoring

FACE_GROW = 1.6  # the square redrawn around the face: context for the model, the ellipse limits the change


def _overlap(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0)


def find_face(spec, pixels, face_tools):
    """(box, source): the detector's face overlapping the rig's face box most (or its largest
    face when no box was sent); else the rig's box."""
    given = spec["face_box"]
    if spec["detector"] == "auto" and face_tools is not None:
        found = [list(map(int, f.box)) for f in face_tools.find(pixels)]
        if given:
            found = [b for b in found if _overlap(b, given) > 0]
        if found:
            key = (lambda b: _overlap(b, given)) if given else (lambda b: (b[2] - b[0]) * (b[3] - b[1]))
            return max(found, key=key), "detector"
    if given:
        return given, "rig"
    raise UserError("no face found in the picture: turn the character's face towards the camera, or run it from a "
                    "shot whose rig shows its face (the face box comes from the rig's face keypoints)")


def run(engine, spec, progress, cancel, face_tools):
    """[(name, pixels, record)]: the picture with the new expression."""
    image = decode_image_bytes(base64.b64decode(spec["image"]), "image").convert("RGB")
    if image.size != (spec["width"], spec["height"]):
        raise UserError(f"image: it is {image.size[0]}x{image.size[1]} but width x height say "
                        f"{spec['width']}x{spec['height']}: send the picture's own size")
    pixels = np.asarray(image)
    box, source = find_face(spec, pixels, face_tools)
    prompt, negative = expression_prompt(spec)
    job = dict(spec, prompt=prompt, negative_prompt=negative)
    references = [decode_image_bytes(base64.b64decode(b), f"identity.images[{i}]")
                  for i, b in enumerate(spec.get("identity", {}).get("images", []))]
    progress.stage(f"expression: {spec['expression']}")
    out, where = redraw.redraw_box(engine, pixels, box, job, spec["strength"], spec["seed"], references, progress,
                                   cancel, engine.profile.native_size, FACE_GROW)
    if where is None:
        raise UserError(f"the face ({box[2] - box[0]}x{box[3] - box[1]} pixels) is too small to redraw: "
                        "render the shot larger or frame the character closer")
    record = {"expression": spec["expression"], "custom": spec["custom"], "prompt_used": prompt,
              "negative_used": negative, "face_box": box, "face_source": source, **where,
              "strength_used": spec["strength"] if engine.family.region_strength else None}
    if "identity" in spec:
        pngs = [base64.b64decode(b) for b in spec["identity"]["images"]]
        target = scoring.identity_target(face_tools, spec, pngs, decode_image_bytes)
        record["scores"] = {"identity": scoring.identity_scores(face_tools, [out], target)[0]}
    return [(spec["name"], out, record)]
