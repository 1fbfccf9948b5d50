"""Character LoRA training (issue 16) on the tiny SDXL profile, for real: the loss falls, the LoRA
changes pictures when loaded and none at weight 0, a killed backend resumes from its last
checkpoint to the very weights of an uninterrupted run, the file loads in diffusers in kohya's
layout and in diffusers' own, and every bad input is refused before training starts."""

import base64
import hashlib
import io
import json
import os
import shutil
import signal
import time

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import image_of, png_b64, spec, wait


def picture(i, width=64, height=96):
    """A figure of its own colour on a plain ground: something a LoRA can learn."""
    pixels = np.zeros((height, width, 3), np.uint8) + np.array([210, 90, 40], np.uint8)
    pixels[height // 4:3 * height // 4, width // 3:2 * width // 3] = np.random.default_rng(i).integers(0, 255, 3)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def training(**changes):
    job = {"kind": "train_lora", "profile": "tiny", "name": "mira", "trigger": "mira_knight", "steps": 40,
           "learning_rate": 0.01, "rank": 8, "resolution": 64, "sample_every": 0, "checkpoint_every": 8,
           "images": [{"image": picture(i), "caption": f"mira_knight, full body, view {i}",
                       "mirror_caption": f"mira_knight, full body, mirrored view {i}"} for i in range(6)]}
    job.update(changes)
    return job


def lora_record(path):
    with safe_open(path, "pt") as f:
        return json.loads(f.metadata()["characterforge"]), f.metadata(), list(f.keys())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, models_dir):
    """One finished training on a started backend: (backend, client, headers, status, LoRA path)."""
    from characterforge_addon.backend.serving.server import Backend
    data = tmp_path_factory.mktemp("train")
    (data / "models").symlink_to(models_dir)
    backend = Backend(str(data), "tiny")
    backend.start()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    response = client.post("/jobs", json=training(sample_every=20), headers=headers)
    assert response.status_code == 201, response.json()
    status = wait(client, headers, response.json()["id"], timeout=300)
    assert status["status"] == "completed", status
    path = os.path.join(str(data), "results", status["id"], "mira.safetensors")
    yield backend, client, headers, status, path
    backend.stop()


def test_training_lowers_the_loss_and_writes_a_kohya_lora_with_its_metadata(trained):
    backend, client, headers, status, path = trained
    assert status["results"] == ["sample_00020", "sample_00040", "mira.safetensors"]
    record, meta, keys = lora_record(path)
    assert record["loss_after"] < record["loss_before"] * 0.98, record  # fixed noise, fixed timesteps
    assert [step for step, _ in record["losses"]][-1] == 40
    assert record["pictures"] == 12 and record["rank"] == 8 and record["alpha"] == 8.0
    # kohya's layout and metadata, as A1111 and ComfyUI read them
    assert keys and all(k.startswith("lora_unet_") for k in keys)
    assert {k.rsplit(".", 2)[-2] if k.endswith(".weight") else "alpha" for k in keys} == {"lora_down", "lora_up", "alpha"}
    assert meta["ss_network_dim"] == "8" and meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert meta["modelspec.trigger_phrase"] == "mira_knight"
    assert json.loads(meta["ss_tag_frequency"])["1_mira_knight"]["mira_knight"] == 12
    # the backend keeps it by its SHA-256 and says so
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    kept = client.get(f"/loras/{sha}", headers=headers)
    assert kept.status_code == 200 and kept.json()["record"]["trigger"] == "mira_knight"
    download = client.get(f"/jobs/{status['id']}/results/mira.safetensors", headers=headers)
    assert download.status_code == 200 and hashlib.sha256(download.content).hexdigest() == sha
    sample = client.get(f"/jobs/{status['id']}/results/sample_00040", headers=headers)
    assert json.loads(Image.open(io.BytesIO(sample.content)).text["characterforge"])["lora"]["step"] == 40
    # the shared UNet is as it was: no adapter left in it, no gradients
    unet = backend.engine_for("tiny").base().unet
    assert "in_training" not in (getattr(unet, "peft_config", None) or {})
    assert not any(p.requires_grad for p in unet.parameters())


def _with_lora(sha, weight, trigger="mira_knight"):
    return spec(prompt="a knight", steps=3, identity={"images": [png_b64(64, 64, (120, 30, 200))], "scale": 0.0,
                                                        "faceid_scale": 0.0,
                                                        "lora": {"sha256": sha, "name": "mira", "weight": weight,
                                                                 "trigger": trigger}})


def _picture(client, headers, job, result="result"):
    """(pixels, PNG text chunks) of a completed job's result."""
    response = client.post("/jobs", json=job, headers=headers)
    assert response.status_code == 201, response.json()
    status = wait(client, headers, response.json()["id"], timeout=300)
    assert status["status"] == "completed", status
    png = client.get(f"/jobs/{status['id']}/results/{result}", headers=headers)
    return image_of(png), Image.open(io.BytesIO(png.content)).text


