"""The relight job on the tiny profiles, through the HTTP API and the real job runner: relit
inside the characters' masks with every pixel outside them kept, the inside changed, a moved
light changing the picture, the edit families taking the light reference as a picture, a shot
relit after compositing, and bad inputs (no light, a picture of the wrong size, a light
reference from another camera) refused before queueing with the field and the fix."""

import base64
import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from characterforge_addon.core.shots import lighting
# imported here, not in a test: the whole suite later loads tests/blender's conftest under the same name
from conftest import completed_job, image_of, spec as posed
from test_shot_job import H, W, LEFT, RIGHT, b64, control_pngs, grown, identity, pattern, shot_job

VIEW = {"camera": "Camera", "matrix": [1.0, 0, 0, 0, 0, 0, -1, -5, 0, 1, 0, 1, 0, 0, 0, 1],
        "lens": [0, 35, 36, 24, 0, 0], "resolution": [W, H]}


def light_png(side="left", black=False, size=(W, H)):
    """A light reference: bright on one side, dark on the other, as the add-on encodes it."""
    w, h = size
    ramp = np.linspace(1.0, 0.05, w) if side == "left" else np.linspace(0.05, 1.0, w)
    light = np.repeat(np.tile(ramp, (h, 1))[..., None], 3, axis=2) * (0 if black else 2.0)
    pixels = lighting.light_picture(light, np.ones((h, w), bool), 2.0)
    return b64(pixels)


def normal_png():
    """The surfaces' normals: a row of cylinders across the picture (x varies, facing the camera)."""
    across = np.sin(np.linspace(0, 8 * np.pi, W))
    normals = np.zeros((H, W, 3))
    normals[..., 0], normals[..., 2] = across, np.sqrt(1 - across ** 2)
    return b64(lighting.normal_picture(normals, np.ones((H, W), bool)))


def light(side="left", **changes):
    entry = {"image": light_png(side), "view": VIEW, "white": 2.0, "key": [-0.7, 0.5, 0.5] if side == "left"
             else [0.7, 0.5, 0.5], "characters": [{"name": "Hero", "key": [-0.7, 0.5, 0.5]}], "normal": normal_png()}
    entry.update(changes)
    return entry


def relight_job(**changes):
    out = {"kind": "relight", "name": "relit", "prompt": "two people in a courtyard", "seed": 5, "steps": 2,
           "width": W, "height": H, "profile": "tiny", "image": b64(pattern()), "view": VIEW, "light": light(),
           "characters": [{"name": "Hero", "prompt": "a knight", "mask": b64(LEFT),
                           "identity": identity((200, 150, 120))},
                          {"name": "Rival", "prompt": "a witch", "mask": b64(RIGHT)}],
           "controls": {"depth": {"image": b64(pattern(seed=2))}, "normal": {"image": b64(pattern(seed=3))}},
           "grow": 4, "feather": 2, "strength": 0.5}
    out.update(changes)
    return out


def relit(backend, job):
    client, headers, status = completed_job(backend, job)
    answers = {}
    for name in status["results"]:
        r = client.get(f"/jobs/{status['id']}/results/{name}", headers=headers)
        answers[name] = (image_of(r), json.loads(Image.open(io.BytesIO(r.content)).text["characterforge"]))
    return answers


def touched(px):
    return grown(LEFT, px) | grown(RIGHT, px)


def test_relight_inside_the_masks_keeps_every_pixel_outside_them(make_backend):
    backend = make_backend()
    (pixels, record), = relit(backend, relight_job()).values()
    before = pattern()
    outside = ~touched(4 + 2)
    assert pixels.shape == (H, W, 3) and np.array_equal(pixels[outside], before[outside])
    for m in (LEFT, RIGHT):
        assert np.abs(pixels[m > 0].astype(int) - before[m > 0]).mean() > 5
    r = record["relight"]
    assert r["steered_by"] == ["depth"]  # the tiny profile has no normal ControlNet: depth holds the geometry
    assert r["words"] == {"subject": "the characters", "light": "key light from the upper left"}
    agreement = r["agreement"]
    assert agreement["where"] == "inside the characters' masks"
    assert agreement["reshaded"] > agreement["before"]  # the re-shaded start follows the light reference
    assert r["shading"]["old_shading"] == "the geometry's normals"
    assert set(r["identity"]["by_character"]) == {"Hero", "Rival"} and r["identity"]["margin"] == 0.1
    hero = r["identity"]["by_character"]["Hero"]
    assert hero.get("against") in (None, "identity pack")
    stages = [name for name, _ in record["stage_seconds"]]
    assert {"re-shading", "relighting", "identity check"} <= set(stages)
    assert record["job"]["kind"] == "relight" and record["job"]["image"] == "the picture edited"
    assert "image" not in record["job"]["light"] and record["job"]["light"]["white"] == 2.0


