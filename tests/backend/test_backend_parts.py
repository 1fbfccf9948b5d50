"""Recovery, models and profiles, the NaN guard, dtypes and start-up rules."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from characterforge_addon.backend.engine import pipelines
from characterforge_addon.backend.models import models, profiles
from characterforge_addon.backend.serving import server
from characterforge_addon.core.errors import UserError
from conftest import png_b64, spec, wait

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_restart_recovers_interrupted_and_pending_jobs(make_backend, tmp_path):
    first = make_backend()  # never started: as if it crashed before running anything
    client, h = TestClient(first.app), {"x-characterforge-token": first.token}
    ids = [client.post("/jobs", json=spec(seed=s), headers=h).json()["id"] for s in (1, 2, 3)]
    first.store.start(ids[0], 2)  # it was running when the process died
    first.store.close()
    first._claim.release()  # the process died: the OS frees its lock on the data folder
    second = make_backend(tmp_path / "data")
    second.start()
    client = TestClient(second.app)
    assert client.get("/health", headers=h).status_code == 200  # same token file
    statuses = [wait(client, h, i) for i in ids]
    assert [s["status"] for s in statuses] == ["completed"] * 3
    assert statuses[0]["attempts"] == 2 and statuses[1]["attempts"] == 1
    results = os.listdir(tmp_path / "data" / "results")
    assert sorted(results) == sorted(ids)  # one folder per job, nothing duplicated
    second.stop()
    third = make_backend(tmp_path / "data")
    third.start()
    assert TestClient(third.app).get(f"/jobs/{ids[2]}/results/result", headers=h).status_code == 200


def test_token_file_is_private_and_reused(tmp_path):
    token, path = server.load_or_make_token(str(tmp_path))
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert server.load_or_make_token(str(tmp_path))[0] == token
    assert server.load_or_make_token(str(tmp_path), "explicit") == ("explicit", None)


def test_public_bind_without_token_refuses_to_start(tmp_path):
    with pytest.raises(UserError, match="without an explicit --token"):
        server.serve("0.0.0.0", 7999, str(tmp_path))
    run = subprocess.run([sys.executable, "-m", "characterforge_addon.backend", "serve", "--host", "0.0.0.0",
                          "--data", str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 2 and "--token" in run.stderr


def test_builtin_profiles_parse_and_name_their_models():
    sdxl = profiles.load_profile("sdxl")
    assert sdxl.models["base"].location == "stabilityai/stable-diffusion-xl-base-1.0"
    assert sdxl.models["vae"].location == "madebyollin/sdxl-vae-fp16-fix"
    assert all(s.size and s.licence for s in sdxl.models.values())
    assert profiles.load_profile("sd15").family == "sd15"
    tiny = profiles.load_profile("tiny")
    assert tiny.produces_noise and "noise" in tiny.description


@pytest.mark.parametrize("text,message", [
    ("name = ", "not valid TOML"),
    ("family = 'sdxl'", "missing name"),
    ("name = 'x'\nfamily = 'flux'", "not supported"),
    ("name = 'x'\n[models.base]\nrepo = 'a/b'\n[models.lora]\nrepo = 'c'", "unknown role"),
    ("name = 'x'\n[models.base]\nrepo = 'a/b'", "no model for controlnet_openpose"),
    ("name = 'x'\n[models.base]\nrepo = 'a'\nfile = 'b'\n[models.controlnet_openpose]\nrepo='c'", "exactly one"),
])
def test_bad_profiles(text, message):
    with pytest.raises(UserError, match=message):
        profiles.parse_profile(text, "p.toml")


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(UserError, match="known profiles: .*sdxl.*tiny"):
        profiles.load_profile("nope")


def test_doctor_names_missing_files_where_it_looked_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(models, "hf_cache_dir", lambda: str(tmp_path / "hub"))
    report = models.doctor(profiles.load_profile("sdxl"), str(tmp_path / "models"))
    assert not report["ready"] and report["device"]["device"] in ("cpu", "cuda")
    base = next(r for r in report["roles"] if r["role"] == "base")
    assert base["status"] == "missing" and "Download Models" in base["fix"]
    assert "hf download stabilityai/stable-diffusion-xl-base-1.0 --include model_index.json" in base["fix"]
    assert "'unet/diffusion_pytorch_model.fp16.safetensors'" not in base["fix"]  # plain names need no quotes
    assert "--include unet/diffusion_pytorch_model.fp16.safetensors" in base["fix"]
    assert base["looked_in"].endswith("models--stabilityai--stable-diffusion-xl-base-1.0")
    text = models.format_doctor(report)
    assert "MISSING" in text and "not ready" in text


def test_doctor_in_the_cache_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "hf_cache_dir", lambda: str(tmp_path))
    snap = tmp_path / "models--a--b" / "snapshots" / "123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    source = profiles.Source("controlnet_openpose", "repo", "a/b")
    with pytest.raises(models.ModelMissing, match="no weight files"):
        models.check(source, str(tmp_path))
    (snap / "diffusion_pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(models.ModelMissing, match="only pickle weights.*convert"):
        models.check(source, str(tmp_path))
    (snap / "diffusion_pytorch_model.safetensors").write_bytes(b"x")
    assert models.check(source, str(tmp_path)) == str(snap)


def test_pickle_files_are_refused_and_convert_makes_safetensors(tmp_path):
    ckpt = tmp_path / "adapter.bin"
    torch.save({"image_proj": {"w": torch.ones(2, 2)}, "ip_adapter": {"1.to_k_ip.weight": torch.zeros(3)}}, ckpt)
    source = profiles.Source("base", "file", str(ckpt))
    with pytest.raises(models.ModelMissing, match="pickle file.*convert it once"):
        models.check(source, str(tmp_path))
    run = subprocess.run([sys.executable, "-m", "characterforge_addon.backend", "convert", str(ckpt)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    from safetensors.torch import load_file
    tensors = load_file(str(tmp_path / "adapter.safetensors"))
    assert set(tensors) == {"image_proj.w", "ip_adapter.1.to_k_ip.weight"}
    assert models.check(profiles.Source("base", "file", str(tmp_path / "adapter.safetensors")), "") == \
        str(tmp_path / "adapter.safetensors")


def test_doctor_command_exit_codes(tmp_path):
    env = dict(os.environ, HF_HUB_CACHE=str(tmp_path / "hub"))
    run = subprocess.run([sys.executable, "-m", "characterforge_addon.backend", "doctor", "--data", str(tmp_path)],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert run.returncode == 3 and "MISSING" in run.stdout and "hf download" in run.stdout


@pytest.fixture(scope="module")
def engine(models_dir):
    return pipelines.Engine(profiles.load_profile("tiny"), models_dir)


def test_every_module_shares_one_dtype(engine):
    pipe = engine.controlnet_pipeline(["controlnet_openpose", "controlnet_depth"])
    pipelines.check_one_dtype(pipe)
    pipe.text_encoder.to(torch.float16)
    try:
        with pytest.raises(pipelines.GenerationError, match="mixes dtypes"):
            pipelines.check_one_dtype(pipe)
    finally:
        pipe.text_encoder.to(torch.float32)


def test_variants_share_weights_with_the_base(engine):
    base = engine.base()
    variants = [engine.pipeline(mode, roles) for mode in ("txt2img", "img2img", "inpaint")
                for roles in ((), ("controlnet_openpose",), ("controlnet_openpose", "controlnet_depth"))]
    assert {type(v).__name__ for v in variants} >= {"StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLInpaintPipeline",
                                                     "StableDiffusionXLControlNetInpaintPipeline"}
    assert all(v.unet is base.unet and v.vae is base.vae and v.text_encoder_2 is base.text_encoder_2 for v in variants)
    assert engine.pipeline("img2img") is engine.pipeline("img2img")  # built once


def test_img2img_and_inpaint_variants_run(engine):
    from PIL import Image
    img = Image.new("RGB", (64, 64), (90, 120, 200))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 16, 48, 48))
    out = engine.pipeline("img2img")("a knight", image=img, strength=0.5, num_inference_steps=2, output_type="np")
    assert out.images.shape == (1, 64, 64, 3)
    out = engine.pipeline("inpaint")("a knight", image=img, mask_image=mask, num_inference_steps=2, height=64,
                                     width=64, output_type="np")
    assert out.images.shape == (1, 64, 64, 3)


def latents(engine):
    torch.manual_seed(0)
    return torch.randn(1, 4, 8, 8)


def test_nan_decode_is_retried_in_float32(engine):
    pipe = engine.base()
    pipe.vae.to(torch.bfloat16)
    calls = []

    def poison(module, inputs, output):
        calls.append(output.dtype)
        if output.dtype != torch.float32:
            return output * float("nan")

    handle = pipe.vae.decoder.register_forward_hook(poison)
    try:
        images = pipelines.decode_checked(pipe, latents(engine), engine.family.decoder(pipe, {}))
    finally:
        handle.remove()
        pipe.vae.to(torch.float32)
    assert calls == [torch.bfloat16, torch.float32]
    assert images[0].dtype == np.uint8 and images[0].any()
    assert pipe.vae.dtype == torch.float32


def test_persistent_nan_fails_with_an_explanation_not_a_black_png(engine):
    pipe = engine.base()
    handle = pipe.vae.decoder.register_forward_hook(lambda m, i, o: o * float("nan"))
    try:
        with pytest.raises(pipelines.GenerationError, match="NaN.*sdxl-vae-fp16-fix"):
            pipelines.decode_checked(pipe, latents(engine), engine.family.decoder(pipe, {}))
    finally:
        handle.remove()


def test_out_of_memory_retries_once_with_a_lighter_mode(engine, monkeypatch):
    """As on an NVIDIA card: the engine's device is CUDA, the memory figure is the card's."""
    monkeypatch.setattr(engine, "device", "cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda: (1 * 2**30, 12 * 2**30))
    calls = []

    def run():
        calls.append(engine.memory)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("simulated")
        return "ok"

    engine.memory = "gpu"
    try:
        assert engine._with_oom_retry(run) == "ok"
        assert calls == ["gpu", "model_offload"] and engine.vae_tiling
        engine.memory = "gpu"
        with pytest.raises(pipelines.GenerationError, match="out of CUDA memory twice.*1.0 of 12.0 GB.*--memory"):
            engine._with_oom_retry(lambda: (_ for _ in ()).throw(torch.OutOfMemoryError("again")))
    finally:
        engine.memory, engine.vae_tiling = "cpu", False


def test_a_failed_job_says_why_and_the_server_keeps_serving(make_backend):
    backend = make_backend()
    backend.start()
    client, h = TestClient(backend.app), {"x-characterforge-token": backend.token}
    engine = backend.engine_for("tiny")
    handle = engine.base().vae.decoder.register_forward_hook(lambda m, i, o: o * float("nan"))
    try:
        status = wait(client, h, client.post("/jobs", json=spec(), headers=h).json()["id"])
    finally:
        handle.remove()
    assert status["status"] == "failed" and "NaN" in status["error"]["message"] and status["results"] == []
    assert wait(client, h, client.post("/jobs", json=spec(), headers=h).json()["id"])["status"] == "completed"


def test_a_single_file_checkpoint_loads_and_generates_like_the_folder(models_dir, tmp_path):
    """A base model as one original-layout .safetensors file (as from model sites)."""
    from diffusers import StableDiffusionXLPipeline

    import ldm_export
    from characterforge_addon.backend import tiny
    folder = os.path.join(tiny.folder_in(models_dir), "base")
    checkpoint = tmp_path / "my_model.safetensors"
    ldm_export.save_sdxl_single_file(StableDiffusionXLPipeline.from_pretrained(folder, local_files_only=True), str(checkpoint))
    # float32 like the tiny profile (a float16 profile runs in bfloat16 on a CPU that has it)
    text = (f'name = "mine"\ngpu_dtype = "float32"\n[models.base]\nfile = "{checkpoint}"\nconfig = "{folder}"\n'
            '[models.controlnet_openpose]\ntiny = "controlnet_openpose"\n')
    (tmp_path / "mine.toml").write_text(text)
    mine = pipelines.Engine(profiles.load_profile(str(tmp_path / "mine.toml")), models_dir)
    ref = pipelines.Engine(profiles.load_profile("tiny"), models_dir)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        a, b = getattr(ref.base(), name).state_dict(), getattr(mine.base(), name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    import base64

    from characterforge_addon.core.spec.job_spec import validate_job
    job = validate_job(spec(seed=4))
    pngs = {"openpose": base64.b64decode(png_b64())}
    never = __import__("threading").Event()
    same = [e.posed_character(job, pngs, lambda *a: None, never)[0] for e in (ref, mine)]
    assert np.abs(same[0].astype(int) - same[1]).max() <= 2  # the same weights: equal up to float rounding
    report = models.doctor(mine.profile, models_dir)
    assert report["ready"] and report["roles"][0]["path"] == str(checkpoint)


def test_native_size_comes_from_the_profile_or_its_family():
    from characterforge_addon.backend.models import profiles
    from characterforge_addon.core.errors import UserError
    assert [profiles.load_profile(n).native_size for n in ("sdxl", "sd15", "tiny")] == [1024, 512, 256]
    base = 'name = "x"\nfamily = "sdxl"\n[models.base]\nrepo = "a/b"\n[models.controlnet_openpose]\nrepo = "c/d"\n'
    assert profiles.parse_profile(base + "").native_size == 1024
    with pytest.raises(UserError, match="native_size"):
        profiles.parse_profile('native_size = 100\n' + base)
