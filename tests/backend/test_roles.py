"""Every model role a built-in profile names is read by a job: no user downloads a model that
nothing uses. The tiny profile names every role but the ControlNet-Union, which tiny-union names
in place of the two ControlNets; one draft posed character with depth and identity on each
reads them all."""

import pytest

from characterforge_addon.backend.models import models, profiles

from conftest import completed_job, png_b64, spec


def test_every_role_is_read_by_a_job(make_backend, monkeypatch):
    read = set()
    resolve, check = models.resolve_for_loading, models.check

    def resolve_seen(source, *args, **kwargs):
        read.add(source.role)
        return resolve(source, *args, **kwargs)

    def check_seen(source, *args, **kwargs):
        read.add(source.role)
        return check(source, *args, **kwargs)

    monkeypatch.setattr(models, "resolve_for_loading", resolve_seen)
    monkeypatch.setattr(models, "check", check_seen)
    job = spec(identity={"images": [png_b64(64, 64, (250, 250, 250))], "scale": 0.8},
               controls={"openpose": {"image": png_b64()}, "depth": {"image": png_b64()}}, draft=True)
    backend = make_backend()
    completed_job(backend, job)
    # the relight LoRA is tiny-qwen-edit's (test_relight_job reads it)
    assert read == set(profiles.load_profile("tiny").models) == set(profiles.ROLES) - {"controlnet_union",
                                                                                        "relight_lora"}
    read.clear()
    completed_job(backend, dict(job, profile="tiny-union"))
    assert read == set(profiles.load_profile("tiny-union").models) == (
        set(profiles.ROLES) - {"controlnet_openpose", "controlnet_depth", "relight_lora"})


@pytest.mark.parametrize("name", ["sdxl", "sdxl-union", "sd15", "tiny", "tiny-union", "qwen-edit", "tiny-qwen-edit",
                                  "flux2-klein", "tiny-flux2-klein"])
def test_builtin_profiles_name_only_roles_jobs_read(name):
    assert set(profiles.load_profile(name).models) <= set(profiles.ROLES)


def test_a_role_no_job_reads_is_refused():
    with pytest.raises(Exception, match="unknown role.*upscaler"):
        profiles.parse_profile('name = "x"\n[models.base]\nrepo = "a/b"\n[models.controlnet_openpose]\nrepo = "a/c"\n'
                               '[models.upscaler]\nrepo = "a/d"\n')