def test_a_moved_light_changes_the_relit_picture(make_backend):
    backend = make_backend()
    (left, _), = relit(backend, relight_job()).values()
    (again, _), = relit(backend, relight_job()).values()
    (right, record), = relit(backend, relight_job(light=light("right", characters=[]))).values()
    assert np.array_equal(left, again)  # the same light and seed: the same picture
    inside = (LEFT > 0) | (RIGHT > 0)
    assert np.abs(left[inside].astype(int) - right[inside]).mean() > 2
    assert record["relight"]["words"]["light"] == "key light from the upper right"


def test_the_whole_picture_relit_on_the_union_profile_with_a_normal_map(make_backend):
    backend = make_backend()
    (pixels, record), = relit(backend, relight_job(profile="tiny-union", whole=True, characters=[])).values()
    assert not np.array_equal(pixels[~touched(6)], pattern()[~touched(6)])  # outside the masks too
    r = record["relight"]
    assert r["whole"] and r["steered_by"] == ["depth", "normal"]  # the Union takes the normal map (mode 4)
    assert r["words"]["subject"] == "the whole picture" and r["agreement"]["where"].startswith("wherever")
    assert set(r["identity"]["by_character"]) == {"picture"}


def test_an_identity_that_falls_past_the_margin_is_said_and_one_within_it_is_not(make_backend):
    """Without characters the whole picture's face is checked against itself before relighting
    (the tiny profile's insightface-shaped models find one face in any picture): a relit picture
    always falls somewhat, so margin 0 says so, naming it; the widest margin never does."""
    backend = make_backend()
    (_, record), = relit(backend, relight_job(whole=True, characters=[], margin=0.0)).values()
    identity = record["relight"]["identity"]
    entry = identity["by_character"]["picture"]
    assert entry["against"] == "its own face before relighting"
    assert entry["before"]["similarity"] > 0.99 and entry["after"]["status"] == "ok"
    assert entry["fall"] > 0 and entry["fell"] and identity["fell"] == ["picture"]
    assert identity["message"].startswith("identity fell by more than 0 for picture (face)")
    (_, record), = relit(backend, relight_job(whole=True, characters=[], margin=2.0)).values()
    identity = record["relight"]["identity"]
    assert identity["fell"] == [] and not identity["by_character"]["picture"]["fell"] and "message" not in identity


def test_a_creature_keeps_its_look_through_the_relight_and_its_look_is_checked(models_dir, monkeypatch):
    """A creature relit beside a human: its look (the appearance adapter) acts in its own mask and
    it gets no face identity, as in a shot; its appearance score before and after is recorded and
    scored like a shot's, even where the profile has no face recogniser."""
    from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.jobs import relight
    from characterforge_addon.backend.models import profiles
    from characterforge_addon.core.spec.job_spec import validate_job
    seen = []
    real = IPAdapterAttnProcessor2_0.__call__

    def spy(self, attn, hidden_states, *args, ip_adapter_masks=None, **kwargs):
        seen.append([list(s) if isinstance(s, list) else s for s in self.scale])
        return real(self, attn, hidden_states, *args, ip_adapter_masks=ip_adapter_masks, **kwargs)

    monkeypatch.setattr(IPAdapterAttnProcessor2_0, "__call__", spy)
    engine = pipelines.Engine(profiles.load_profile("tiny-union"), models_dir)
    job = relight_job(profile="tiny-union", margin=0.0)
    job["characters"][1] = {"name": "Beast", "kind": "creature", "prompt": "a green lizard", "mask": b64(RIGHT),
                            "identity": dict(identity((40, 200, 60)), appearance={
                                "embedding": [0.5] * 32, "views": [[0.5] * 32, [0.4] * 32], "scale": 0.7})}
    spec = validate_job(job)
    progress = type("P", (), {"stage": lambda self, name: None, "step": staticmethod(lambda *a: None)})()
    never = type("E", (), {"is_set": staticmethod(lambda: False)})()
    (_, _, record), = relight.run(engine, spec, control_pngs(spec), progress, never, None)
    plus, faceid, appearance = seen[0]
    assert plus == [0.8, 0.0] and faceid[1] == 0.0 and appearance == [0.0, 0.7]
    checked = record["relight"]["identity"]
    assert checked["status"].startswith("unavailable")  # no face recogniser handed in: faces unchecked
    look = checked["by_character"]["Beast"]["appearance"]
    assert set(checked["by_character"]) == {"Beast"} and "against" not in checked["by_character"]["Beast"]
    assert look["before"]["status"] == look["after"]["status"] == "ok" and look["before"] != look["after"]
    assert look["fell"] == (look["fall"] > 0.0) and ("Beast" in checked["fell"]) == look["fell"]
    assert record["scores"]["appearance_by_character"] == {"Beast": look["after"]}


