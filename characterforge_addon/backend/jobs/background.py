"""The background job: a set from a prompt, optionally following the depth of the geometry the
user built (so it matches the 3D layout and camera), and with "sharp" on, prompted away from
shallow depth of field and refined tile by tile at low strength so it stays crisp. With
`fill`, only the part of a set another camera has not painted is made: inpainted in the mask
with the painted part as context, every pixel outside the mask kept exactly."""

import base64

import numpy as np

from . import sheet
from .shot import cover, decode_picture, grow, mask_image

# The inpainting sees a little past the mask's edge, so the new part continues the painted one
FILL_GROW = 8

SHARP_PROMPT = ", sharp focus, deep depth of field, everything in focus, highly detailed background"
SHARP_NEGATIVE = "bokeh, blurry background, shallow depth of field, depth of field, tilt-shift, out of focus"


def run(engine, spec, pngs, progress, cancel):
    """[("background", pixels, record)]."""
    job = dict(spec)
    if spec["sharp"]:
        job["prompt"] = spec["prompt"] + SHARP_PROMPT
        job["negative_prompt"] = ", ".join(p for p in (spec["negative_prompt"], SHARP_NEGATIVE) if p)
    record = {"sharp": spec["sharp"], "prompt_used": job["prompt"], "negative_used": job["negative_prompt"],
              "set_depth": "depth" in spec["controls"]}
    if "fill" in spec:
        context, mask = _fill_inputs(spec)
        record["filled_fraction"] = round(float(mask.mean()), 4)
        if not mask.any():  # every pixel painted already: the context is the answer
            return [(spec["name"], context, record)]
        progress.stage("fill")
        w, h = spec["width"], spec["height"]
        controls = [("depth", decode_picture(pngs["depth"], "controls.depth.image", (w, h)))] if "depth" in pngs else []
        image = engine.inpaint(job, context, mask_image(grow(mask, FILL_GROW)), 1.0, [], spec["seed"], "",
                               progress.step, cancel, controls=controls)
    else:
        progress.stage("background")
        image = engine.draw(job, pngs, [], progress.step, cancel)[0]
    if spec["sharp"] and spec["detail"]["strength"] > 0:
        d = spec["detail"]
        image = sheet.refine(engine, image, job, 1.0, d["strength"], d["tile"], d["overlap"], [], progress, cancel,
                             "detail")
        record["detail_pass"] = d
    if "fill" in spec:
        image = np.where(mask[..., None], image, context)
    return [(spec["name"], image, record)]


def _fill_inputs(spec):
    """(context pixels, mask as booleans), both at the job's size."""
    w, h = spec["width"], spec["height"]
    context = np.asarray(cover(decode_picture(base64.b64decode(spec["fill"]["image"]), "fill.image"), w, h))
    mask = np.asarray(decode_picture(base64.b64decode(spec["fill"]["mask"]), "fill.mask", (w, h), "L")) > 127
    return context, mask
