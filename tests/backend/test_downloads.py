"""Model downloads against a local server that speaks the Hugging Face hub's protocol: only
the files the loader reads are fetched (and the engine then loads them), progress, a cancel
resumed where it stopped, gated repos, full disks, licences; FaceID's pickle arrives as
safetensors."""

import fnmatch
import io
import json
import os
import resource
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from characterforge_addon.backend.models import models, profiles
from characterforge_addon.backend.families import FAMILIES
from hub_server import Hub

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROFILE = """name = "hubtest"
family = "sdxl"
gpu_dtype = "float32"
[models.base]
repo = "cf/sdxl-base"
variant = "fp16"
size = "7 GB"
licence = "CreativeML Open RAIL++-M"
[models.vae]
repo = "cf/vae"
[models.controlnet_openpose]
repo = "cf/openpose"
[models.image_encoder]
repo = "cf/ip-adapter"
subfolder = "models/image_encoder"
[models.ip_adapter_plus_face]
repo = "cf/ip-adapter"
subfolder = "sdxl_models"
weight = "ip-adapter-plus-face_sdxl_vit-h.safetensors"
[models.ip_adapter_faceid]
repo = "cf/faceid"
weight = "ip-adapter-faceid_sdxl.bin"
licence = "non-commercial research use (insightface)"
[models.insightface]
folder = "{faces}"
licence = "non-commercial research use only"
"""
JUNK = b"x" * 5000  # copies the loader never reads: fp32 twins, ONNX, pickles


def _files(folder, prefix=""):
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            out[prefix + os.path.relpath(path, folder).replace(os.sep, "/")] = open(path, "rb").read()
    return out


@pytest.fixture(scope="module")
def repos(models_dir):
    from characterforge_addon.backend import tiny
    t = tiny.folder_in(models_dir)
    base = {}
    for path, data in _files(os.path.join(t, "base")).items():
        if path.endswith(".safetensors"):  # the hub repo has the fp16 variant and the plain copy
            base[path.replace(".safetensors", ".fp16.safetensors")] = data
            base[path] = JUNK
        else:
            base[path] = data
    base.update({"unet/model.onnx": JUNK, "vae_decoder/model.onnx": JUNK, "openvino/unet.bin": JUNK})
    faceid = io.BytesIO()
    torch.save(load_file(os.path.join(t, "ip_adapter_faceid.safetensors")), faceid)
    ip = _files(os.path.join(t, "image_encoder"), "models/image_encoder/")
    ip.update({"models/image_encoder/pytorch_model.bin": JUNK, "sdxl_models/ip-adapter_sdxl.safetensors": JUNK,
               "sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors":
                   open(os.path.join(t, "ip_adapter_plus_face.safetensors"), "rb").read()})
    return {"cf/sdxl-base": base,
            "cf/vae": dict(_files(os.path.join(t, "base", "vae")), **{"diffusion_pytorch_model.bin": JUNK,
                                                                        "sdxl_vae.safetensors": JUNK}),
            "cf/openpose": dict(_files(os.path.join(t, "controlnet_openpose")),
                                **{"diffusion_pytorch_model_twins.safetensors": JUNK}),
            "cf/ip-adapter": ip,
            "cf/faceid": {"ip-adapter-faceid_sdxl.bin": faceid.getvalue(), "ip-adapter-faceid_sd15.bin": JUNK}}


@pytest.fixture
def profile_path(tmp_path):
    path = tmp_path / "hubtest.toml"
    path.write_text(PROFILE.format(faces=tmp_path / "no-faces"))
    return str(path)