def test_a_look_that_falls_past_the_margin_is_said(models_dir):
    """The appearance check on its own: a look made from the region before relighting scores 1
    there; the region turned negative falls, and margin 0 names it, the widest margin does not."""
    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.jobs import relight
    from characterforge_addon.backend.models import profiles
    engine = pipelines.Engine(profiles.load_profile("tiny-union"), models_dir)
    before = pattern()
    after = 255 - before
    where = RIGHT > 0
    own = engine.appearance.of_regions([before], [where])[0]
    beast = {"name": "Beast", "kind": "creature",
             "identity": {"images": [], "appearance": {"embedding": own, "views": [], "scale": 0.5}}}
    out = relight.identity_check(engine, None, before, after, [beast], [where], 0.0)
    look = out["by_character"]["Beast"]["appearance"]
    assert look["before"]["similarity"] > 0.999 and look["fall"] > 0 and look["fell"]
    assert out["fell"] == ["Beast"] and out["message"].startswith("identity fell by more than 0 for Beast (look)")
    out = relight.identity_check(engine, None, before, after, [beast], [where], 2.0)
    assert out["fell"] == [] and "message" not in out


@pytest.mark.parametrize("profile", ["tiny-qwen-edit", "tiny-flux2-klein"])
def test_an_edit_family_takes_the_light_reference_as_picture_2(make_backend, profile):
    backend = make_backend()
    job = relight_job(profile=profile, characters=relight_job()["characters"][:1], controls={})
    (pixels, record), = relit(backend, job).values()
    outside = ~grown(LEFT, 6)
    assert np.array_equal(pixels[outside], pattern()[outside]) and not np.array_equal(pixels[LEFT > 0],
                                                                                       pattern()[LEFT > 0])
    instruction = record["relight"]["instruction"]
    assert instruction.startswith("Relight the character in picture 1 as lit in picture 2")
    assert "key light from the upper left" in instruction and "the same person as in picture 3" in instruction
    (moved, _), = relit(backend, dict(job, light=light("right", characters=[]))).values()
    assert not np.array_equal(moved, pixels)  # the light reference reaches the model


def test_a_relight_lora_acts_in_the_relight_only(make_backend, tmp_path, monkeypatch):
    """tiny-qwen-edit names a relight LoRA: it is loaded for a relight and changes it; the same
    profile without it (a user's profile) relights too, differently; a draft of a posed character
    on the LoRA's profile runs without it."""
    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.families import qwen_edit
    seen = []
    real = pipelines.Engine._lora_adapters
    monkeypatch.setattr(pipelines.Engine, "_lora_adapters",
                        lambda self, spec: seen.append(real(self, spec)) or seen[-1])
    folder = tmp_path / "data" / "profiles"
    folder.mkdir(parents=True)
    text = open(qwen_edit.__file__.replace("families/qwen_edit.py", "models/profiles/tiny-qwen-edit.toml")).read()
    plain = text.replace('name = "tiny-qwen-edit"', 'name = "qwen-no-relight"').split("# a relight LoRA")[0]
    (folder / "qwen-no-relight.toml").write_text(plain)
    backend = make_backend()
    job = relight_job(profile="tiny-qwen-edit", characters=relight_job()["characters"][1:], controls={})
    (with_lora, record), = relit(backend, job).values()
    assert record["relight"]["lora"] == "draft_lora_qwen_edit/pytorch_lora_weights.safetensors"
    assert {"relight": 1.0} in seen
    (without, other), = relit(backend, dict(job, profile="qwen-no-relight")).values()
    assert other["relight"]["lora"] is None and not np.array_equal(with_lora, without)
    seen.clear()
    relit(backend, posed(profile="tiny-qwen-edit"))
    assert seen and all("relight" not in active for active in seen)  # other jobs run without it


