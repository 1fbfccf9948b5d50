"""The `animation` job on the tiny video profiles through the real backend: pictures sent first
(PUT /pictures), a segment made end to end, a second segment carried over the model's own way (seen
in what the tiny model is given), and the limits refused before queueing with the fix."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from characterforge_addon.core.spec import animation_spec, job_spec
from characterforge_addon.core.image_io import encode_png

from conftest import wait

VIDEO_PROFILES = ("tiny-wan-vace", "tiny-wan-animate")


def picture(seed, size=64, channels=3):
    rng = np.random.default_rng(seed)
    shape = (size, size, channels) if channels > 1 else (size, size)
    return encode_png(rng.integers(0, 256, shape, dtype=np.uint8))


def mask_png(size=64):
    mask = np.zeros((size, size), np.uint8)
    mask[16:56, 20:44] = 255
    return encode_png(mask)


def frames(count, seed=0, maps=("openpose", "mask", "face", "background")):
    makers = {"openpose": lambda i: picture(seed * 1000 + i), "depth": lambda i: picture(5000 + i, channels=1),
              "mask": lambda i: mask_png(), "face": lambda i: picture(9000 + i, 16),
              "background": lambda i: picture(7000 + i)}
    return [{m: makers[m](i) for m in maps} for i in range(count)]


def send(client, headers, media):
    for sha, data in media.items():
        r = client.put(f"/pictures/{sha}", content=data, headers=headers)
        assert r.status_code == 201, r.text


def submit(backend, spec, media):
    from fastapi.testclient import TestClient
    if not backend.runner.running():
        backend.start()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    send(client, headers, media)
    return client, headers, client.post("/jobs", json=spec, headers=headers)


def run_segment(backend, spec, media):
    client, headers, r = submit(backend, spec, media)
    assert r.status_code == 201, r.json()
    status = wait(client, headers, r.json()["id"], timeout=300)
    assert status["status"] == "completed", status["error"]
    pictures = {n: client.get(f"/jobs/{r.json()['id']}/results/{n}", headers=headers).content
                for n in status["results"]}
    return status, pictures


@pytest.mark.parametrize("profile", VIDEO_PROFILES)
def test_a_segment_then_the_next_carried_over_on_each_tiny_video_profile(make_backend, profile):
    """Segment 0 makes frames 1-9; segment 1 (frames 9-13, frame 9 carried) makes 10-13 only.
    The model is given the carried frame its own way: VACE as a kept first frame of its video
    (mask black), Animate as its previous-segment conditioning (mask marking it given)."""
    backend = make_backend(profile=profile)
    seen = {}
    engine = backend.engine_for(profile)
    pipe = engine.base()
    if profile == "tiny-wan-vace":
        original = pipe.preprocess_conditions

        def spy(video=None, mask=None, *args, **kwargs):
            seen.update(video=[np.asarray(v) for v in video], mask=[np.asarray(m) for m in mask])
            return original(video, mask, *args, **kwargs)
        pipe.preprocess_conditions = spy
    else:
        original = pipe.get_i2v_mask

        def spy(batch_size, latent_t, latent_h, latent_w, mask_len=1, *args, **kwargs):
            if latent_t > 1:  # the previous-segment mask (the reference picture's has one latent frame)
                seen["mask_len"] = mask_len
            return original(batch_size, latent_t, latent_h, latent_w, mask_len, *args, **kwargs)
        pipe.get_i2v_mask = spy
        conditioning = pipe.prepare_prev_segment_cond_latents

        def given(prev_segment_cond_video=None, *args, **kwargs):
            seen["previous"] = None if prev_segment_cond_video is None else prev_segment_cond_video.clone()
            return conditioning(prev_segment_cond_video, *args, **kwargs)
        pipe.prepare_prev_segment_cond_latents = given

    shot = frames(13, seed=1)
    segments = animation_spec.plan_segments(range(1, 14), 9, 1)
    assert [(s["frames"][0], s["frames"][-1], s["carried"]) for s in segments] == [(1, 9, 0), (9, 13, 1)]
    made = {}
    for segment in segments:
        pieces = [shot[f - 1] for f in segment["frames"]]
        previous = [made[f] for f in segment["frames"][:segment["carried"]]]
        spec, media = job_spec.animation_segment_spec(
            "a knight walking", pieces, 64, 64, previous=previous, references=[picture(42)], seed=3, steps=2,
            profile=profile, name="walk", segment={"index": segment["index"], "count": len(segments),
                                                    "first_frame": segment["frames"][0]})
        seen.clear()
        status, pictures = run_segment(backend, spec, media)
        new = segment["frames"][segment["carried"]:]
        assert sorted(status["results"]) == [f"walk_{f:04d}" for f in new]
        for f in new:
            assert np.asarray(Image.open(io.BytesIO(pictures[f"walk_{f:04d}"]))).shape == (64, 64, 3)
            made[f] = pictures[f"walk_{f:04d}"]
        if profile == "tiny-wan-vace":
            carried = segment["carried"]
            assert len(seen["video"]) == len(pieces)  # 9 and 5 frames: the model's 4k+1 already
            for i in range(carried):
                assert np.array_equal(seen["video"][i], np.asarray(Image.open(io.BytesIO(previous[i]))))
                assert not seen["mask"][i].any()  # kept as given
            assert all(m.any() for m in seen["mask"][carried:])  # the characters' region made
        else:
            assert seen["mask_len"] == segment["carried"]
            if segment["carried"]:
                given = ((seen["previous"][0, :, 0].permute(1, 2, 0) + 1) * 127.5).round().numpy()
                assert np.abs(given - np.asarray(Image.open(io.BytesIO(previous[0])))).max() <= 1
            else:
                assert seen["previous"] is None
    record = json.loads(Image.open(io.BytesIO(made[13])).text["characterforge"])
    assert record["frame"] == 13 and record["segment"]["carried"] == 1 and record["job"]["frames"] == 5


def test_a_short_segment_takes_as_many_pictures_as_its_latent_frames(make_backend):
    """A 5-frame segment (two latent frames) given three pictures of the character: VACE takes the
    best two (diffusers pads its mask with one latent frame per picture, cut from the video's own:
    three failed on a size mismatch, as make demo's walk did); a 9-frame one takes all three."""
    backend = make_backend(profile="tiny-wan-vace")
    pipe = backend.engine_for("tiny-wan-vace").base()
    given = []
    original = pipe.prepare_masks

    def spy(mask, reference_images=None, *args, **kwargs):
        given.append([len(r) for r in reference_images or []])
        return original(mask, reference_images, *args, **kwargs)
    pipe.prepare_masks = spy
    for count, seed, takes in ((5, 4, 2), (9, 5, 3)):
        spec, media = job_spec.animation_segment_spec(
            "a knight walking", frames(count, seed=seed), 64, 64, references=[picture(seed * 10 + i) for i in range(3)],
            seed=3, steps=2, profile="tiny-wan-vace", name=f"walk{count}")
        status, pictures = run_segment(backend, spec, media)
        assert sorted(status["results"]) == [f"walk{count}_{f:04d}" for f in range(1, count + 1)]
        assert given[-1] == [takes]


def test_the_models_window_and_carry_rules_are_refused_before_queueing_with_the_fix(make_backend):
    backend = make_backend(profile="tiny-wan-vace")
    one = frames(1, maps=("openpose",))[0]
    spec, media = job_spec.animation_segment_spec("a knight", [one] * 90, 64, 64, mode="animate",
                                                profile="tiny-wan-vace")
    _, _, r = submit(backend, spec, media)
    assert r.status_code == 400 and "window of 81 frames" in r.json()["message"]
    assert "at most 81" in r.json()["fix"]
    shot = frames(13)
    spec, media = job_spec.animation_segment_spec("a knight", shot, 64, 64, previous=[picture(1)] * 3,
                                                references=[picture(2)], profile="tiny-wan-animate")
    _, _, r = submit(backend, spec, media)
    assert r.status_code == 400 and "1 or 5" in r.json()["message"], r.json()
    spec, media = job_spec.animation_segment_spec("a knight", shot, 64, 64, profile="tiny-wan-animate")
    _, _, r = submit(backend, spec, media)
    assert r.status_code == 400 and r.json()["details"]["field"] == "references"
    spec, media = job_spec.animation_segment_spec("a knight", frames(9, seed=77), 64, 64, profile="tiny-wan-vace")
    from fastapi.testclient import TestClient
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    r = client.post("/jobs", json=spec, headers=headers)  # its pictures never sent
    assert r.status_code == 400 and "PUT /pictures" in r.json()["fix"]


@pytest.mark.parametrize("change, field, words", [
    ({"width": 72}, "width", "multiple of 16"),
    ({"frames": "many"}, "frames", "must list 1 to 129"),
    ({"mode": "replace", "frames": [{"openpose": "a" * 64}]}, "mode", "background and mask"),
    ({"control": "depth"}, "control", "no depth map"),
    ({"previous": ["b" * 64] * 2}, "previous", "nothing new"),
    ({"prompt": "", "references": []}, "prompt", "is empty"),
    ({"width": 1280, "height": 1280}, "width", "pixels"),
])
def test_the_spec_limits_are_declared_and_enforced(make_backend, change, field, words):
    from characterforge_addon.core.spec.job_spec import JobSpecError, json_schemas, validate_job
    spec = {"kind": "animation", "prompt": "a knight", "profile": "tiny-wan-vace", "mode": "animate",
            "frames": [{"openpose": "a" * 64}, {"openpose": "c" * 64}], **change}
    with pytest.raises(JobSpecError) as caught:
        validate_job(spec)
    assert caught.value.field.startswith(field) and words in str(caught.value)
    schema = json_schemas()["animation"]["properties"]
    assert schema["frames"]["maxItems"] == animation_spec.LIMITS["max_frames"]
    assert schema["width"]["multipleOf"] == 16 and schema["width"]["maximum"] == 1280


def test_a_profile_that_cannot_animate_is_refused_naming_those_that_can(make_backend):
    backend = make_backend(profile="tiny")
    spec, media = job_spec.animation_segment_spec("a knight", frames(9), 64, 64, profile="tiny")
    _, _, r = submit(backend, spec, media)
    assert r.status_code == 400, r.json()
    body = r.json()
    assert "cannot do animating a character" in body["message"]
    for name in ("tiny-wan-vace", "tiny-wan-animate", "wan-vace", "wan-animate"):
        assert name in body["fix"]
    # depth steers only VACE: Animate is refused naming the VACE profiles
    spec, media = job_spec.animation_segment_spec("a knight", frames(9, maps=("openpose", "depth")), 64, 64,
                                                mode="animate", control="depth", references=[picture(3)],
                                                profile="tiny-wan-animate")
    _, _, r = submit(backend, spec, media)
    assert r.status_code == 400 and "depth" in r.json()["message"] and "tiny-wan-vace" in r.json()["fix"]
    assert "tiny-wan-animate" not in r.json()["fix"]


def test_pictures_are_kept_only_as_the_png_their_name_says(make_backend):
    from fastapi.testclient import TestClient
    backend = make_backend(profile="tiny-wan-vace")
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    png = picture(11)
    name = animation_spec.media_name(png)
    assert client.get(f"/pictures/{name}", headers=headers).status_code == 404
    r = client.put(f"/pictures/{'0' * 64}", content=png, headers=headers)  # another file's name
    assert r.status_code == 400 and "SHA-256" in r.json()["message"]
    text = b"not a picture"
    r = client.put(f"/pictures/{animation_spec.media_name(text)}", content=text, headers=headers)
    assert r.status_code == 400 and "not a PNG" in r.json()["message"]
    r = client.put(f"/pictures/{name}", content=b"x", headers=dict(headers, **{"content-length": str(2**30)}))
    assert r.status_code == 413
    assert client.put(f"/pictures/{name}", content=png, headers=headers).json()["kept"] == "now"
    assert client.put(f"/pictures/{name}", content=png, headers=headers).json()["kept"] == "already"
    assert client.get(f"/pictures/{name}", headers=headers).json()["bytes"] == len(png)
    assert client.put(f"/pictures/{name}", content=png).status_code == 401  # the token, as everywhere
