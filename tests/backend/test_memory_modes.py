"""Memory modes and weight storage on the real tiny pipelines. Group offload streams layers
onto the "onload" device; here that device is the CPU itself, so the hooks run exactly as on
a GPU (shared modules, ControlNets added later, identity adapters loaded after placement, the
step down after running out of memory) and the pixels must be the same as without them."""

import numpy as np
import pytest
import torch

from conftest import png_b64, spec
from test_shot_job import control_pngs, shot_job

PROGRESS = type("P", (), {"stage": lambda self, name: None, "step": staticmethod(lambda *a: None)})()
NEVER = type("E", (), {"is_set": staticmethod(lambda: False)})()


def shot_pixels(engine):
    """A two-character shot with hands: ControlNet, inpaint and identity-adapter variants."""
    from characterforge_addon.backend.jobs import shot
    from characterforge_addon.core.spec.job_spec import validate_job
    spec = validate_job(shot_job())
    return shot.run(engine, spec, control_pngs(spec), PROGRESS, NEVER, None, None)[0][1]


def engine_in(models_dir, memory="auto", weights="native", profile="tiny"):
    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.models import profiles
    engine = pipelines.Engine(profiles.load_profile(profile), models_dir, weights=weights)
    if memory != "auto":
        engine.memory = memory  # the CPU offers no offloading; the hooks onload to the CPU instead
    return engine


@pytest.fixture(scope="module")
def plain(models_dir):
    return shot_pixels(engine_in(models_dir))


def test_group_offload_gives_the_same_pixels_and_steps_down(models_dir, plain):
    from diffusers.hooks.group_offloading import _is_group_offload_enabled
    engine = engine_in(models_dir, "group_offload")
    assert np.array_equal(shot_pixels(engine), plain)
    nets = [n for pipe in engine._variants.values() if hasattr(pipe, "controlnet")
            for n in getattr(pipe.controlnet, "nets", [pipe.controlnet])]
    assert len({id(n) for n in nets}) == 2 and all(_is_group_offload_enabled(n) for n in nets)  # each hooked, once
    assert engine.adapters.loaded and _is_group_offload_enabled(engine.base().unet)
    engine._lighten()  # what an out-of-memory error does: group hooks off, the next mode (here the CPU's), VAE tiling
    assert not _is_group_offload_enabled(engine.base().unet)
    stepped_down = engine_in(models_dir)
    stepped_down._lighten()
    assert np.array_equal(shot_pixels(engine), shot_pixels(stepped_down))


def test_float8_storage_halves_the_denoiser_and_keeps_the_picture(models_dir, plain):
    from characterforge_addon.backend.engine import pipelines
    engine = engine_in(models_dir, weights="fp8")
    engine.ip_adapter()  # loading adapters casts the UNet back to the compute dtype: stored in float8 again at once
    unet = engine.base().unet
    own = [p for n, p in unet.named_parameters() if "encoder_hid_proj" not in n and "processor" not in n]
    stored = sum(p.numel() * p.element_size() for p in own)  # the UNet's own layers, identity adapters aside
    assert stored < 0.3 * sum(p.numel() for p in own) * 4  # float32 here: float8 is a quarter
    assert {p.dtype for p in own} == {torch.float8_e4m3fn, engine.dtype}  # norms stay as they are
    pixels = shot_pixels(engine)
    pipelines.check_one_dtype(engine.base())
    assert all(p.dtype == engine.dtype for p in engine.base().text_encoder.parameters())  # only the denoiser
    assert not np.array_equal(pixels, plain)  # float8 rounding shows, slightly
    assert np.abs(pixels.astype(int) - plain).mean() < 12, "float8 storage changed the picture, not just its detail"
    assert engine.adapters.loaded  # identity adapters load beside float8 layers, in the compute dtype


@pytest.mark.parametrize("profile", ["tiny-qwen-edit", "tiny-flux2-klein"])
def test_edit_families_stream_layers_and_store_float8(models_dir, profile):
    from characterforge_addon.core.spec.job_spec import validate_job
    job = validate_job(spec(profile=profile, identity={"images": [png_b64(64, 64, (250, 20, 20))]}))
    pngs = dict(control_pngs(job), identity=[__import__("base64").b64decode(i) for i in job["identity"]["images"]])

    def draw(engine):
        return engine.posed_character(job, pngs, lambda *a: None, NEVER)[0]
    plain = draw(engine_in(models_dir, profile=profile))
    assert np.array_equal(draw(engine_in(models_dir, "group_offload", profile=profile)), plain)
    fp8 = engine_in(models_dir, weights="fp8", profile=profile)
    stored = draw(fp8)
    assert torch.float8_e4m3fn in {p.dtype for p in fp8.base().transformer.parameters()}
    assert all(p.dtype == fp8.dtype for p in fp8.base().text_encoder.parameters())
    assert not np.array_equal(stored, plain) and np.abs(stored.astype(int) - plain).mean() < 12


@pytest.mark.parametrize("memory, weights", [("group_offload", "native"), ("auto", "fp8")])
def test_a_draft_lora_loads_into_streamed_and_float8_denoisers(models_dir, memory, weights):
    """The draft LoRA goes into a group-offloaded or float8 UNet (PEFT makes a LoRA float8 like
    the layer it wraps: it must run in the compute dtype), and the final after a draft is the
    final before it."""
    from characterforge_addon.backend.jobs import shot
    from characterforge_addon.core.spec.job_spec import validate_job
    engine = engine_in(models_dir, memory, weights)

    def run(draft):
        job = validate_job(shot_job(draft=draft))
        return shot.run(engine, job, control_pngs(job), PROGRESS, NEVER, None, None)[0][1]
    before = run(False)
    assert not np.array_equal(run(True), before) and engine._draft_lora
    assert np.array_equal(run(False), before)
