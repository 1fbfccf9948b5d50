"""The background job on the tiny profile: from a prompt alone or following the set's depth,
the sharp option's prompts and detail pass, and what a background refuses."""

import base64
import io
import json

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image

from conftest import completed_job, image_of, png_b64


def job(**changes):
    out = {"kind": "background", "prompt": "a castle courtyard", "seed": 2, "steps": 2, "width": 128, "height": 64,
           "profile": "tiny", "detail": {"strength": 0.5, "tile": 64, "overlap": 16}}
    out.update(changes)
    return out


def run(backend, spec):
    client, headers, status = completed_job(backend, spec)
    r = client.get(f"/jobs/{status['id']}/results/{status['results'][0]}", headers=headers)
    return image_of(r), json.loads(Image.open(io.BytesIO(r.content)).text["characterforge"])


def test_background_from_a_prompt_is_sharp_by_default(make_backend):
    backend = make_backend()
    pixels, record = run(backend, job())
    assert pixels.shape == (64, 128, 3)
    assert record["sharp"] and "deep depth of field" in record["prompt_used"] and "bokeh" in record["negative_used"]
    assert record["detail_pass"]["strength"] == 0.5 and not record["set_depth"]
    soft, soft_record = run(backend, job(sharp=False))
    assert "detail_pass" not in soft_record and soft_record["prompt_used"] == "a castle courtyard"
    assert not np.array_equal(pixels, soft)


def test_background_follows_the_sets_depth(make_backend):
    backend = make_backend()
    near = run(backend, job(sharp=False, controls={"depth": {"image": png_b64(128, 64, (255, 255, 255))}}))
    far = run(backend, job(sharp=False, controls={"depth": {"image": png_b64(128, 64, (20, 20, 20))}}))
    assert near[1]["set_depth"] and not np.array_equal(near[0], far[0])


def test_a_background_takes_no_character_maps(make_backend):
    backend = make_backend()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    for change, field in (({"controls": {"openpose": {"image": png_b64()}}}, "controls.openpose"),
                          ({"detail": {"tile": 60}}, "detail.tile"), ({"prompt": ""}, "prompt")):
        r = client.post("/jobs", json=job(**change), headers=headers)
        assert r.status_code == 400 and r.json()["details"]["field"] == field, r.json()


def _png(pixels):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_a_fill_makes_only_the_unpainted_part_and_keeps_every_painted_pixel(make_backend):
    """A second camera's view: the left half painted (a gradient), the right half a hole; the
    fill changes no pixel outside the mask and paints the hole."""
    backend = make_backend()
    context = np.zeros((64, 128, 3), np.uint8)
    context[:, :64] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None]
    mask = np.zeros((64, 128), np.uint8)
    mask[:, 64:] = 255
    depth = {"depth": {"image": png_b64(128, 64, (120, 120, 120))}}
    for detail in (0.0, 0.5):  # the sharp detail pass runs over the whole picture: still none outside the mask
        pixels, record = run(backend, job(controls=depth, fill={"image": _png(context), "mask": _png(mask)},
                                          detail={"strength": detail, "tile": 64, "overlap": 16}))
        assert np.array_equal(pixels[:, :64], context[:, :64])
        assert pixels[:, 64:].std() > 1 and record["filled_fraction"] == 0.5 and record["set_depth"]
    nothing, record = run(backend, job(fill={"image": _png(context), "mask": _png(np.zeros_like(mask))}))
    assert np.array_equal(nothing, context) and record["filled_fraction"] == 0


def test_a_fill_asks_for_inpainting_and_refuses_a_missing_mask(make_backend):
    from characterforge_addon.core.spec.job_spec import needs, validate_job
    spec = validate_job(job(fill={"image": png_b64(128, 64), "mask": png_b64(128, 64)}))
    assert "inpaint" in needs(spec) and "txt2img" not in needs(spec)
    backend = make_backend()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    r = client.post("/jobs", json=job(fill={"image": png_b64(128, 64)}), headers=headers)
    assert r.status_code == 400 and r.json()["details"]["field"] == "fill.mask", r.json()
