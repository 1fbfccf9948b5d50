"""The edit families (Qwen-Image-Edit, FLUX.2 klein) on tiny random weights (tokenizers and
processors made in code): posed characters, sheets, backgrounds and expressions through the
HTTP API, the character's pictures going in as input pictures and changing the output, the jobs
they cannot do refused before queueing in favour of a profile that can, and the face pass."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from characterforge_addon.backend.families import edit, qwen_edit
from conftest import completed_job, image_of, png_b64, spec
from test_background_job import job as background_job
from test_sheet_job import sheet_spec
from test_shot_job import assert_only_characters_and_hands_changed, results, shot_job

EDIT = "tiny-qwen-edit"
FAMILIES = pytest.mark.parametrize("profile, family", [("tiny-qwen-edit", "qwen_edit"),
                                                       ("tiny-flux2-klein", "flux2_klein")])


def picture(backend, job):
    client, headers, status = completed_job(backend, job)
    answer = client.get(f"/jobs/{status['id']}/results/{status['results'][0]}", headers=headers)
    return image_of(answer), json.loads(Image.open(io.BytesIO(answer.content)).text["characterforge"]), status


@FAMILIES
def test_a_posed_character_on_an_edit_family_takes_the_characters_pictures(make_backend, profile, family):
    backend = make_backend()
    red = spec(profile=profile, identity={"images": [png_b64(64, 64, (250, 20, 20))]})
    first, record, status = picture(backend, red)
    assert first.shape == (64, 64, 3) and record["profile"] == profile and record["face_pass"]["profile"] == "tiny"
    again, _, _ = picture(backend, red)
    assert np.array_equal(first, again)  # same seed, same pictures: the same image
    blue, _, _ = picture(backend, spec(profile=profile, identity={"images": [png_b64(64, 64, (20, 20, 250))]}))
    assert not np.array_equal(first, blue)  # the reference picture reaches the model
    pose, _, _ = picture(backend, spec(profile=profile, identity={"images": [png_b64(64, 64, (250, 20, 20))]},
                                       controls={"openpose": {"image": png_b64(64, 64, (255, 255, 255))}}))
    assert not np.array_equal(first, pose)  # and so does the pose map


@FAMILIES
def test_a_sheet_and_a_background_with_depth_run_on_an_edit_family(make_backend, profile, family):
    backend = make_backend()
    sheet = sheet_spec(profile=profile, identity={"images": [png_b64(64, 64, (250, 20, 20))]},
                       upscale={"factor": 1, "strength": 0}, faces={"enabled": False})
    client, headers, status = completed_job(backend, sheet)
    assert {"sheet", "view_front", "face_front"} <= set(status["results"])
    image, record, _ = picture(backend, background_job(profile=profile, sharp=False,
                                                       controls={"depth": {"image": png_b64(128, 64)}}))
    assert image.shape == (64, 128, 3) and record["set_depth"]


@pytest.mark.parametrize("job, cannot", [
    (shot_job(profile=EDIT, composite={"mode": "cutout", "harmonize": 0.3}), "redrawing a picture"),
    (sheet_spec(profile=EDIT), "redrawing a picture"),
    (background_job(profile=EDIT), "pictures from a prompt alone"),
])
def test_what_an_edit_family_cannot_do_is_refused_with_the_profiles_that_can(make_backend, job, cannot):
    from fastapi.testclient import TestClient
    backend = make_backend()
    answer = TestClient(backend.app).post("/jobs", json=job, headers={"x-characterforge-token": backend.token})
    assert answer.status_code == 400, answer.json()
    body = answer.json()
    assert body["details"]["field"] == "profile" and cannot in body["message"]
    assert f"profile {EDIT} (family qwen_edit)" in body["message"] and "tiny" in body["fix"]


@FAMILIES
def test_an_expression_on_an_edit_family_changes_only_the_faces_box(make_backend, profile, family):
    face = [16, 16, 48, 48]
    base = np.asarray(Image.fromarray(np.random.default_rng(3).integers(0, 255, (96, 96, 3), dtype=np.uint8)))
    buf = io.BytesIO()
    Image.fromarray(base).save(buf, "PNG")
    import base64
    job = spec(kind="expression", profile=profile, width=96, height=96, image=base64.b64encode(buf.getvalue()).decode(),
               expression="happy", face_box=face, detector="rig", controls={},
               identity={"images": [png_b64(64, 64, (250, 20, 20))]})
    out, record, _ = picture(make_backend(), job)
    x0, y0, x1, y1 = record["changed_within"]
    outside = np.ones(base.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], base[outside])  # byte-identical outside the feathered box
    assert not np.array_equal(out[y0:y1, x0:x1], base[y0:y1, x0:x1])
    assert "happy" in record["prompt_used"] and record["strength_used"] is None  # an edit decides how much


def test_the_instruction_says_which_picture_is_which():
    job = {"prompt": "a knight", "style": ""}
    assert edit.instruction(["openpose"], 2, job) == (
        "Picture 1 is an OpenPose skeleton. Draw the same character as in pictures 2 to 3: the same face, hair, outfit, "
        "colours and props, in exactly the pose of the skeleton in picture 1. a knight")
    assert edit.instruction(["depth"], 0, job) == (
        "Picture 1 is a depth map. Draw the character, following the depth map. a knight")
    assert edit.instruction(["depth", "lineart"], 1, dict(job, prompt="a red car")) == (
        "Picture 1 is a depth map. Picture 2 is a line drawing of its outlines. Draw the same character as in "
        "picture 3: the same shape, colours, materials and markings, with exactly the shape and outlines of "
        "picture 1 and picture 2. a red car")


def test_the_face_pass_keeps_the_higher_identity_score_and_records_both(make_backend, tmp_path):
    """tiny-qwen-edit names the tiny SDXL profile as its face_refine; the same profile without it
    draws the picture the pass starts from."""
    backend = make_backend()
    folder = tmp_path / "data" / "profiles"
    folder.mkdir(exist_ok=True)
    text = open(qwen_edit.__file__.replace("families/qwen_edit.py", "models/profiles/tiny-qwen-edit.toml")).read()
    (folder / "edit-plain.toml").write_text(text.replace('name = "tiny-qwen-edit"', 'name = "edit-plain"')
                                            .replace('face_refine = "tiny"', ""))
    decided = set()
    for seed in (1, 2, 3, 4):
        job = spec(profile=EDIT, seed=seed, identity={"images": [png_b64(64, 64, (250, 250, 250))]})
        refined, record, _ = picture(backend, job)
        plain, plain_record, _ = picture(backend, dict(job, profile="edit-plain"))
        passed = record["face_pass"]
        assert passed["profile"] == "tiny" and "face_pass" not in plain_record
        if passed["kept"] == "edit" and "why" in passed:
            assert np.array_equal(refined, plain)
            continue
        before, after = passed["identity_edit"]["similarity"], passed["identity_refined"]["similarity"]
        assert passed["kept"] == ("refined" if after > before else "edit")
        assert np.array_equal(refined, plain) == (passed["kept"] == "edit")
        assert record["scores"]["identity"]["similarity"] == (after if after > before else before)
        decided.add(passed["kept"])
    assert decided  # at least one picture had a face to redraw and was judged by its score


def test_a_flux2_cut_out_shot_with_harmonizing_is_refused_naming_what_it_cannot_do(make_backend):
    from fastapi.testclient import TestClient
    backend = make_backend()
    job = shot_job(profile="tiny-flux2-klein", composite={"mode": "cutout", "harmonize": 0.3})
    answer = TestClient(backend.app).post("/jobs", json=job, headers={"x-characterforge-token": backend.token})
    body = answer.json()
    assert answer.status_code == 400 and "(family flux2_klein) cannot do redrawing a picture" in body["message"]


@FAMILIES
def test_a_shot_on_an_edit_family_changes_only_the_characters_and_hands(make_backend, profile, family):
    """Each masked pass is an edit of the picture with the pose map and the character's
    picture after it, pasted by its mask: the background outside stays byte-identical."""
    backend = make_backend()
    (pixels, record), = results(backend, shot_job(profile=profile)).values()
    assert_only_characters_and_hands_changed(pixels, record)
    cut = results(backend, shot_job(profile=profile, composite={"mode": "cutout", "harmonize": 0},
                                           hands={"enabled": False}))
    assert cut["shot_cutout_Hero"][0].shape[2] == 4


def test_a_region_instruction_names_every_picture():
    assert edit.region_instruction(["openpose"], 1, {"prompt": "a knight"}) == (
        "Edit picture 1 (picture 2 is an OpenPose skeleton): a knight, following picture 2, the same person as in "
        "picture 3; change nothing else.")
