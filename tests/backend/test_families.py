"""Model families declare what they can do; job kinds ask for capabilities. A job its profile
cannot run is refused before it is queued, naming what is missing and the profiles that can."""

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from characterforge_addon.backend import families
from characterforge_addon.backend.models import profiles
from characterforge_addon.core.spec.job_spec import needs, validate_job

from conftest import png_b64, spec

NO_DEPTH = """name = "posesonly"
family = "sdxl"
[models.base]
tiny = "base"
[models.controlnet_openpose]
tiny = "controlnet_openpose"
"""


@pytest.fixture
def api(make_backend):
    backend = make_backend()
    folder = Path(backend.data_dir, "profiles")
    folder.mkdir(exist_ok=True)
    (folder / "posesonly.toml").write_text(NO_DEPTH)
    return TestClient(backend.app), {"x-characterforge-token": backend.token}


def refusal(api, job):
    client, headers = api
    answer = client.post("/jobs", json=job, headers=headers)
    assert answer.status_code == 400, answer.json()
    body = answer.json()
    assert body["details"]["field"] == "profile"
    return body


def test_a_family_without_identity_adapters_is_refused_with_the_profile_that_can(api):
    body = refusal(api, spec(profile="sd15", identity={"images": [png_b64()]}))
    assert "profile sd15 (family sd15) cannot do keeping an identity" in body["message"]
    assert "sdxl" in body["fix"] and "tiny" in body["fix"]


def test_a_profile_without_a_depth_controlnet_is_refused_for_depth_maps(api):
    body = refusal(api, spec(profile="posesonly", controls={"openpose": {"image": png_b64()},
                                                            "depth": {"image": png_b64()}}))
    assert "following depth maps" in body["message"] and "posesonly" in body["message"]
    assert "tiny" in body["fix"]
    client, headers = api
    ok = client.post("/jobs", json=spec(profile="posesonly"), headers=headers)  # pose alone: it can
    assert ok.status_code == 201, ok.json()


def test_an_unknown_profile_is_refused_before_queueing(api):
    body = refusal(api, spec(profile="nosuch"))
    assert "no model profile named 'nosuch'" in body["message"] and "sdxl" in body["message"]


def test_models_missing_on_this_machine_refuse_the_job_with_the_download(api):
    body = refusal(api, spec(profile="sdxl"))
    assert "cannot run this job here" in body["message"] and "base" in body["message"]
    assert "hf download stabilityai/stable-diffusion-xl-base-1.0 --include" in body["fix"]


def test_capabilities_follow_the_roles_a_profile_names():
    every = set(families.FAMILIES["sdxl"].CAPABILITIES)
    assert families.capabilities(profiles.load_profile("tiny-union")) == every
    # normal and line-art maps only through a ControlNet-Union: tiny names two ControlNets
    assert families.capabilities(profiles.load_profile("tiny")) == every - {"normal_control", "line_control"}
    assert "identity" not in families.capabilities(profiles.load_profile("sd15"))
    assert "depth_control" not in families.capabilities(profiles.parse_profile(NO_DEPTH))


@pytest.mark.parametrize("changes, wanted", [
    ({}, {"draw", "pose_control"}),
    ({"controls": {"openpose": {"image": png_b64()}, "hand_depth": {"image": png_b64()}},
      "identity": {"images": [png_b64()]}}, {"draw", "pose_control", "depth_control", "identity"}),
])
def test_what_a_job_needs_follows_what_it_sends(changes, wanted):
    assert needs(validate_job(spec(**changes))) == wanted


def test_the_engine_builds_its_pipelines_through_its_family(make_backend):
    engine = make_backend().engine_for("tiny")
    assert engine.family is families.FAMILIES["sdxl"]
    pipe = engine.pipeline("inpaint", ["controlnet_openpose"])
    assert type(pipe).__name__ == "StableDiffusionXLControlNetInpaintPipeline"
    assert pipe.unet is engine.base().unet  # one set of weights for every variant
    assert {p.dtype for p in pipe.unet.parameters()} == {engine.dtype}


@pytest.mark.parametrize("name, cards, fp8", [
    ("sdxl", ["model_offload", "model_offload", "gpu"], ["model_offload", "gpu", "gpu"]),
    ("sdxl-union", ["model_offload", "gpu", "gpu"], ["gpu", "gpu", "gpu"]),  # one ControlNet fewer: 2.5 GB
    ("flux2-klein", ["model_offload", "model_offload", "gpu"], ["model_offload", "gpu", "gpu"]),
    ("qwen-edit", ["group_offload"] * 3, ["group_offload"] * 3),
])
def test_the_doctor_says_what_each_card_size_gets(name, cards, fp8, tmp_path):
    """12, 16 and 24 GB cards, with the weights as published and stored in float8."""
    from characterforge_addon.backend.models import models
    report = models.doctor(profiles.load_profile(name), str(tmp_path))
    assert list(report["cards"]["native"].values()) == cards and list(report["cards"]["fp8"].values()) == fp8
    assert report["family"] == profiles.load_profile(name).family
    assert f"family {report['family']}: 12 GB card:" in models.format_doctor(report)
