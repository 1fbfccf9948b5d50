"""A character's LoRA on the add-on's side (pure): the training spec from a pack, the file kept
in the pack (its manifest entry last, the earlier LoRA's files gone), its weight, what a job names."""

import json
import os
import struct

import pytest

from characterforge_addon.core.characters import character_lora, identity_pack
from characterforge_addon.core.errors import UserError
from characterforge_addon.core.spec.spec_fields import JobSpecError

from test_sheet_and_packs import result_png, sheet_results


def full_sheet_results():
    """A default sheet's five body views and four faces."""
    results = sheet_results()
    job = {"prompt": "a knight", "seed": 7, "profile": "tiny"}
    for name, yaw in (("three_quarter", 45.0), ("three_quarter_back", 135.0), ("back", 180.0)):
        results[f"view_{name}"] = result_png((40, 20, 3), {"job": job, "yaw": yaw})
    for name, yaw in (("face_three_quarter", 45.0), ("face_three_quarter_right", -45.0)):
        results[name] = result_png((16, 16, 3), {"job": job, "yaw": yaw, "embedding": [0.0, 0.0, 1.0]})
    return results


def fake_lora(path, record):
    """A .safetensors file as the backend writes one: one tensor, our record in the metadata."""
    header = json.dumps({"__metadata__": {"characterforge": json.dumps(record),
                                          "modelspec.trigger_phrase": record["trigger"]},
                         "lora_unet_x.lora_down.weight": {"dtype": "F16", "shape": [1, 2], "data_offsets": [0, 4]}})
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header.encode() + b"\0" * 4)
    return path


@pytest.fixture
def pack(tmp_path):
    return identity_pack.create_pack(str(tmp_path / "packs"), "Hero", full_sheet_results())


def test_the_training_spec_sends_each_picture_once_with_its_mirrored_caption(pack):
    spec = character_lora.train_spec(pack, "hero_cf", "sdxl", steps=50, rank=8)
    manifest = identity_pack.load_pack(pack)
    assert len(spec["images"]) == len(manifest["views"]) + len(manifest["faces"]) == 9
    first = spec["images"][0]
    assert first["caption"].startswith("hero_cf, ") and first["mirror_caption"].startswith("hero_cf, ")
    assert spec["steps"] == 50 and spec["rank"] == 8 and spec["name"] == "Hero"
    assert spec["sample_prompt"].startswith("hero_cf, full body")
    unmirrored = character_lora.train_spec(pack, "hero_cf", "sdxl", flip=False)
    assert not any(p["mirror_caption"] for p in unmirrored["images"])
    with pytest.raises(JobSpecError, match="one word"):
        character_lora.train_spec(pack, "hero cf", "sdxl")


@pytest.mark.parametrize("name, trigger", [("Knight", "Knight"), ("mira-2", "mira_2"), ("2B", "c_2B"),
                                           ("x", "c_x")])
def test_a_default_trigger_word_is_one_word(name, trigger):
    assert character_lora.default_trigger(name) == trigger


def test_a_lora_is_kept_in_the_pack_and_replaces_the_earlier_one(pack, tmp_path):
    first = fake_lora(str(tmp_path / "Hero.safetensors"), {"trigger": "hero_cf", "rank": 8, "steps": 100,
                                                            "profile": "sdxl", "family": "sdxl"})
    sample = tmp_path / "sample_00100.png"
    sample.write_bytes(open(os.path.join(pack, "faces", os.listdir(os.path.join(pack, "faces"))[0]), "rb").read())
    entry = character_lora.add_lora(pack, first, [str(sample)])
    assert entry["file"] == "lora/Hero.safetensors" and entry["trigger"] == "hero_cf" and entry["weight"] == 0.8
    assert entry["samples"] == ["lora/samples/sample_00100.png"]
    assert identity_pack.load_pack(pack)["lora"] == entry
    character_lora.set_weight(pack, 0.5)
    lora, path = character_lora.job_lora(pack)
    assert lora == {"sha256": entry["sha256"], "name": "Hero", "weight": 0.5, "trigger": "hero_cf"}
    assert os.path.isfile(path)
    # trained again: the new file replaces the old, the weight the user chose stays, old samples go
    os.makedirs(tmp_path / "again")
    second = fake_lora(str(tmp_path / "again" / "Hero.safetensors"), {"trigger": "hero_cf", "rank": 16, "steps": 200})
    newer = character_lora.add_lora(pack, second, [])
    assert newer["rank"] == 16 and newer["weight"] == 0.5 and newer["sha256"] != entry["sha256"]
    assert not os.path.exists(os.path.join(pack, "lora", "samples", "sample_00100.png"))


def test_broken_loras_and_weights_are_refused(pack, tmp_path):
    assert character_lora.job_lora(pack) == (None, None)
    with pytest.raises(identity_pack.PackError, match="no LoRA"):
        character_lora.set_weight(pack, 0.5)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 8 + b"{}")
    with pytest.raises(identity_pack.PackError, match="not a readable LoRA"):
        character_lora.add_lora(pack, str(bad), [])
    character_lora.add_lora(pack, fake_lora(str(tmp_path / "Hero.safetensors"), {"trigger": "hero_cf"}), [])
    with pytest.raises(UserError, match="0 to 2"):
        character_lora.set_weight(pack, 3.0)
    os.unlink(os.path.join(pack, "lora", "Hero.safetensors"))
    with pytest.raises(identity_pack.PackError, match="is missing: train it again"):
        character_lora.job_lora(pack)
