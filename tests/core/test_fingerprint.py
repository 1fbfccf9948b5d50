"""Fingerprints of batch units (core.fingerprint): each part of a real job spec lands in its own
hash, a change names exactly the part it touched, and the closing line says it in words."""

import json

import numpy as np
import pytest

from characterforge_addon.core.batch import batch_plan, fingerprint
from characterforge_addon.core.image_io import encode_png
from characterforge_addon.core.spec.job_spec import posed_character_spec, shot_spec


def png(value, size=16):
    return encode_png(np.full((size, size, 3), value, np.uint8))


def posed(**changes):
    args = dict(prompt="a knight", controls={"openpose": {"png": png(10), "strength": 1.0},
                                            "depth": {"png": png(20), "strength": 0.4}},
                width=64, height=64, negative_prompt="blurry", seed=3, steps=2, guidance=6.0, profile="tiny",
                name="seed3", references=(png(30),), identity_embedding=[0.5] * 512)
    args.update(changes)
    return posed_character_spec(**args)


def shot(**changes):
    mask = encode_png(np.full((64, 64), 255, np.uint8))
    args = dict(prompt="a courtyard", controls={"openpose": {"png": png(10), "strength": 1.0}}, width=64, height=64,
                background_png=png(40, 64),
                characters=[{"name": "Hero", "prompt": "a knight", "mask": mask, "references": [png(30)]}],
                seed=3, steps=2, profile="tiny", previous=(png(50, 64), png(0, 64), 0.5))
    args.update(changes)
    return shot_spec(**args)


IDENTITY = {"profile": "tiny", "models": {"base": "tiny-v11/base"}}


@pytest.mark.parametrize("change,part", [
    (dict(prompt="a dragon"), "prompt"),
    (dict(negative_prompt="dark"), "negative prompt"),
    (dict(seed=4), "seed"),
    (dict(steps=3), "steps"),
    (dict(profile="tiny-union"), "profile"),
    (dict(controls={"openpose": {"png": png(11), "strength": 1.0}, "depth": {"png": png(20), "strength": 0.4}}),
     "control maps"),
    (dict(controls={"openpose": {"png": png(10), "strength": 0.9}, "depth": {"png": png(20), "strength": 0.4}}),
     "control strengths"),
    (dict(references=(png(31),)), "identity pictures"),
    (dict(width=72), "size"),
])
def test_a_change_to_a_posed_job_names_the_part_it_touched(change, part):
    before, after = fingerprint.of_job(posed(), IDENTITY), fingerprint.of_job(posed(**change), IDENTITY)
    assert fingerprint.changes(before, after) == [part]
    assert fingerprint.changes(before, fingerprint.of_job(posed(), IDENTITY)) == []


@pytest.mark.parametrize("change,part", [
    (dict(background_png=png(41, 64)), "background"),
    (dict(previous=(png(51, 64), png(0, 64), 0.5)), "frame carried over"),
    (dict(characters=[{"name": "Hero", "prompt": "a knight", "mask": encode_png(np.full((64, 64), 255, np.uint8)),
                       "references": [png(32)]}]), "identity pictures"),
    (dict(characters=[{"name": "Hero", "prompt": "a dragon", "mask": encode_png(np.full((64, 64), 255, np.uint8)),
                       "references": [png(30)]}]), "prompt"),
    (dict(characters=[{"name": "Hero", "prompt": "a knight", "mask": encode_png(np.zeros((64, 64), np.uint8)),
                       "references": [png(30)]}]), "control maps"),
    (dict(hand_boxes=[[0, 0, 32, 32]]), "control maps"),
])
def test_a_change_to_a_shot_job_names_the_part_it_touched(change, part):
    assert fingerprint.changes(fingerprint.of_job(shot(), IDENTITY), fingerprint.of_job(shot(**change), IDENTITY)) \
        == [part]