def test_a_shot_relit_after_compositing_comes_back_with_its_unlit_composite(make_backend):
    backend = make_backend()
    job = shot_job(hands={"enabled": False},
                   relight={"light": light(), "view": VIEW, "strength": 0.4, "shading": 1.0, "margin": 0.2})
    client, headers, status = completed_job(backend, job)
    assert status["results"] == ["shot", "shot_unlit"]
    shown = {}
    for name in status["results"]:
        r = client.get(f"/jobs/{status['id']}/results/{name}", headers=headers)
        shown[name] = (image_of(r), json.loads(Image.open(io.BytesIO(r.content)).text["characterforge"]))
    (lit, record), (unlit, unlit_record) = shown["shot"], shown["shot_unlit"]
    outside = ~touched(4 + 2)
    assert np.array_equal(lit[outside], unlit[outside]) and np.array_equal(lit[outside], pattern()[outside])
    assert not np.array_equal(lit[LEFT > 0], unlit[LEFT > 0])
    assert record["relight"]["shading"]["amount"] == 1.0 and "relight" not in unlit_record
    assert "image" not in record["job"]["relight"]["light"]  # the light reference's picture stays out of the PNG


def post(backend, job):
    client = TestClient(backend.app)
    return client.post("/jobs", json=job, headers={"x-characterforge-token": backend.token})


@pytest.mark.parametrize("changes, field, words", [
    ({"light": light(image=light_png(black=True))}, "light.image", "shows no light"),
    ({"image": b64(pattern(w=W // 2))}, "image", f"is {W // 2}x{H} but width x height say {W}x{H}"),
    ({"light": light(image=light_png(size=(W, W)))}, "light.image", f"is {W}x{W}: not the shape"),
    ({"light": light(view=dict(VIEW, camera="Side"))}, "light.view", "rendered from camera 'Side'"),
    ({"light": light(view=dict(VIEW, matrix=[*VIEW["matrix"][:3], 0.5, *VIEW["matrix"][4:]]))}, "light.view",
     "has moved or turned since the picture was made"),
    ({"light": light(view=dict(VIEW, resolution=[W, W]))}, "light.view", "another frame shape"),
    ({"light": light(normal=b64(pattern(w=W, h=W)))}, "light.normal", f"is {W}x{W}: not the shape"),
    ({"characters": []}, "characters", "nothing to relight"),
    ({"characters": [{"name": "Ghost", "prompt": "", "mask": b64(np.zeros((H, W), np.uint8))}]},
     "characters[0].mask", "marks nothing"),
    ({"identity": identity((1, 2, 3))}, "identity", "not used by a relight"),
])
def test_bad_inputs_are_refused_before_queueing(make_backend, changes, field, words):
    answer = post(make_backend(), relight_job(**changes))
    assert answer.status_code == 400, answer.json()
    body = answer.json()
    assert body["details"]["field"] == field and words in body["message"] and body["fix"], body


def test_a_shot_whose_light_shows_nothing_is_refused(make_backend):
    job = shot_job(relight={"light": light(image=light_png(black=True)), "view": VIEW})
    answer = post(make_backend(), job)
    assert answer.status_code == 400 and answer.json()["details"]["field"] == "relight.light.image"
    assert "add a light" in answer.json()["fix"]


def test_a_relight_spec_is_one_type_for_both_sides():
    from characterforge_addon.core.spec.job_spec import relight_spec, validate_job
    made = relight_spec(base64.b64decode(b64(pattern())), W, H, VIEW,
                        {"png": base64.b64decode(light_png()), "view": VIEW, "white": 2.0, "key": [-0.7, 0.5, 0.5],
                         "characters": [{"name": "Hero", "key": [-0.7, 0.5, 0.5]}]},
                        [{"name": "Hero", "mask": base64.b64decode(b64(LEFT))}], name="relit")
    assert validate_job(made) == made and made["characters"][0]["name"] == "Hero" and made["strength"] == 0.35
