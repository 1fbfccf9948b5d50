"""The fast path's speed-ups on the tiny profile: each exact one gives the same pixels as
without it, and does less work (counted, never timed: figures are in BENCHMARKS.md)."""

import base64
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import completed_job, image_of, png_b64, spec


def engine(models_dir, without=(), also=()):
    from characterforge_addon.backend.engine import pipelines, speedups
    from characterforge_addon.backend.models import profiles
    return pipelines.Engine(profiles.load_profile("tiny"), models_dir, speedups=speedups.chosen(without, also))


def posed(engine, controls):
    from characterforge_addon.core.spec.job_spec import validate_job
    never = type("E", (), {"is_set": staticmethod(lambda: False)})()
    job = validate_job(spec(steps=4, controls=controls))
    pngs = {name: base64.b64decode(c["image"]) for name, c in job["controls"].items()}
    calls = []
    for role in ("controlnet_openpose", "controlnet_depth"):
        engine.controlnet(role).register_forward_hook(lambda module, args, out, role=role: calls.append(role))
    return engine.posed_character(job, pngs, lambda *a: None, never)[0], calls


@pytest.mark.parametrize("controls, calls_plain, calls_fast", [
    # the pose for the first half, depth for the second: each ControlNet runs 2 of 4 steps
    ({"openpose": {"image": png_b64(color=(255, 255, 255)), "end": 0.5},
      "depth": {"image": png_b64(color=(90, 90, 90)), "start": 0.5}}, 8, 4),
    # the pose alone, ending half way: the last steps run the UNet with no residuals at all
    ({"openpose": {"image": png_b64(color=(255, 255, 255)), "end": 0.5}}, 4, 2),
])
def test_controlnets_outside_their_range_do_no_work_and_change_no_pixel(models_dir, controls, calls_plain, calls_fast):
    plain, plain_calls = posed(engine(models_dir, without=("skip_idle_controlnets",)), controls)
    fast, fast_calls = posed(engine(models_dir), controls)
    assert len(plain_calls) == calls_plain and len(fast_calls) == calls_fast
    assert np.array_equal(plain, fast)


def test_an_unknown_speed_up_is_refused_naming_them_all():
    from characterforge_addon.backend.engine import speedups
    from characterforge_addon.core.errors import UserError
    with pytest.raises(UserError, match="no such speed-up; they are skip_idle_controlnets"):
        speedups.chosen(["skip_controlnets"])


def test_a_shots_hands_are_redrawn_in_one_batch_at_the_size_they_need(models_dir):
    """Three hands: one UNet call a step for all (CFG doubles it) at half the native size,
    against one call per hand at the native size; outside the masks and the hands nothing
    changes either way."""
    from characterforge_addon.backend.jobs import shot
    from characterforge_addon.core.spec.job_spec import validate_job
    from test_shot_job import assert_only_characters_and_hands_changed, control_pngs, shot_job
    progress = type("P", (), {"stage": lambda self, name: None, "step": staticmethod(lambda *a: None)})()
    never = type("E", (), {"is_set": staticmethod(lambda: False)})()
    job = validate_job(shot_job(hands={"boxes": [[20, 20, 36, 36], [88, 24, 100, 36], [90, 40, 104, 54]],
                                       "strength": 0.5}))

    def run(without):
        e = engine(models_dir, without)
        shapes = []
        e.base().unet.register_forward_hook(lambda m, args, out: shapes.append(tuple(args[0].shape)))
        (_, pixels, record), = shot.run(e, job, control_pngs(job), progress, never, None, None)
        assert len(record["hands"]["redrawn"]) == 3
        assert_only_characters_and_hands_changed(pixels, record)
        return shapes

    one_by_one, batched = run(("batched_hands",)), run(())
    native = 256 // 8  # the tiny profile's native size, in latents
    assert one_by_one[-3:] == [(2, 4, native, native)] * 3  # one step per hand at strength 0.5 of 2 steps
    assert batched[-1] == (6, 4, native // 2, native // 2) and len(batched) == len(one_by_one) - 2


def test_previews_are_decoded_by_the_tiny_autoencoder_else_the_linear_map(models_dir, tmp_path):
    import io

    import torch
    from PIL import Image

    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.models import profiles
    latents = torch.randn(1, 4, 16, 32, generator=torch.Generator().manual_seed(0))

    def preview_of(engine):
        return Image.open(io.BytesIO(engine.preview_png(latents)))
    assert preview_of(engine(models_dir)).size == (256, 128)  # decoded: 8 pixels per latent
    with open(os.path.join(profiles.BUILTIN_DIR, "tiny.toml")) as f:
        text = f.read()
    for name, role in (("plain", ""), ("broken", '[models.preview_decoder]\nfolder = "/nowhere/taesdxl"\n')):
        path = tmp_path / f"{name}.toml"
        path.write_text(text.replace('name = "tiny"', f'name = "{name}"').split("[models.preview_decoder]")[0] + role)
        e = pipelines.Engine(profiles.load_profile(str(path)), models_dir)
        assert preview_of(e).size == (32, 16)  # the linear map: one pixel per latent
    assert "previews use the linear map" in e.preview_note and "/nowhere/taesdxl" in e.preview_note


def test_channels_last_keeps_the_picture_within_float_rounding(models_dir):
    controls = {"openpose": {"image": png_b64(color=(255, 255, 255))}, "depth": {"image": png_b64(color=(90,) * 3)}}
    plain, _ = posed(engine(models_dir, without=("channels_last",)), controls)
    fast_engine = engine(models_dir)
    fast, _ = posed(fast_engine, controls)
    import torch
    assert fast_engine.base().unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert fast_engine.controlnet("controlnet_depth").conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert np.abs(fast.astype(int) - plain).max() <= 2


def test_qwen_edit_previews_unpack_its_latents_into_the_wan_colour_map(models_dir):
    """Real-shaped latents (16 channels, packed in 2x2 patches) come back unpacked and coloured;
    the tiny model's 4 channels have no colour map, so its jobs show none."""
    import io

    import torch
    from PIL import Image

    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.models import profiles
    e = pipelines.Engine(profiles.load_profile("tiny-qwen-edit"), models_dir)
    pipe = e.base()
    latents = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(0))
    packed = pipe._pack_latents(latents, 1, 16, 8, 8)
    size = {"height": 8 * pipe.vae_scale_factor, "width": 8 * pipe.vae_scale_factor}  # 8x8 latents
    unpacked = e.family.preview_latents(pipe, packed, size)
    assert torch.equal(unpacked, latents)
    assert Image.open(io.BytesIO(e.preview_png(unpacked))).size == (8, 8)
    tiny = e.family.preview_latents(pipe, pipe._pack_latents(latents[:, :4], 1, 4, 8, 8), size)
    assert e.preview_png(tiny) is None