def test_a_lora_changes_the_picture_and_at_weight_0_changes_nothing(trained):
    backend, client, headers, status, path = trained
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    without = spec(prompt="a knight", steps=3, identity={"images": [png_b64(64, 64, (120, 30, 200))], "scale": 0.0,
                                                         "faceid_scale": 0.0})
    plain, _ = _picture(client, headers, without)
    off, _ = _picture(client, headers, _with_lora(sha, 0.0))
    on, text = _picture(client, headers, _with_lora(sha, 1.0))
    assert np.array_equal(plain, off)
    assert np.abs(on.astype(int) - plain.astype(int)).mean() > 1.0
    record = json.loads(text["characterforge"])
    assert record["job"]["identity"]["lora"] == {"sha256": sha, "name": "mira", "weight": 1.0, "trigger": "mira_knight"}
    assert text["parameters"].startswith("mira_knight, a knight <lora:mira:1.0>")  # the trigger word went in front
    assert f'Lora hashes: "mira: {sha[:12]}"' in text["parameters"]
    after, _ = _picture(client, headers, without)  # and off again for the next job
    assert np.array_equal(plain, after)


def test_the_file_loads_in_diffusers_in_kohya_layout_and_in_diffusers_layout(trained, models_dir):
    """Both layouts load with load_lora_weights into a plain pipeline and make the same picture."""
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils import convert_unet_state_dict_to_peft
    from characterforge_addon.backend import tiny
    backend, client, headers, status, path = trained
    pipe = StableDiffusionXLPipeline.from_pretrained(os.path.join(tiny.folder_in(models_dir), "base"))
    pipe.set_progress_bar_config(disable=True)
    kohya = load_file(path)
    # diffusers' own layout: unet.<module>.lora_A/B.weight, alpha folded into the weights
    own = {}
    for key, value in kohya.items():
        if not key.endswith(".lora_down.weight"):
            continue
        module = key[len("lora_unet_"):-len(".lora_down.weight")]
        up = kohya[key.replace("lora_down", "lora_up")]
        scale = float(kohya[key.replace("lora_down.weight", "alpha")]) / value.shape[0]
        name = _module_name(pipe.unet, module)
        own[f"unet.{name}.lora_A.weight"] = value.float()
        own[f"unet.{name}.lora_B.weight"] = up.float() * scale
    assert own and convert_unet_state_dict_to_peft({k[5:]: v for k, v in own.items()})
    pictures = []
    for adapter, source in (("kohya", path), ("diffusers", own)):
        pipe.load_lora_weights(source, adapter_name=adapter)
        pipe.set_adapters([adapter], [1.0])
        out = pipe("mira_knight", num_inference_steps=2, width=64, height=64, output_type="np",
                   generator=torch.Generator("cpu").manual_seed(3)).images[0]
        pictures.append(out)
        pipe.delete_adapters(adapter)
    assert np.abs(pictures[0] - pictures[1]).max() < 2e-3


def _module_name(unet, underscored):
    for name, _ in unet.named_modules():
        if name.replace(".", "_") == underscored:
            return name
    raise AssertionError(underscored)


def test_a_killed_backend_resumes_from_its_last_checkpoint_to_the_same_weights(start_server, tmp_path):
    job = training(steps=40, checkpoint_every=8)
    whole = start_server(data=tmp_path / "uninterrupted")
    whole_id = json.loads(whole.request("POST", "/jobs", job).data)["id"]
    dying = start_server()
    job_id = json.loads(dying.request("POST", "/jobs", job).data)["id"]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        status = json.loads(dying.get(f"/jobs/{job_id}").data)
        if status["status"] == "running" and status["step"] >= 10:
            break
        time.sleep(0.02)
    os.kill(dying.process.pid, signal.SIGKILL)
    dying.process.wait(30)
    assert 10 <= status["step"] < 40, status
    checkpoint = os.path.join(dying.data, "training", job_id, "checkpoint.pt")
    assert torch.load(checkpoint, weights_only=True)["step"] >= 8
    again = start_server(data=dying.data)
    finished = {}
    for server, jid in ((again, job_id), (whole, whole_id)):
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            finished[jid] = json.loads(server.get(f"/jobs/{jid}").data)
            if finished[jid]["status"] in ("completed", "failed"):
                break
            time.sleep(0.2)
        assert finished[jid]["status"] == "completed", finished[jid]
    assert finished[job_id]["attempts"] == 2
    assert lora_record(os.path.join(dying.data, "results", job_id, "mira.safetensors"))[0]["resumed_at"][0] >= 8
    assert not os.path.exists(os.path.join(dying.data, "training", job_id))  # checkpoints go once it is done
    resumed = load_file(os.path.join(dying.data, "results", job_id, "mira.safetensors"))
    uninterrupted = load_file(os.path.join(whole.data, "results", whole_id, "mira.safetensors"))
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)


