"""The background job on the tiny profile: from a prompt alone or following the set's depth,
the sharp option's prompts and detail pass, and what a background refuses."""

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
