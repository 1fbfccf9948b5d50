"""The character sheet job on the tiny profile: every stage, the reference path, the face
path through tiny insightface-shaped ONNX models, and the cut views and faces."""

import io
import json
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import image_of, png_b64


def sheet_spec(**changes):
    out = {"kind": "character_sheet", "prompt": "a knight", "seed": 3, "steps": 2, "width": 128, "height": 96,
           "profile": "tiny", "controls": {"openpose": {"image": png_b64(128, 96)}, "depth": {"image": png_b64(128, 96)}},
           "views": [{"name": "front", "kind": "body", "box": [4, 4, 60, 60], "face_box": [20, 6, 40, 26]},
                     {"name": "back", "kind": "body", "box": [64, 4, 124, 60], "face_box": None},
                     {"name": "face_front", "kind": "face", "box": [8, 64, 40, 92], "face_box": [10, 66, 38, 90]}],
           "upscale": {"factor": 2, "strength": 0.5, "tile": 128, "overlap": 32},
           "faces": {"enabled": True, "strength": 0.5, "size": 64}}
    out.update(changes)
    return out


def metadata_of(png):
    return json.loads(Image.open(io.BytesIO(png)).text["characterforge"])


def run_job(backend, spec):
    if not backend.runner.running():
        backend.start()
    client = TestClient(backend.app)
    headers = {"x-characterforge-token": backend.token}
    response = client.post("/jobs", json=spec, headers=headers)
    assert response.status_code == 201, response.json()
    job_id = response.json()["id"]
    status = None
    deadline = time.monotonic() + 300
    while status is None or status["status"] not in ("completed", "failed", "canceled"):
        assert time.monotonic() < deadline, status
        status = client.get(f"/jobs/{job_id}", headers=headers).json()
        time.sleep(0.02)
    assert status["status"] == "completed", status["error"]
    results = {name: client.get(f"/jobs/{job_id}/results/{name}", headers=headers) for name in status["results"]}
    return status, results


def test_sheet_job_runs_every_stage_and_cuts_views_and_faces(make_backend):
    status, results = run_job(make_backend(), sheet_spec())
    assert set(status["results"]) == {"sheet", "sheet_base", "view_front", "view_back", "face_front"}
    assert image_of(results["sheet_base"]).shape == (96, 128, 3)
    sheet = image_of(results["sheet"])
    assert sheet.shape == (192, 256, 3)  # upscaled 2x
    assert image_of(results["view_front"]).shape == (112, 112, 3)  # its box, scaled 2x
    assert image_of(results["view_back"]).shape == (112, 120, 3)
    face = image_of(results["face_front"])
    assert face.shape[0] == face.shape[1] >= 56  # a square around the face box, grown
    record = metadata_of(results["sheet"].content)
    assert record["faces"]["size"] == 64  # as asked; 0 would be the profile's native size
    assert record["faces"]["source"].startswith("detector")  # the tiny profile carries a tiny insightface pack
    assert record["faces"]["boxes"]
    assert record["scores"]["identity"]["reason"] == "unavailable: fewer than two faces with an embedding"
    face_record = metadata_of(results["face_front"].content)
    assert face_record["kind"] == "face" and len(face_record["embedding"]) == 512
    assert abs(np.linalg.norm(face_record["embedding"]) - 1) < 1e-3


def test_stages_change_what_they_should(make_backend):
    """Upscale strength 0 is a plain resize; the face pass changes pixels only near the faces."""
    backend = make_backend()
    plain = sheet_spec(upscale={"factor": 2, "strength": 0.0, "tile": 128, "overlap": 32},
                       faces={"enabled": False})
    _, results = run_job(backend, plain)
    base, sheet = image_of(results["sheet_base"]), image_of(results["sheet"])
    resized = np.asarray(Image.fromarray(base).resize((256, 192), Image.LANCZOS))
    assert np.array_equal(sheet, resized)

    faces = sheet_spec(upscale={"factor": 2, "strength": 0.0, "tile": 128, "overlap": 32},
                       faces={"enabled": True, "strength": 0.6, "size": 64, "detector": "rig"})
    _, detailed = run_job(backend, faces)
    after = image_of(detailed["sheet"])
    changed = np.abs(after.astype(int) - sheet.astype(int)).max(axis=2) > 0
    assert changed.any()
    record = metadata_of(detailed["sheet"].content)
    assert record["faces"]["source"].startswith("rig")
    _, native = run_job(backend, sheet_spec(upscale={"factor": 1}, faces={"enabled": True, "detector": "rig"}))
    assert metadata_of(native["sheet"].content)["faces"]["size"] == 256  # the tiny profile's native_size
    allowed = np.zeros_like(changed)
    for x0, y0, x1, y1 in record["faces"]["boxes"]:  # the grown square around each face box
        side = max(x1 - x0, y1 - y0) * 1.25 + 8
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        allowed[int(max(0, cy - side / 2)):int(cy + side / 2) + 1, int(max(0, cx - side / 2)):int(cx + side / 2) + 1] = True
    assert not (changed & ~allowed).any()