def _until_step(backend, job_id, step, timeout=120):
    deadline = time.monotonic() + timeout
    while backend.store.get(job_id)["step"] < step and time.monotonic() < deadline:
        time.sleep(0.02)


def test_a_stopped_backend_checkpoints_as_it_stops_and_resumes_at_the_next_start(make_backend, tmp_path):
    first = make_backend(tmp_path / "data")
    first.start()
    client, headers = TestClient(first.app), {"x-characterforge-token": first.token}
    job_id = client.post("/jobs", json=training(steps=30, checkpoint_every=25), headers=headers).json()["id"]
    _until_step(first, job_id, 3)
    first.stop()  # between two checkpoints: it writes one as it stops
    saved = torch.load(os.path.join(first.data_dir, "training", job_id, "checkpoint.pt"), weights_only=True)
    assert 3 <= saved["step"] < 25
    second = make_backend(tmp_path / "data")
    assert second.store.get(job_id)["status"] == "running"  # not canceled: queued again at the start
    second.start()
    client, headers = TestClient(second.app), {"x-characterforge-token": second.token}
    status = wait(client, headers, job_id, timeout=300)
    assert status["status"] == "completed" and status["attempts"] == 2, status
    record, _, _ = lora_record(os.path.join(second.data_dir, "results", job_id, "mira.safetensors"))
    assert record["resumed_at"] == [saved["step"]]


def test_a_checkpoint_resumes_only_the_training_spec_that_made_it(make_backend, tmp_path):
    """A stopped training's checkpoint put beside two trainings: the one with the same spec
    resumes from it, the one whose spec differs by one picture (same settings, same number of
    pictures) starts from step 0."""
    first = make_backend(tmp_path / "first")
    first.start()
    client, headers = TestClient(first.app), {"x-characterforge-token": first.token}
    job = training(steps=12, checkpoint_every=25)
    job_id = client.post("/jobs", json=job, headers=headers).json()["id"]
    _until_step(first, job_id, 3)
    first.stop()  # it checkpoints as it stops
    checkpoint = os.path.join(first.data_dir, "training", job_id, "checkpoint.pt")
    step = torch.load(checkpoint, weights_only=True)["step"]
    assert 3 <= step < 12
    second = make_backend(tmp_path / "second")  # queued before it starts, each with that checkpoint
    client, headers = TestClient(second.app), {"x-characterforge-token": second.token}
    changed = training(steps=12, checkpoint_every=25)
    changed["images"][2] = dict(changed["images"][2], image=picture(99))
    ids = [client.post("/jobs", json=spec, headers=headers).json()["id"] for spec in (job, changed)]
    for queued in ids:
        os.makedirs(os.path.join(second.data_dir, "training", queued))
        shutil.copyfile(checkpoint, os.path.join(second.data_dir, "training", queued, "checkpoint.pt"))
    second.start()
    resumed = []
    for queued in ids:
        status = wait(client, headers, queued, timeout=300)
        assert status["status"] == "completed", status
        record, _, _ = lora_record(os.path.join(second.data_dir, "results", queued, "mira.safetensors"))
        resumed.append(record["resumed_at"])
    assert resumed == [[step], []]


def test_a_canceled_training_leaves_no_lora_and_no_checkpoint(make_backend):
    backend = make_backend()
    backend.start()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    job_id = client.post("/jobs", json=training(steps=400, checkpoint_every=2), headers=headers).json()["id"]
    _until_step(backend, job_id, 5)
    client.post(f"/jobs/{job_id}/cancel", headers=headers)
    status = wait(client, headers, job_id, timeout=60)
    assert status["status"] == "canceled" and status["step"] < 400
    assert not any(r.endswith(".safetensors") for r in status["results"])
    assert not os.path.exists(os.path.join(backend.data_dir, "training", job_id))
    assert not os.listdir(os.path.join(backend.data_dir, "loras"))


# -- refusals before training starts ------------------------------------------------------------

@pytest.mark.parametrize("change, field, words", [
    ({"images": training()["images"][:4]}, "images", "6 or more"),
    ({"trigger": "mira knight"}, "trigger", "one word"),
    ({"trigger": "a"}, "trigger", "one word"),
    ({"resolution": 256}, "images[0].image", "train at resolution 128 or less"),
    ({"images": training()["images"][:5] + [{"image": picture(9, 16, 16), "caption": "mira_knight"}]},
     "images[5].image", "16x16"),
])
def test_bad_trainings_are_refused_before_queueing_with_the_fix(make_backend, change, field, words):
    backend = make_backend()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    response = client.post("/jobs", json=training(**change), headers=headers)
    assert response.status_code == 400, response.json()
    assert response.json()["details"]["field"] == field and words in response.json()["message"] + response.json()["fix"]


