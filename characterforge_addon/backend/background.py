"""The background job: a set from a prompt, optionally following the depth of the geometry the
user built (so it matches the 3D layout and camera), and with "sharp" on, prompted away from
shallow depth of field and refined tile by tile at low strength so it stays crisp."""

from . import sheet

SHARP_PROMPT = ", sharp focus, deep depth of field, everything in focus, highly detailed background"
SHARP_NEGATIVE = "bokeh, blurry background, shallow depth of field, depth of field, tilt-shift, out of focus"


def run(engine, spec, pngs, progress, cancel):
    """[("background", pixels, record)]."""
    job = dict(spec)
    if spec["sharp"]:
        job["prompt"] = spec["prompt"] + SHARP_PROMPT
        job["negative_prompt"] = ", ".join(p for p in (spec["negative_prompt"], SHARP_NEGATIVE) if p)
    progress.stage("background")
    image = engine.draw(job, pngs, [], progress.step, cancel)[0]
    record = {"sharp": spec["sharp"], "prompt_used": job["prompt"], "negative_used": job["negative_prompt"],
              "set_depth": "depth" in spec["controls"]}
    if spec["sharp"] and spec["detail"]["strength"] > 0:
        d = spec["detail"]
        image = sheet.refine(engine, image, job, 1.0, d["strength"], d["tile"], d["overlap"], [], progress, cancel,
                             "detail")
        record["detail_pass"] = d
    return [(spec["name"], image, record)]
