"""Scores on real outputs (tiny profile, tiny insightface-shaped models): identity against the
references, the pose score saying which detector is missing, and the retry rule."""

import io
import json

from fastapi.testclient import TestClient
from PIL import Image

from conftest import completed_job, png_b64, spec


def record_of(client, headers, job_id, name):
    png = client.get(f"/jobs/{job_id}/results/{name}", headers=headers).content
    return json.loads(Image.open(io.BytesIO(png)).text["characterforge"])


BODY = [[10.0 + i, 20.0 + 2 * i, 1.0] for i in range(18)]


def test_posed_outputs_carry_identity_and_pose_scores(make_backend):
    job = spec(identity={"images": [png_b64(64, 64, (250, 250, 250))], "scale": 0.8}, keypoints={"Hero": BODY})
    client, headers, status = completed_job(make_backend(), job)
    record = record_of(client, headers, status["id"], status["results"][0])
    identity = record["scores"]["identity"]
    assert identity["status"] == "ok" and -1.0 <= identity["similarity"] <= 1.0
    assert "closest_reference" in identity and isinstance(identity["copy_paste"], bool)
    pose = record["scores"]["pose"]
    assert pose["status"] == "unavailable" and "lllyasviel/Annotators" in pose["reason"]  # no detector weights here


def test_retry_tries_new_seeds_up_to_the_limit_and_keeps_the_best(make_backend):
    job = spec(seed=11, identity={"images": [png_b64(64, 64, (250, 250, 250))]},
               retry={"min_identity": 1.0, "max_tries": 3})  # 1.0 is never reached: every try runs
    client, headers, status = completed_job(make_backend(), job)
    record = record_of(client, headers, status["id"], status["results"][0])
    tries = record["tries"]
    assert [t["seed"] for t in tries] == [11, 11 + 7919, 11 + 2 * 7919]
    best = max(tries, key=lambda t: t["identity"])
    assert record["seed"] == best["seed"] and record["scores"]["identity"]["similarity"] == best["identity"]


def test_without_identity_nothing_is_scored_or_retried(make_backend):
    client, headers, status = completed_job(make_backend(), spec(retry={"min_identity": 0.9, "max_tries": 3}))
    record = record_of(client, headers, status["id"], status["results"][0])
    assert record["scores"] == {} and len(record["tries"]) == 1


def test_bad_score_fields_are_refused(make_backend):
    backend = make_backend()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    for change, field in (({"keypoints": {"Hero": BODY[:5]}}, "keypoints.Hero"),
                          ({"keypoints": {"../x": BODY}}, "keypoints.../x"),
                          ({"retry": {"max_tries": 50}}, "retry.max_tries"),
                          ({"identity": {"images": [png_b64()], "embedding": ["x"] * 512}}, "identity.embedding[0]")):
        response = client.post("/jobs", json=spec(**change), headers=headers)
        assert response.status_code == 400 and response.json()["details"]["field"] == field, response.json()


def test_pose_score_runs_the_real_detector_when_its_weights_are_cached(make_backend, tmp_path, monkeypatch):
    """controlnet_aux's OpenPose detector, loaded from a Hugging Face cache layout holding
    random weights of the published shapes: the whole path runs (it finds no person in noise)."""
    import torch
    from controlnet_aux.open_pose.face import FaceNet
    from controlnet_aux.open_pose.model import bodypose_model, handpose_model

    from characterforge_addon.backend.models import models
    snapshot = tmp_path / "hub" / "models--lllyasviel--Annotators" / "snapshots" / "0"
    snapshot.mkdir(parents=True)
    torch.manual_seed(0)
    for name, cls, prefixed in (("body_pose_model.pth", bodypose_model, True),
                                ("hand_pose_model.pth", handpose_model, True), ("facenet.pth", FaceNet, False)):
        state = cls().state_dict()
        if prefixed:  # the published files name layers without their block (controlnet_aux adds it back)
            state = {k.split(".", 1)[1]: v for k, v in state.items()}
        torch.save(state, snapshot / name)
    monkeypatch.setattr(models, "hf_cache_dir", lambda: str(tmp_path / "hub"))
    client, headers, status = completed_job(make_backend(), spec(keypoints={"Hero": BODY}))
    pose = record_of(client, headers, status["id"], status["results"][0])["scores"]["pose"]
    assert pose == {"Hero": {"status": "no_person", "reason": "the detector found no person in the output"}}
