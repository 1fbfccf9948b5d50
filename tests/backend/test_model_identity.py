"""A profile's identity (backend.model_identity): what pins each model's weights, as the
backend reports it at GET /models?profile=NAME for a batch's fingerprints. A file changed in
place, a newer hub snapshot or another profile's settings give another identity; the same
files give the same one, on any machine."""

import os
import time

from fastapi.testclient import TestClient

from characterforge_addon.backend.models import model_identity, models

TINY = os.path.join(os.path.dirname(model_identity.__file__), "profiles", "tiny.toml")


def profile_with_base(folder, base_table, name="mine"):
    """The tiny profile with its base model from `base_table` (TOML lines), saved in `folder`."""
    text = open(TINY).read().replace('name = "tiny"', f'name = "{name}"')
    text = text.replace('[models.base]\ntiny = "base"', f"[models.base]\n{base_table}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{name}.toml"), "w") as f:
        f.write(text)
    return folder


def test_a_file_model_is_named_by_its_contents(tmp_path):
    weights = tmp_path / "mine.safetensors"
    weights.write_bytes(b"weights one")
    dirs = (profile_with_base(str(tmp_path / "profiles"), f'file = "{weights}"'),)
    models_dir = str(tmp_path / "models")
    os.makedirs(models_dir)
    first = model_identity.identity("mine", dirs, models_dir)
    assert first["models"]["base"].startswith("sha256:") and first["models"]["vae"].startswith("tiny-v")
    assert os.path.isfile(os.path.join(models_dir, model_identity.CACHE))
    assert model_identity.identity("mine", dirs, models_dir) == first
    time.sleep(0.01)
    weights.write_bytes(b"weights two")  # retrained and saved over the old file
    changed = model_identity.identity("mine", dirs, models_dir)
    assert changed["models"]["base"] != first["models"]["base"]
    assert {r: v for r, v in changed["models"].items() if r != "base"} == \
        {r: v for r, v in first["models"].items() if r != "base"}
    weights.write_bytes(b"weights one")  # the same bytes again (copied back): the same identity
    assert model_identity.identity("mine", dirs, str(tmp_path / "elsewhere")) == first
    assert model_identity.identity("mine", dirs, models_dir, weights="fp8") != first


def test_a_hub_model_is_named_by_its_snapshot_and_a_profiles_settings_count(tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    monkeypatch.setattr(models, "hf_cache_dir", lambda: str(hub))

    def snapshot(commit):
        folder = hub / "models--org--model" / "snapshots" / commit
        (folder / "unet").mkdir(parents=True)
        (folder / "model_index.json").write_text("{}")
        (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"w")
        return folder

    dirs = (profile_with_base(str(tmp_path / "profiles"), 'repo = "org/model"'),)
    assert model_identity.identity("mine", dirs, str(tmp_path))["models"]["base"].startswith("missing: repo org/model")
    snapshot("1111aaaa")
    assert model_identity.identity("mine", dirs, str(tmp_path))["models"]["base"].startswith("org/model@1111aaaa")
    newer = snapshot("2222bbbb")
    os.utime(newer, (time.time() + 10, time.time() + 10))  # the loader reads the newest snapshot
    first = model_identity.identity("mine", dirs, str(tmp_path))
    assert first["models"]["base"].startswith("org/model@2222bbbb")
    with open(os.path.join(dirs[0], "mine.toml")) as f:
        text = f.read()
    with open(os.path.join(dirs[0], "mine.toml"), "w") as f:
        f.write(text.replace("native_size = 256", "native_size = 512"))
    assert model_identity.identity("mine", dirs, str(tmp_path))["settings"] != first["settings"]


def test_the_backend_reports_a_profiles_identity(make_backend):
    backend = make_backend()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    report = client.get("/models", params={"profile": "tiny-qwen-edit"}, headers=headers).json()
    assert report["profile"] == "tiny-qwen-edit"
    identity = report["identity"]
    assert identity["models"]["base"].endswith("/qwen_edit") and identity["face_refine"]["profile"] == "tiny"
    assert client.get("/models", headers=headers).json()["identity"]["profile"] == "tiny"  # the backend's own
    bad = client.get("/models", params={"profile": "../etc"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["details"]["field"] == "profile"
    unknown = client.get("/models", params={"profile": "nope"}, headers=headers)
    assert unknown.status_code == 404 and "no model profile named 'nope'" in unknown.json()["message"]
