"""Draft mode on the tiny profiles: the family's few-step settings (TCD on SDXL, Lightning on
Qwen-Image-Edit, klein's own 4 steps) with the draft LoRA on, labelled in the PNG; a final
after a draft is exactly the final it would have been (LoRA off, scheduler restored); a profile
without draft settings refuses drafts before queueing."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from conftest import completed_job, image_of, png_b64, spec
from test_shot_job import assert_only_characters_and_hands_changed, results, shot_job


def picture(backend, job):
    client, headers, status = completed_job(backend, job)
    answer = client.get(f"/jobs/{status['id']}/results/{status['results'][0]}", headers=headers)
    png = Image.open(io.BytesIO(answer.content))
    return image_of(answer), json.loads(png.text["characterforge"]), png.text["parameters"]


@pytest.mark.parametrize("profile, steps, sampler, lora", [
    ("tiny", 6, "TCD", True),
    ("tiny-qwen-edit", 4, "FlowMatchEuler (Lightning)", True),
    ("tiny-flux2-klein", 4, "FlowMatchEuler", False),
])
def test_a_draft_runs_the_familys_few_steps_and_a_final_after_it_is_unchanged(make_backend, profile, steps, sampler,
                                                                              lora):
    backend = make_backend()
    job = spec(profile=profile, steps=3, identity={"images": [png_b64(64, 64, (250, 20, 20))]})
    final, record, parameters = picture(backend, job)
    assert not record["job"]["draft"] and "Draft" not in parameters
    draft, record, parameters = picture(backend, dict(job, draft=True))
    assert record["job"]["draft"] and record["job"]["steps"] == steps and record["job"]["guidance"] == 1.0
    assert f"Steps: {steps}, Sampler: {sampler}, CFG scale: 1.0" in parameters and "Draft: yes" in parameters
    assert "face_pass" not in record  # drafts skip the SDXL face pass of the edit families
    assert not np.array_equal(draft, final)
    engine = backend.engine_for(profile)
    assert engine._draft_lora is lora
    again, _, _ = picture(backend, job)
    assert np.array_equal(again, final)  # the draft LoRA is off and the scheduler back for the final


def test_the_draft_lora_is_what_makes_an_sdxl_draft(make_backend, tmp_path, monkeypatch):
    """The same few TCD steps without the LoRA give another picture."""
    from characterforge_addon.backend.engine import pipelines
    with_lora, _, _ = picture(make_backend(), spec(draft=True))
    monkeypatch.setattr(pipelines.Engine, "_load_draft_lora", lambda engine: None)
    without, record, _ = picture(make_backend(tmp_path / "other"), spec(draft=True))
    assert record["job"]["steps"] == 6 and not np.array_equal(with_lora, without)


def test_a_profile_without_draft_settings_refuses_drafts_before_queueing(make_backend):
    import os

    from fastapi.testclient import TestClient

    from characterforge_addon.backend.models import profiles
    backend = make_backend()
    os.makedirs(backend.profile_dirs[0], exist_ok=True)
    with open(os.path.join(profiles.BUILTIN_DIR, "tiny.toml")) as f:
        text = f.read().replace('name = "tiny"', 'name = "tiny-no-draft"').split("[models.draft_lora]")[0]
    with open(os.path.join(backend.profile_dirs[0], "tiny-no-draft.toml"), "w") as f:
        f.write(text)
    answer = TestClient(backend.app).post("/jobs", json=spec(profile="tiny-no-draft", draft=True),
                                          headers={"x-characterforge-token": backend.token})
    assert answer.status_code == 400 and answer.json()["details"]["field"] == "profile"
    assert "quick few-step drafts (draft)" in answer.json()["message"] and " tiny " in answer.json()["fix"]


def test_a_draft_shot_runs_every_pass_in_few_steps_and_keeps_the_background(make_backend):
    """Inpainting at a strength with TCD: characters and hands redrawn, nothing else."""
    (pixels, record), = results(make_backend(), shot_job(draft=True)).values()
    assert record["job"]["draft"] and record["job"]["steps"] == 6
    assert_only_characters_and_hands_changed(pixels, record)