def download(hub, cache, *args, limit_bytes=None, wait=True):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(cache), PYTHONPATH=ROOT, HF_HUB_DISABLE_XET="1")

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    proc = subprocess.Popen([sys.executable, "-m", "characterforge_addon.backend", "download", "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=limit if limit_bytes else None)
    if not wait:
        return proc
    out, err = proc.communicate(timeout=300)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return proc.returncode, events, err


def test_only_the_files_the_loader_reads_arrive_and_the_engine_loads_them(repos, profile_path, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    with Hub(repos) as hub:
        code, events, err = download(hub, cache, "--profile", profile_path, "--role", "image_encoder", "--role",
                                     "ip_adapter_plus_face", "--role", "ip_adapter_faceid", "--accept-non-commercial")
    assert code == 0, err
    fetched = set(hub.fetched)
    assert not any(repos[r][p] is JUNK for r in repos for p in fetched if p in repos[r])
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in fetched and "model_index.json" in fetched
    assert "vae/diffusion_pytorch_model.fp16.safetensors" not in fetched  # the profile's own VAE replaces it
    plan = events[0]
    assert plan["event"] == "plan" and plan["to_fetch"] == plan["total"] > 0
    assert events[-1] == {"event": "done", "total": plan["total"]}
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[-1]["done"] == progress[-1]["total"] == plan["total"]
    assert all(a["done"] <= b["done"] for a, b in zip(progress, progress[1:]))

    monkeypatch.setattr(models, "hf_cache_dir", lambda: str(cache))
    profile = profiles.load_profile(profile_path)
    faceid = models.check(profile.models["ip_adapter_faceid"], str(tmp_path))
    assert faceid.endswith("ip-adapter-faceid_sdxl.safetensors")  # converted on arrival, weights only
    from characterforge_addon.backend.engine.pipelines import Engine
    engine = Engine(profile, str(tmp_path / "models"))
    pipe = engine.pipeline("txt2img", ["controlnet_openpose"])
    engine.ip_adapter()
    assert engine.adapters.faceid
    out = pipe("a knight", image=[torch.zeros(1, 3, 64, 64)], num_inference_steps=1, width=64, height=64,
               ip_adapter_image_embeds=engine.adapters.kwargs(pipe, {"guidance": 1.0, "identity": {"scale": 0.5}},
                                                              [], None)["ip_adapter_image_embeds"],
               guidance_scale=1.0, output_type="np")
    assert out.images.shape == (1, 64, 64, 3)

    with Hub(repos) as again:  # everything cached: nothing is fetched twice
        code, events, _ = download(again, cache, "--profile", profile_path)
    assert code == 0 and events[0]["to_fetch"] == 0 and again.fetched == []


def test_a_cancelled_download_resumes_where_it_stopped(repos, profile_path, tmp_path):
    """huggingface_hub writes 10 MB at a time: a 24 MB file held after 15 MB leaves 10 MB behind."""
    cache = tmp_path / "hub"
    unet = "unet/diffusion_pytorch_model.fp16.safetensors"
    big = dict(repos, **{"cf/sdxl-base": dict(repos["cf/sdxl-base"], **{unet: os.urandom(24 * 2**20)})})
    with Hub(big, stall=(unet, 15 * 2**20)) as hub:
        proc = download(hub, cache, "--profile", profile_path, wait=False)
        blobs = cache / "models--cf--sdxl-base" / "blobs"
        deadline = time.monotonic() + 120
        while not (blobs.exists() and any(f.name.endswith(".partial") and f.stat().st_size >= 10 * 2**20
                                          for f in blobs.iterdir())):
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        proc.terminate()  # the panel's Cancel
        proc.wait(timeout=30)
    with Hub(big) as hub:
        code, events, err = download(hub, cache, "--profile", profile_path)
    assert code == 0, err
    assert (unet, 10 * 2**20) in hub.ranges  # continued from the bytes it had, not from zero
    assert events[-1]["event"] == "done"
    blob = [f for f in blobs.iterdir() if f.stat().st_size == 24 * 2**20]
    assert len(blob) == 1 and blob[0].read_bytes() == big["cf/sdxl-base"][unet]


def test_a_gated_repo_says_what_to_do_on_the_website_and_where_the_token_goes(repos, profile_path, tmp_path):
    with Hub(repos, gated=("cf/openpose",)) as hub:
        code, events, _ = download(hub, tmp_path / "hub", "--profile", profile_path)
    assert code == 2
    message = events[-1]["message"]
    assert "cf/openpose is gated" in message and "accept" in message and "hf auth login" in message
    assert "HF_TOKEN" in message and "https://huggingface.co/cf/openpose" in message


def test_not_enough_disk_is_refused_before_any_byte(repos, profile_path, tmp_path):
    huge = {"unet/diffusion_pytorch_model.fp16.safetensors": 2**50}
    with Hub(repos, listed_sizes=huge) as hub:
        code, events, _ = download(hub, tmp_path / "hub", "--profile", profile_path)
    assert code == 2 and "not enough disk space" in events[-1]["message"] and "HF_HOME" in events[-1]["message"]
    assert hub.fetched == []


def test_a_disk_that_fills_up_midway_fails_clearly_and_resumes_later(repos, profile_path, tmp_path):
    cache = tmp_path / "hub"
    with Hub(repos) as hub:
        code, events, _ = download(hub, cache, "--profile", profile_path, limit_bytes=20_000)
    assert code == 2
    message = events[-1]["message"]
    assert "could not save the download" in message and "File too large" in message and "again to resume" in message
    with Hub(repos) as hub:
        code, events, err = download(hub, cache, "--profile", profile_path)
    assert code == 0, err


def test_licences_and_roles_are_checked_before_downloading(repos, profile_path, tmp_path):
    with Hub(repos) as hub:
        code, events, _ = download(hub, tmp_path / "hub", "--profile", profile_path, "--role", "ip_adapter_faceid")
        assert code == 2 and "non-commercial" in events[-1]["message"] and "--accept-non-commercial" in events[-1]["message"]
        code, events, _ = download(hub, tmp_path / "hub", "--profile", profile_path, "--role", "upscaler")
        assert code == 2 and "has no role upscaler" in events[-1]["message"]
        code, events, _ = download(hub, tmp_path / "hub", "--profile", profile_path, "--role", "insightface")
        assert code == 2 and "not come from the Hugging Face hub" in events[-1]["message"]
        assert "buffalo_l" in events[-1]["message"]
        assert hub.fetched == []


@pytest.mark.parametrize("name", ["sdxl", "sdxl-union", "sd15", "qwen-edit", "flux2-klein"])
def test_builtin_profiles_download_named_files_never_a_whole_repo(name):
    profile = profiles.load_profile(name)
    for role, source in profile.models.items():
        files = source.files
        if source.kind != "repo":
            assert files is None
            continue
        assert files.include and all(p not in ("*", "**", "*.safetensors") for p in files.include)
        assert not any(p.endswith((".onnx", ".bin", ".xml")) for p in files.include if "faceid" not in p)
        if source.variant:
            assert all(f".{source.variant}" in p for p in files.include if p.endswith(".safetensors"))
        assert files.hf_command().startswith(f"hf download {source.location} --include ")
        # a repo's other weights are not fetched (the Union repo's ProMax copy: another 2.5 GB)
        assert not any(fnmatch.fnmatch("diffusion_pytorch_model_promax.safetensors", p) for p in files.include)
    base = profile.models["base"].files.include
    vae_in_base = any(p.startswith("vae/") for p in base)
    assert vae_in_base == ("vae" not in profile.models)
    assert set(FAMILIES[profile.family].modules) - {"vae"} <= {p.split("/")[0] for p in base}