def test_the_profiles_models_the_output_format_and_an_unrecorded_unit():
    spec = posed()
    before = fingerprint.of_job(spec, IDENTITY)
    updated = dict(IDENTITY, models={"base": "sha256:abc"})
    assert fingerprint.changes(before, fingerprint.of_job(spec, updated)) == ["models"]
    assert fingerprint.because(["models", "output format"]) == \
        "the profile's models or settings and the add-on's output format changed"
    # another profile has other models: the profile is named, not both
    assert fingerprint.changes(before, fingerprint.of_job(posed(profile="x"), updated)) == ["profile"]
    older = json.loads(json.dumps(before))
    older["parts"]["output format"] = "0"
    assert fingerprint.changes(older, before) == ["output format"]
    assert fingerprint.changes(None, before) == [fingerprint.UNRECORDED]
    assert fingerprint.outcome(False, None, before) == ("new", [])
    assert fingerprint.outcome(True, before, before) == ("unchanged", [])
    assert fingerprint.outcome(True, None, before, keep_changed=True) == ("keep", [fingerprint.UNRECORDED])


def test_maps_only_units_are_keyed_by_their_files(tmp_path):
    (tmp_path / "openpose.png").write_bytes(png(1))
    (tmp_path / "depth.png").write_bytes(png(2))
    first = fingerprint.of_files(str(tmp_path), ["openpose.png", "depth.png"])
    assert fingerprint.of_files(str(tmp_path), ["depth.png", "openpose.png"]) == first
    (tmp_path / "depth.png").write_bytes(png(3))
    assert fingerprint.changes(first, fingerprint.of_files(str(tmp_path), ["openpose.png", "depth.png"])) == \
        ["control maps"]


def test_the_closing_line_says_what_changed(capsys):
    rerun = fingerprint.Rerun()
    for i in range(12):
        rerun.record(f"u{i}", "unchanged")
    for i in range(4):
        rerun.record(f"c{i}", "redo", ["prompt"])
    assert rerun.summary() == "12 unchanged, 4 redone because the prompt changed"
    assert "c0: redo: the prompt changed" in capsys.readouterr().out  # unchanged units print nothing
    rerun.record("m", "redo", ["seed", "steps", "control maps"])
    rerun.record("n", "redo", [fingerprint.CARRIED])
    rerun.record("o", "new")
    rerun.record("p", "keep", [fingerprint.UNRECORDED])
    rerun.record("q", "new")
    rerun.fail("q")
    assert rerun.summary() == (
        "12 unchanged, 6 redone: 4 because the prompt changed, 1 because the seed, the steps and the control maps "
        "changed, 1 because the frame it carries over is made again, 1 made (not made before), 1 failed; 1 changed "
        "but kept on purpose (--keep-changed), their outputs made with other settings: p: the manifest, written "
        "before fingerprints, has none for it")
    first = fingerprint.Rerun()
    first.record("a", "new")
    assert first.summary() == "1 made (not made before)"
    assert fingerprint.Rerun().summary() == "nothing to do"
    dry = fingerprint.Rerun(dry_run=True)
    dry.record("a", "unchanged")
    dry.record("b", "redo", ["profile"])
    assert "a: unchanged" in capsys.readouterr().out
    assert dry.summary() == "dry run, nothing was run: 1 unchanged, 1 to redo because the profile changed"


def test_a_manifest_from_before_fingerprints_is_read_and_its_units_count_as_changed(tmp_path):
    (tmp_path / "u").mkdir()
    (tmp_path / "u" / "a.png").write_bytes(b"x")
    (tmp_path / "manifest.json").write_text(json.dumps({"done": {"u": ["u/a.png"]}}))  # the format before
    old = batch_plan.Manifest(str(tmp_path))
    assert old.finished("u", str(tmp_path)) and old.fingerprint("u") is None
    made = fingerprint.of_job(posed(), IDENTITY)
    assert fingerprint.outcome(True, old.fingerprint("u"), made) == ("redo", [fingerprint.UNRECORDED])
    old.add("u", ["u/a.png"], made)
    again = batch_plan.Manifest(str(tmp_path))
    assert again.fingerprint("u") == made and again.done == {"u": ["u/a.png"]}
    again.forget("u")  # a unit made again is not done until it is
    assert batch_plan.Manifest(str(tmp_path)).done == {} and batch_plan.Manifest(str(tmp_path)).fingerprint("u") is None