def test_too_little_disk_for_the_checkpoints_is_refused(make_backend, monkeypatch):
    import shutil
    from characterforge_addon.backend.jobs import training as training_module
    backend = make_backend()
    monkeypatch.setattr(training_module.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 2**20, 2**20))
    response = TestClient(backend.app).post("/jobs", json=training(rank=64),
                                            headers={"x-characterforge-token": backend.token})
    assert response.status_code == 400 and "MB are free" in response.json()["message"], response.json()


def test_a_profile_without_training_or_weights_in_float8_is_refused(make_backend):
    backend = make_backend()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    edit = client.post("/jobs", json=training(profile="tiny-qwen-edit"), headers=headers).json()
    assert "training a character LoRA" in edit["message"] and "tiny" in edit["fix"]
    backend.stop()
    fp8 = make_backend(weights="fp8")
    answer = TestClient(fp8.app).post("/jobs", json=training(), headers={"x-characterforge-token": fp8.token}).json()
    assert "--weights native" in answer["fix"]


def test_uploads_keep_real_loras_by_their_hash_and_refuse_the_rest(trained, tmp_path):
    backend, client, headers, status, path = trained
    data = open(path, "rb").read()
    sha = hashlib.sha256(data).hexdigest()
    os.unlink(backend.loras.path(sha))
    refused = client.post("/jobs", json=_with_lora(sha, 0.8), headers=headers).json()
    assert refused["details"]["field"] == "identity.lora.sha256" and "PUT /loras" in refused["fix"]
    assert client.put(f"/loras/{'0' * 64}", content=data, headers=headers).status_code == 400  # not its hash
    assert client.put(f"/loras/{hashlib.sha256(b'x').hexdigest()}", content=b"x", headers=headers).status_code == 400
    assert client.put("/loras/..%2Fescape", content=data, headers=headers).status_code in (400, 404)
    assert client.put(f"/loras/{sha}", content=data, headers=headers).status_code == 201
    assert client.post("/jobs", json=_with_lora(sha, 0.8), headers=headers).status_code == 201
    assert not [f for f in os.listdir(backend.loras.folder) if f.startswith(".tmp-")]


def test_a_lora_trained_for_another_family_is_refused(trained):
    backend, client, headers, status, path = trained
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    job = _with_lora(sha, 0.8)
    job["profile"] = "tiny-qwen-edit"
    answer = client.post("/jobs", json=job, headers=headers).json()
    assert answer["details"]["field"] == "profile" and "a character's trained LoRA" in answer["message"]


def test_in_a_shot_a_characters_lora_acts_in_its_own_mask_only(trained):
    from test_shot_job import LEFT, RIGHT, grown, shot_job
    backend, client, headers, status, path = trained
    lora = {"sha256": hashlib.sha256(open(path, "rb").read()).hexdigest(), "name": "mira", "weight": 1.0,
            "trigger": "mira_knight"}
    plain_job = shot_job(hands={"enabled": False})
    with_lora = json.loads(json.dumps(plain_job))
    with_lora["characters"][0]["identity"]["lora"] = lora
    plain, _ = _picture(client, headers, plain_job, "shot")
    hero, text = _picture(client, headers, with_lora, "shot")
    record = json.loads(text["characterforge"])
    own, other = grown(LEFT, 4 + 2), grown(RIGHT, 4 + 2)
    change = np.abs(hero.astype(int) - plain.astype(int)).mean(axis=-1)
    assert np.array_equal(hero[~(own | other)], plain[~(own | other)])  # the background as it was
    # the Hero's pass ran with the LoRA; the Rival's saw a changed Hero only as its surroundings
    assert change[own].mean() > 1.0 and change[own].mean() > 3 * change[other].mean()
    assert record["job"]["characters"][0]["identity"]["lora"]["name"] == "mira"
    # one character alone gets its own pass when it has a LoRA
    single = json.loads(json.dumps(with_lora))
    single["characters"] = single["characters"][:1]
    _, text = _picture(client, headers, single, "shot")
    assert "character 1 of 1: Hero" in [stage for stage, _ in json.loads(text["characterforge"])["stage_seconds"]]
    off = json.loads(json.dumps(single))
    off["composite"]["character_strength"] = 0
    answer = client.post("/jobs", json=off, headers=headers).json()
    assert answer["details"]["field"] == "characters[0].identity.lora" and "character_strength" in answer["fix"]