def test_upscale_tiles_blend_without_seams():
    from characterforge_addon.backend.jobs.sheet import feather, tile_boxes
    boxes = tile_boxes(3072, 2048, 1024, 128)
    covered = np.zeros((2048, 3072))
    for x0, y0, x1, y1 in boxes:
        assert x1 - x0 <= 1024 and y1 - y0 <= 1024 and x0 % 8 == 0 and y0 % 8 == 0
        covered[y0:y1, x0:x1] += feather(x1 - x0, y1 - y0, 128 * (x0 > 0), 128 * (y0 > 0), 128 * (x1 < 3072),
                                         128 * (y1 < 2048))
    assert covered.min() > 0.2  # every pixel weighted; blending divides by the sum
    assert len(boxes) == 12


def test_reference_picture_conditions_the_sheet(make_backend):
    backend = make_backend()
    no_ref = sheet_spec(upscale={"factor": 1}, faces={"enabled": False})
    _, plain = run_job(backend, no_ref)
    with_ref = sheet_spec(prompt="", upscale={"factor": 1}, faces={"enabled": False},
                          identity={"images": [png_b64(64, 64, (255, 200, 10))], "scale": 1.0})
    _, referenced = run_job(backend, with_ref)
    assert not np.array_equal(image_of(plain["sheet"]), image_of(referenced["sheet"]))


@pytest.mark.parametrize("change, field", [
    ({"views": []}, "views"),
    ({"views": [{"name": "a", "kind": "body", "box": [0, 0, 500, 10]}]}, "views[0].box"),
    ({"views": [{"name": "../x", "kind": "body", "box": [0, 0, 5, 5]}]}, "views[0].name"),
    ({"upscale": {"factor": 3}}, "upscale.factor"),
    ({"faces": {"detector": "magic"}}, "faces.detector"),
    ({"prompt": ""}, "prompt"),
])
def test_bad_sheet_specs_name_the_field(make_backend, change, field):
    backend = make_backend()
    client = TestClient(backend.app)
    response = client.post("/jobs", json=sheet_spec(**change), headers={"x-characterforge-token": backend.token})
    assert response.status_code == 400
    assert response.json()["details"]["field"] == field


def test_progress_names_every_stage_in_order(make_backend):
    import base64
    import threading

    from characterforge_addon.backend.jobs import sheet
    from characterforge_addon.core.spec.job_spec import validate_job
    backend = make_backend()
    engine = backend.engine_for("tiny")
    spec = validate_job(sheet_spec())
    pngs = {n: base64.b64decode(c["image"]) for n, c in spec["controls"].items()}

    class Recorder:
        def __init__(self):
            self.stages, self.steps = [], []

        def stage(self, name):
            self.stages.append(name)

        def step(self, step, total, elapsed):
            self.steps.append((self.stages[-1], step, total))

    progress = Recorder()
    sheet.run(engine, spec, pngs, progress, threading.Event(), engine.face_tools())
    names = [n.split(":")[0] for n in progress.stages]
    assert names[0] == "sheet" and names.index("upscale") < names.index("faces") < names.index("cutting views and faces")
    assert "upscale: tile 6 of 6" in progress.stages  # 256x192 in 128-pixel tiles overlapping by 32: 3 x 2
    assert any(s.startswith("faces: face 1 of ") for s in progress.stages)
    assert {stage.split(":")[0] for stage, _, _ in progress.steps} == {"sheet", "upscale", "faces"}
    assert all(1 <= step <= total for _, step, total in progress.steps)
