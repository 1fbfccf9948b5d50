"""Shots and expressions on the tiny profile: characters generated into the background (in
place or cut out and harmonized), hands redrawn, identities kept to their own masks (down to
the attention processors), and expression edits that change the face only."""

import base64
import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import completed_job, image_of, png_b64, wait

W, H = 128, 64


def b64(pixels):
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def pattern(w=W, h=H, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def mask(x0, x1, y0=8, y1=56):
    m = np.zeros((H, W), np.uint8)
    m[y0:y1, x0:x1] = 255
    return m


LEFT, RIGHT = mask(16, 40), mask(84, 108)


def identity(color):
    return {"images": [png_b64(64, 64, color)], "scale": 0.8}


def shot_job(**changes):
    out = {"kind": "shot", "name": "shot", "prompt": "a courtyard at dusk", "seed": 3, "steps": 2, "width": W, "height": H,
           "profile": "tiny", "background": {"image": b64(pattern())},
           "controls": {"openpose": {"image": b64(pattern(seed=1))}, "hand_depth": {"image": png_b64(W, H, (90,) * 3)}},
           "characters": [{"name": "Hero", "prompt": "a knight", "mask": b64(LEFT), "identity": identity((200, 150, 120))},
                          {"name": "Rival", "prompt": "a witch", "mask": b64(RIGHT), "identity": identity((40, 60, 200))}],
           "composite": {"grow": 4, "feather": 2}, "hands": {"boxes": [[20, 20, 36, 36]], "strength": 0.5}}
    out.update(changes)
    return out


def control_pngs(spec):
    """The control maps as the worker hands them to a job: PNG bytes by name."""
    return {name: base64.b64decode(c["image"]) for name, c in spec["controls"].items()}


def results(backend, spec):
    client, headers, status = completed_job(backend, spec)
    out = {}
    for name in status["results"]:
        r = client.get(f"/jobs/{status['id']}/results/{name}", headers=headers)
        out[name.removesuffix(".png")] = (image_of(r), json.loads(Image.open(io.BytesIO(r.content)).text["characterforge"]))
    return out


def grown(m, px):
    from characterforge_addon.backend.jobs.shot import grow
    return grow(m > 0, px)


def assert_only_characters_and_hands_changed(pixels, record):
    """The background byte-identical outside the grown masks and the redrawn hand; the masks changed."""
    background = pattern()
    touched = grown(LEFT, 4 + 2) | grown(RIGHT, 4 + 2)
    x0, y0, x1, y1 = record["hands"]["redrawn"][0]
    touched[y0:y1, x0:x1] = True
    assert np.array_equal(pixels[~touched], background[~touched])
    for m in (LEFT, RIGHT):
        assert np.abs(pixels[m > 0].astype(int) - background[m > 0]).mean() > 5


def test_characters_in_place_leave_the_background_alone_outside_their_masks(make_backend):
    backend = make_backend()
    (pixels, record), = results(backend, shot_job()).values()
    assert pixels.shape == (H, W, 3) and record["mode"] == "inpaint" and record["characters"] == ["Hero", "Rival"]
    assert_only_characters_and_hands_changed(pixels, record)
    stages = [name for name, _ in record["stage_seconds"]]  # where the time went, stage by stage
    assert stages[0] == "loading models" and "hands: 1 in one batch" in stages
    assert all(seconds >= 0 for _, seconds in record["stage_seconds"])
    assert record["hands"]["control"] == "hand_depth" and len(record["hands"]["redrawn"]) == 1
    assert set(record["scores"]["identity_by_character"]) == {"Hero", "Rival"}
    assert record["job"]["characters"][0] == {"name": "Hero", "prompt": "a knight",
                                              "identity": {"references": 1, "scale": 0.8, "embedding": False}}


def test_cut_out_characters_come_with_alpha_and_are_harmonized(make_backend):
    backend = make_backend()
    spec = shot_job(composite={"mode": "cutout", "grow": 4, "feather": 2, "harmonize": 0.5}, hands={"enabled": False})
    out = results(backend, spec)
    composite = out["shot"][0]
    (hero, hero_record), (rival, _) = out["shot_cutout_Hero"], out["shot_cutout_Rival"]
    assert hero.shape == (H, W, 4) and hero_record["layer"] == "cutout" and hero_record["character"] == "Hero"
    assert (hero[..., 3][LEFT > 0] == 255).all() and (rival[..., 3][RIGHT > 0] == 255).all()
    assert not hero[..., 3][~grown(LEFT, 6)].any() and not rival[..., 3][~grown(RIGHT, 6)].any()
    outside = ~(grown(LEFT, 6) | grown(RIGHT, 6))
    assert np.array_equal(composite[outside], pattern()[outside])
    assert not np.array_equal(composite[LEFT > 0], hero[..., :3][LEFT > 0])  # harmonized, not pasted as is


def test_regional_masks_reach_the_attention_processors(models_dir, monkeypatch):
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.jobs import shot
    from characterforge_addon.backend.models import profiles
    from characterforge_addon.core.spec.job_spec import validate_job
    seen = []
    real = IPAdapterAttnProcessor2_0.__call__

    def spy(self, attn, hidden_states, *args, ip_adapter_masks=None, **kwargs):
        seen.append((ip_adapter_masks, [list(s) if isinstance(s, list) else s for s in self.scale]))
        return real(self, attn, hidden_states, *args, ip_adapter_masks=ip_adapter_masks, **kwargs)

    monkeypatch.setattr(IPAdapterAttnProcessor2_0, "__call__", spy)
    engine = pipelines.Engine(profiles.load_profile("tiny"), models_dir)
    spec = validate_job(shot_job(hands={"enabled": False}))
    progress = type("P", (), {"stage": lambda self, name: None, "step": staticmethod(lambda *a: None)})()
    never = type("E", (), {"is_set": staticmethod(lambda: False)})()
    shot.run(engine, spec, control_pngs(spec), progress, never, None, None)
    masks, scales = seen[0]
    assert masks is not None and len(masks) == len(engine.adapters.names()) == 3  # plus-face, FaceID, appearance
    for m in masks:
        assert tuple(m.shape) == (1, 2, H, W)
        hero, rival = m[0, 0].numpy() > 0.5, m[0, 1].numpy() > 0.5
        assert hero[LEFT > 0].all() and rival[RIGHT > 0].all()
        assert not (hero & rival).any() and not hero[RIGHT > 0].any() and not rival[LEFT > 0].any()
    assert scales[0] == [0.8, 0.8]  # one plus-face scale per character


def test_a_human_and_a_creature_keep_their_identities_in_their_own_masks(models_dir, monkeypatch):
    """The human's face identity (plus-face, FaceID) acts in its mask only; the creature's
    appearance (the appearance adapter) in its mask only, it gets no face identity; each gets
    its own pass steered by its own maps, and its own score."""
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.jobs import shot
    from characterforge_addon.backend.models import profiles
    from characterforge_addon.core.spec.job_spec import validate_job
    seen, passes = [], []
    real = IPAdapterAttnProcessor2_0.__call__

    def spy(self, attn, hidden_states, *args, ip_adapter_masks=None, **kwargs):
        seen.append((ip_adapter_masks, [list(s) if isinstance(s, list) else s for s in self.scale]))
        return real(self, attn, hidden_states, *args, ip_adapter_masks=ip_adapter_masks, **kwargs)

    monkeypatch.setattr(IPAdapterAttnProcessor2_0, "__call__", spy)
    engine = pipelines.Engine(profiles.load_profile("tiny-union"), models_dir)
    inpaint = engine.inpaint
    monkeypatch.setattr(engine, "inpaint", lambda spec, *a, controls=(), **k: passes.append(
        (spec["identity"] if "identity" in spec else None, [n for n, _ in controls])) or inpaint(
        spec, *a, controls=controls, **k))
    look = {"embedding": [0.5] * 32, "views": [[0.5] * 32, [0.4] * 32], "scale": 0.7}
    job = shot_job(hands={"enabled": False}, profile="tiny-union", controls={
        "openpose": {"image": b64(pattern(seed=1))}, "depth": {"image": b64(pattern(seed=2))},
        "normal": {"image": b64(pattern(seed=3))}, "lineart": {"image": png_b64(W, H, (0, 0, 0))}})
    job["characters"][1] = {"name": "Beast", "kind": "creature", "prompt": "a green lizard", "mask": b64(RIGHT),
                            "identity": dict(identity((40, 200, 60)), scale=0.0, appearance=look)}
    spec = validate_job(job)
    progress = type("P", (), {"stage": lambda self, name: None, "step": staticmethod(lambda *a: None)})()
    never = type("E", (), {"is_set": staticmethod(lambda: False)})()
    (name, pixels, record), = shot.run(engine, spec, control_pngs(spec), progress, never, None, None)
    masks, scales = seen[0]
    assert engine.adapters.names() == ["plus_face", "faceid", "appearance"] and len(masks) == 3
    for m in masks:
        hero, beast = m[0, 0].numpy() > 0.5, m[0, 1].numpy() > 0.5
        assert hero[LEFT > 0].all() and beast[RIGHT > 0].all() and not (hero & beast).any()
    plus, faceid, appearance = scales
    assert plus == [0.8, 0.0] and faceid[1] == 0.0  # the creature has no face to keep
    assert appearance == [0.0, 0.7]  # its look, in its own mask; the human has no appearance here
    own = {tuple(maps): identity_ for identity_, maps in passes[1:]}
    assert ("openpose",) in own and ("depth", "normal", "lineart") in own  # each its own maps in its own pass
    assert own[("depth", "normal", "lineart")]["scale"] == 0.0
    assert record["scores"]["appearance_by_character"]["Beast"]["status"] == "ok"
    assert "Hero" not in record["scores"]["appearance_by_character"]
    assert set(record["scores"]["identity_by_character"]) == {"Hero"}


def test_identities_stay_in_their_own_region(models_dir):
    """Swapping who wears which identity changes each character's own region."""
    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.jobs import shot
    from characterforge_addon.backend.models import profiles
    from characterforge_addon.core.spec.job_spec import validate_job
    engine = pipelines.Engine(profiles.load_profile("tiny"), models_dir)
    progress = type("P", (), {"stage": lambda self, name: None, "step": staticmethod(lambda *a: None)})()
    never = type("E", (), {"is_set": staticmethod(lambda: False)})()
    spec = shot_job(hands={"enabled": False}, composite={"grow": 4, "feather": 2, "character_strength": 0})
    one = shot.run(engine, validate_job(spec), control_pngs(spec), progress, never, None, None)[0][1]
    spec["characters"][1]["identity"] = identity((250, 250, 20))
    other = shot.run(engine, validate_job(spec), control_pngs(spec), progress, never, None, None)[0][1]
    assert np.abs(one[RIGHT > 0].astype(int) - other[RIGHT > 0]).mean() > 0.5


def test_shot_input_errors_name_the_field(make_backend):
    backend = make_backend()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    bad_character = {"name": "Hero", "prompt": "", "mask": "x"}
    for change, field in (({"background": None}, "background"), ({"characters": []}, "characters"),
                          ({"composite": {"mode": "glue"}}, "composite.mode"),
                          ({"characters": [bad_character, bad_character]}, "characters"),
                          ({"hands": {"boxes": [[0, 0, 500, 10]]}}, "hands.boxes[0]"),
                          ({"prompt": "", "characters": [dict(bad_character, mask=png_b64(W, H))]}, "prompt"),
                          ({"characters": [bad_character]}, "characters[0].mask"),
                          ({"background": {"image": "aGVsbG8="}}, "background.image")):
        r = client.post("/jobs", json=shot_job(**change), headers=headers)
        assert r.status_code == 400 and r.json()["message"].startswith(field + ":"), (change, r.json())


def expression_job(**changes):
    out = {"kind": "expression", "image": b64(pattern(128, 128)), "width": 128, "height": 128, "seed": 5, "steps": 2,
           "profile": "tiny", "prompt": "a knight", "expression": "happy", "face_box": [40, 30, 80, 74],
           "detector": "rig", "identity": identity((200, 150, 120))}
    out.update(changes)
    return out


def test_an_expression_changes_only_the_face(make_backend):
    backend = make_backend()
    (pixels, record), = results(backend, expression_job()).values()
    original = pattern(128, 128)
    x0, y0, x1, y1 = record["changed_within"]
    inside = np.zeros((128, 128), bool)
    inside[y0:y1, x0:x1] = True
    assert x0 >= 40 - 10 and x1 <= 80 + 10  # the face box plus its feather
    assert np.array_equal(pixels[~inside], original[~inside])
    assert np.abs(pixels[50:60, 55:65].astype(int) - original[50:60, 55:65]).mean() > 5
    assert "smiling" in record["prompt_used"] and "sad" in record["negative_used"]
    assert record["face_source"] == "rig" and record["expression"] == "happy"


@pytest.mark.parametrize("change, field", [({"expression": "custom", "custom": ""}, "custom"),
                                           ({"expression": "smug"}, "expression"),
                                           ({"face_box": None}, "face_box"),
                                           ({"image": "not base64!"}, "image"),
                                           ({"controls": {"openpose": {"image": png_b64()}}}, "controls.openpose")])
def test_expression_input_errors(make_backend, change, field):
    backend = make_backend()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    r = client.post("/jobs", json=expression_job(**change), headers=headers)
    assert r.status_code == 400 and r.json()["message"].startswith(field + ":"), r.json()


def test_a_custom_expression_and_a_picture_of_the_wrong_size(make_backend):
    backend = make_backend()
    (pixels, record), = results(backend, expression_job(expression="custom", custom="smirking, one eyebrow raised",
                                                        identity=None)).values()
    assert "smirking" in record["prompt_used"]
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    job_id = client.post("/jobs", json=expression_job(width=120), headers=headers).json()["id"]
    status = wait(client, headers, job_id)
    assert status["status"] == "failed" and "120x128" in status["error"]["message"]


def test_sequential_offload_keeps_every_shared_variant_working(models_dir):
    """Sequential offload hooks each module once: variants built later (inpaint with other
    ControlNets, the adapters loaded midway) share the offloaded modules and give the same
    pixels as without offloading. (CPU stands in for the GPU: the hooks and meta weights are
    the same.)"""
    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.jobs import expression, shot
    from characterforge_addon.backend.models import profiles
    from characterforge_addon.core.spec.job_spec import validate_job
    progress = type("P", (), {"stage": lambda self, name: None, "step": staticmethod(lambda *a: None)})()
    never = type("E", (), {"is_set": staticmethod(lambda: False)})()
    outputs = []
    for memory in ("cpu", "sequential_offload"):
        engine = pipelines.Engine(profiles.load_profile("tiny"), models_dir)
        engine.memory = memory  # on a machine without a GPU the engine would pick "cpu"
        spec = validate_job(shot_job(hands={"boxes": [[20, 20, 36, 36]]}))
        made = shot.run(engine, spec, control_pngs(spec), progress, never, None, None)
        made += expression.run(engine, validate_job(expression_job()), progress, never, None)
        outputs.append([pixels for _, pixels, _ in made])
        if memory == "sequential_offload":
            assert hasattr(engine.base().unet, "_hf_hook") and engine.base().unet.conv_in.weight.device.type == "meta"
    for plain, offloaded in zip(*outputs):
        assert np.abs(plain.astype(int) - offloaded).max() <= 1


def test_a_moving_shots_later_frame_starts_from_the_previous_one(make_backend):
    """Frame 2 of a still shot: carried over at low strength it stays near frame 1 (far nearer
    than a fresh frame with another seed is), the newly visible part is generated first, the
    background outside the masks is still untouched; cut-out mode refuses it."""
    backend = make_backend()
    still = dict(hands={"enabled": False})
    (first, _), = results(backend, shot_job(**still)).values()
    (other_seed, _), = results(backend, shot_job(seed=9, **still)).values()
    no_holes = np.zeros((H, W), np.uint8)
    (carried, record), = results(backend, shot_job(previous={"image": b64(first), "holes": b64(no_holes),
                                                             "strength": 0.2}, **still)).values()
    inside = (LEFT > 0) | (RIGHT > 0)
    near = np.abs(carried[inside].astype(int) - first[inside]).mean()
    fresh = np.abs(other_seed[inside].astype(int) - first[inside]).mean()
    assert near < fresh / 2 and record["previous"] == {"strength": 0.2, "holes": 0.0, "newly_visible": 0.0}
    stages = [name for name, _ in record["stage_seconds"]]
    assert "newly visible parts" not in stages
    outside = ~(grown(LEFT, 6) | grown(RIGHT, 6))
    assert np.array_equal(carried[outside], pattern()[outside])
    holes = mask(16, 28)  # half the Hero was hidden before
    (_, record), = results(backend, shot_job(previous={"image": b64(first), "holes": b64(holes), "strength": 0.2},
                                             **still)).values()
    assert "newly visible parts" in [name for name, _ in record["stage_seconds"]]
    assert record["previous"]["newly_visible"] == pytest.approx((holes > 0).mean(), abs=0.01)
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    r = client.post("/jobs", json=shot_job(composite={"mode": "cutout"}, previous={
        "image": b64(first), "holes": b64(no_holes)}), headers=headers)
    assert r.status_code == 400 and r.json()["details"]["field"] == "previous", r.json()