def test_compiled_blocks_give_the_same_picture_and_a_second_start_reuses_the_compile_cache(make_backend, models_dir,
                                                                                           tmp_path):
    """`--with compile` on this CPU (on by default only on CUDA GPUs): the picture is the
    uncompiled one within float rounding; the UNet's transformer blocks and the VAE decoder's up
    blocks are compiled; the first start compiles into <data>/compile_cache,
    the second (a new process) finds every compiled graph there."""
    plain = make_backend()
    assert "compile" not in plain.speedups  # no CUDA here: off unless asked for
    client, headers, status = completed_job(plain, spec(steps=2, width=64, height=64))
    expected = image_of(client.get(f"/jobs/{status['id']}/results/{status['results'][0]}", headers=headers))

    data = tmp_path / "compiled"
    data.mkdir()
    (data / "models").symlink_to(models_dir)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
    script = os.path.join(os.path.dirname(__file__), "compile_check.py")

    def start():
        out = subprocess.run([sys.executable, script, str(data)], capture_output=True, text=True, env=env, timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    cold, warm = start(), start()
    assert "compile" in cold["speedups"] and cold["cache"] == str(data / "compile_cache")
    assert cold["compiled"] == {"unet": 12, "vae": 4}  # its transformer blocks; the VAE decoder's up blocks
    assert cold["misses"] >= 1 and warm["misses"] == 0 and warm["hits"] >= cold["misses"]
    for run in (cold, warm):
        picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(run["png"]))))
        assert np.abs(picture.astype(int) - expected.astype(int)).max() <= 2


def processors_seen(model):
    """The processor classes `model`'s attentions run with, call by call (a pre-hook on each)."""
    from diffusers.models.attention_processor import Attention
    seen = []
    for attn in model.modules():
        if isinstance(attn, Attention):
            attn.register_forward_pre_hook(lambda m, args, name=attn.is_cross_attention:
                                           seen.append((name, type(m.processor).__name__)))
    return seen


def storage_bytes(module):
    """Bytes of the distinct storages behind `module`'s parameters (views counted once)."""
    storages = {p.untyped_storage().data_ptr(): p.untyped_storage().nbytes() for p in module.parameters()}
    return sum(storages.values())


def test_fused_qkv_keeps_the_picture_costs_no_memory_and_hands_back_the_processors(models_dir):
    controls = {"openpose": {"image": png_b64(color=(255, 255, 255))}, "depth": {"image": png_b64(color=(90,) * 3)}}
    plain, _ = posed(engine(models_dir), controls)
    e = engine(models_dir, also=("fused_qkv",))  # on by default only on GPUs
    assert "fused_qkv" not in engine(models_dir).speedups
    unet, net = e.base().unet, e.controlnet("controlnet_depth")
    before = storage_bytes(unet), storage_bytes(net)
    keys = list(unet.state_dict())
    in_unet, in_net = processors_seen(unet), processors_seen(net)
    fast, _ = posed(e, controls)
    assert {p for _, p in in_unet} == {p for _, p in in_net} == {"FusedAttnProcessor2_0"}
    assert (storage_bytes(unet), storage_bytes(net)) == before  # the fused layers are the projections' storage
    assert list(unet.state_dict()) == keys  # and no submodules of the model
    assert {type(p).__name__ for p in unet.attn_processors.values()} == {"AttnProcessor2_0"}  # for the next user
    assert np.abs(fast.astype(int) - plain).max() <= 2


def test_fused_qkv_leaves_an_acting_lora_and_the_identity_adapters_in_charge(make_backend, tmp_path):
    """On one backend, in this order: a plain picture (every attention fused), a draft (its
    LoRA, loaded after the fusing, on every attention projection of the UNet: nothing there
    fused, the unfused picture exactly), reference pictures (the IP-Adapter loaded after the
    fusing: its cross-attentions keep their processor, only the self-attentions are fused)."""
    jobs = [spec(steps=2), spec(steps=2, draft=True),
            spec(steps=2, identity={"images": [png_b64(64, 64, (250, 20, 20))], "scale": 1.0})]

    def run(also):
        backend = make_backend(tmp_path / f"fused{bool(also)}", also=also)
        seen = processors_seen(backend.engine_for("tiny").base().unet)
        pictures = []
        for job in jobs:
            seen.clear()
            client, headers, status = completed_job(backend, job)
            answer = client.get(f"/jobs/{status['id']}/results/{status['results'][0]}", headers=headers)
            pictures.append((image_of(answer), set(seen)))
        return pictures

    (plain, _), (draft, _), (identity, _) = run(())
    (fused_plain, seen_plain), (fused_draft, seen_draft), (fused_identity, seen_identity) = run(("fused_qkv",))
    assert seen_plain == {(False, "FusedAttnProcessor2_0"), (True, "FusedAttnProcessor2_0")}
    assert np.abs(fused_plain.astype(int) - plain).max() <= 2
    assert seen_draft == {(False, "AttnProcessor2_0"), (True, "AttnProcessor2_0")}
    assert np.array_equal(fused_draft, draft)
    assert seen_identity == {(False, "FusedAttnProcessor2_0"), (True, "IPAdapterAttnProcessor2_0")}
    assert np.abs(fused_identity.astype(int) - identity).max() <= 2


def union_engine(models_dir):
    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.models import profiles
    return pipelines.Engine(profiles.load_profile("tiny-union"), models_dir)


def test_a_controlnet_union_profile_steers_by_every_map_in_one_pass_a_step(models_dir):
    """Pose, depth and hand depth through the one ControlNet-Union: one network call a step
    (against one per map), each map in its control mode, and each map matters."""
    from characterforge_addon.core.spec.job_spec import validate_job
    from test_shot_job import b64, pattern
    never = type("E", (), {"is_set": staticmethod(lambda: False)})()
    e = union_engine(models_dir)
    calls = []
    e.controlnet("controlnet_union").register_forward_hook(
        lambda module, args, kwargs, out: calls.append(kwargs["control_type_idx"]), with_kwargs=True)

    def draw(depth_seed):
        controls = {"openpose": {"image": b64(pattern(64, 64, seed=1))},
                    "depth": {"image": b64(pattern(64, 64, seed=depth_seed))},
                    "hand_depth": {"image": png_b64(color=(30, 30, 30)), "strength": 0.5}}
        job = validate_job(spec(profile="tiny-union", steps=3, controls=controls))
        pngs = {name: base64.b64decode(c["image"]) for name, c in job["controls"].items()}
        return e.posed_character(job, pngs, lambda *a: None, never)[0]
    first = draw(2)
    assert calls == [[0, 1, 1]] * 3  # OpenPose, depth, hand depth: one call a step
    assert "controlnet_openpose" not in e._controlnets and "controlnet_depth" not in e._controlnets
    assert np.abs(draw(3).astype(int) - first).mean() > 1.0  # the depth map steers it


def test_a_controlnet_union_profile_makes_a_shot_and_its_hands(make_backend):
    """Inpainting with the Union (characters in place, hands redrawn in a batch from the hand
    depth), nothing changed outside the characters and hands."""
    from test_shot_job import assert_only_characters_and_hands_changed, results, shot_job
    backend = make_backend(profile="tiny-union")
    job = shot_job(profile="tiny-union", hands={"boxes": [[20, 20, 36, 36], [88, 24, 100, 36]], "strength": 0.5})
    (pixels, record), = results(backend, job).values()
    assert len(record["hands"]["redrawn"]) == 2
    assert_only_characters_and_hands_changed(pixels, record)
    assert set(backend.engine_for("tiny-union")._controlnets) == {"controlnet_union"}


def test_controlnet_union_is_refused_for_sd15_and_stands_in_for_the_pose_controlnet():
    from characterforge_addon.backend.models import profiles
    from characterforge_addon.backend.families import capabilities
    from characterforge_addon.core.errors import UserError
    union = '[models.controlnet_union]\nrepo = "xinsir/controlnet-union-sdxl-1.0"\n'
    with pytest.raises(UserError, match="controlnet_union.*is for SDXL profiles"):
        profiles.parse_profile('name = "x"\nfamily = "sd15"\n[models.base]\nrepo = "a/b"\n' + union)
    profile = profiles.parse_profile('name = "x"\nfamily = "sdxl"\n[models.base]\nrepo = "a/b"\n' + union)
    assert {"pose_control", "depth_control"} <= capabilities(profile)
    assert {"pose_control", "depth_control"} <= capabilities(profiles.load_profile("sdxl-union"))
