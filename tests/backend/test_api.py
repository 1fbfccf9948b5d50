"""The HTTP API against the real app and real tiny pipelines."""

import io
import os
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from conftest import image_of, png_b64, spec, wait


@pytest.fixture
def api(make_backend):
    backend = make_backend()
    backend.start()
    return backend, TestClient(backend.app), {"x-characterforge-token": backend.token}


def test_a_job_runs_to_a_png_that_carries_its_parameters(api):
    backend, client, h = api
    r = client.post("/jobs", json=spec(seed=5, negative_prompt="blurry"), headers=h)
    assert r.status_code == 201
    status = wait(client, h, r.json()["id"])
    assert status["status"] == "completed" and status["step"] == 2 and status["total"] == 2
    assert status["results"] == ["result"]
    png = client.get(f"/jobs/{status['id']}/results/result", headers=h)
    assert png.headers["content-type"] == "image/png"
    img = Image.open(io.BytesIO(png.content))
    assert img.size == (64, 64)
    assert img.text["parameters"].startswith("a knight\nNegative prompt: blurry\nSteps: 2, Sampler: Euler")
    record = json.loads(img.text["characterforge"])
    assert record["seed"] == 5 and record["profile"] == "tiny" and record["produces_noise"]
    assert "image" not in record["job"]["controls"]["openpose"] and record["versions"]["diffusers"]


def test_same_seed_same_image_other_seed_other_image(api):
    backend, client, h = api
    ids = [client.post("/jobs", json=spec(seed=s), headers=h).json()["id"] for s in (3, 3, 4)]
    images = [image_of(client.get(f"/jobs/{wait(client, h, i)['id']}/results/result", headers=h)) for i in ids]
    assert (images[0] == images[1]).all() and not (images[0] == images[2]).all()


def test_batch_gives_one_result_per_image(api):
    backend, client, h = api
    status = wait(client, h, client.post("/jobs", json=spec(batch=2, name="take"), headers=h).json()["id"])
    assert status["results"] == ["take_0", "take_1"]


def test_depth_and_hand_depth_controls(api):
    backend, client, h = api
    controls = {"openpose": {"image": png_b64()}, "depth": {"image": png_b64(), "strength": 0.4},
                "hand_depth": {"image": png_b64(32, 32), "strength": 0.6, "start": 0.2, "end": 0.8}}
    status = wait(client, h, client.post("/jobs", json=spec(controls=controls), headers=h).json()["id"])
    assert status["status"] == "completed", status["error"]


def test_cancel_pending_and_running(api):
    backend, client, h = api
    running = client.post("/jobs", json=spec(steps=150), headers=h).json()["id"]
    queued = client.post("/jobs", json=spec(), headers=h).json()["id"]
    wait(client, h, running, until=("running",))
    assert client.post(f"/jobs/{queued}/cancel", headers=h).json()["status"] == "canceled"
    assert client.post(f"/jobs/{running}/cancel", headers=h).json()["canceled"]
    status = wait(client, h, running, timeout=30)
    assert status["status"] == "canceled" and status["step"] < 150 and status["results"] == []
    assert client.post(f"/jobs/{running}/cancel", headers=h).json()["canceled"] is False


def test_progress_and_eta_while_running(api):
    backend, client, h = api
    job = client.post("/jobs", json=spec(steps=40), headers=h).json()["id"]
    status = wait(client, h, job, until=("running",))
    seen = []
    while status["status"] == "running":
        seen.append(status)
        status = client.get(f"/jobs/{job}", headers=h).json()
    assert any(s["step"] > 0 and s["eta_s"] is not None for s in seen)


@pytest.mark.parametrize("headers,status,kind", [
    ({}, 401, "unauthorized"),
    ({"x-characterforge-token": "wrong"}, 401, "unauthorized"),
])
def test_token_is_required(api, headers, status, kind):
    backend, client, h = api
    for method, path in (("get", "/health"), ("get", "/models"), ("post", "/jobs"), ("get", "/openapi.json")):
        r = getattr(client, method)(path, headers=headers, **({"json": spec()} if method == "post" else {}))
        assert r.status_code == status and r.json()["type"] == kind and r.json()["fix"]


def test_browser_origins_are_refused(api):
    backend, client, h = api
    r = client.post("/jobs", json=spec(), headers=dict(h, origin="https://evil.example"))
    assert r.status_code == 403 and r.json()["type"] == "forbidden_origin"
    assert client.get("/health", headers=h).status_code == 200


def test_openapi_schema_is_served(api):
    backend, client, h = api
    paths = client.get("/openapi.json", headers=h).json()["paths"]
    assert {"/jobs", "/jobs/{job_id}", "/jobs/{job_id}/cancel", "/jobs/{job_id}/results/{name}", "/models"} <= set(paths)


@pytest.mark.parametrize("changes,field", [
    ({"width": 65}, "width"),
    ({"width": 4096}, "width"),
    ({"steps": 0}, "steps"),
    ({"steps": 10000}, "steps"),
    ({"batch": 99}, "batch"),
    ({"kind": "mystery"}, "kind"),
    ({"prompt": ""}, "prompt"),
    ({"seed": -1}, "seed"),
    ({"guidance": float("nan")}, "guidance"),
    ({"controls": {}}, "controls"),
    ({"controls": {"openpose": {"image": "not base64!"}}}, "controls.openpose.image"),
    ({"controls": {"openpose": {"image": "aGVsbG8="}}}, "controls.openpose.image"),
    ({"name": "../../etc/passwd"}, "name"),
    ({"profile": "../x"}, "profile"),
])
def test_bad_specs_are_refused_with_the_field(api, changes, field):
    backend, client, h = api
    body = json.dumps(spec(**changes), allow_nan=True)
    r = client.post("/jobs", content=body, headers=dict(h, **{"content-type": "application/json"}))
    assert r.status_code == 400, r.text
    detail = r.json()
    assert detail["type"] == "invalid_job" and field in detail["message"]


def test_malformed_json_and_oversized_requests(api):
    backend, client, h = api
    r = client.post("/jobs", content=b"{nope", headers=dict(h, **{"content-type": "application/json"}))
    assert r.status_code == 400 and r.json()["type"] == "invalid_request"
    r = client.post("/jobs", content=b"[1, 2]", headers=dict(h, **{"content-type": "application/json"}))
    assert r.status_code == 400
    r = client.post("/jobs", content=b"x" * 10, headers=dict(h, **{"content-length": str(10**9)}))
    assert r.status_code == 413 and "limit" in r.json()["message"]


def test_decompression_bomb_is_refused(api):
    import base64
    import zlib
    import struct
    backend, client, h = api
    width = height = 20000  # 400 M pixels of zeros: a few hundred KB compressed

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = zlib.compress(b"\0" * (width + 1) * 16)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + \
        chunk(b"IDAT", raw) + chunk(b"IEND", b"")
    r = client.post("/jobs", json=spec(controls={"openpose": {"image": base64.b64encode(bomb).decode()}}), headers=h)
    assert r.status_code == 400 and "pixel" in r.json()["message"]


def test_queue_full_is_429(make_backend):
    backend = make_backend(max_pending=1)  # not started: jobs stay pending
    client, h = TestClient(backend.app), {"x-characterforge-token": backend.token}
    assert client.post("/jobs", json=spec(), headers=h).status_code == 201
    r = client.post("/jobs", json=spec(), headers=h)
    assert r.status_code == 429 and r.json()["type"] == "queue_full" and r.json()["fix"]


def test_unknown_job_and_result(api):
    backend, client, h = api
    assert client.get("/jobs/nope", headers=h).status_code == 404
    job = wait(client, h, client.post("/jobs", json=spec(), headers=h).json()["id"])
    r = client.get(f"/jobs/{job['id']}/results/other", headers=h)
    assert r.status_code == 404 and r.json()["details"]["results"] == ["result"]
    assert client.get(f"/jobs/{job['id']}/results/..%2F..%2Fjobs.sqlite3", headers=h).status_code == 404


def test_identity_from_reference_images(api):
    backend, client, h = api
    plain = wait(client, h, client.post("/jobs", json=spec(seed=9), headers=h).json()["id"])
    refs = {"images": [png_b64(48, 48, (200, 40, 40)), png_b64(40, 56, (40, 200, 40))], "scale": 0.9}
    with_id = wait(client, h, client.post("/jobs", json=spec(seed=9, identity=refs), headers=h).json()["id"])
    again = wait(client, h, client.post("/jobs", json=spec(seed=9), headers=h).json()["id"])
    assert [s["status"] for s in (plain, with_id, again)] == ["completed"] * 3, with_id["error"]
    a, b, c = (image_of(client.get(f"/jobs/{s['id']}/results/result", headers=h)) for s in (plain, with_id, again))
    assert not (a == b).all()  # the references change the picture
    assert (a == c).all()      # and at scale 0 the loaded adapter changes nothing
    img = Image.open(io.BytesIO(client.get(f"/jobs/{with_id['id']}/results/result", headers=h).content))
    assert json.loads(img.text["characterforge"])["job"]["identity"] == {"references": 2, "scale": 0.9, "embedding": False}
    engine = backend.engine_for("tiny")
    assert engine.adapters.loaded and engine.base().image_encoder is not None


@pytest.mark.parametrize("identity,field", [
    ({"images": []}, "identity.images"),
    ({"images": ["x"] * 5}, "identity.images"),
    ({"images": ["aGVsbG8="]}, "identity.images[0]"),
    ({"images": [png_b64()], "scale": 3}, "scale"),
])
def test_bad_identity_is_refused(api, identity, field):
    backend, client, h = api
    r = client.post("/jobs", json=spec(identity=identity), headers=h)
    assert r.status_code == 400 and field in r.json()["message"]


def test_the_addon_client_reports_wrong_token_and_unreachable(make_backend, tmp_path):
    import socket
    import threading

    import uvicorn

    from characterforge_addon.client.backend_client import BackendClient, BackendError
    backend = make_backend()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(backend.app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            pass
        with pytest.raises(BackendError, match="wrong token.*token file") as err:
            BackendClient(f"http://127.0.0.1:{port}", "nope").health()
        assert err.value.status == 401 and err.value.type == "unauthorized"
        with pytest.raises(BackendError, match="width: 65 is not a multiple of 8"):
            BackendClient(f"http://127.0.0.1:{port}", backend.token).submit(spec(width=65))
        assert BackendClient(f"http://127.0.0.1:{port}", backend.token).health()["status"] == "ok"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    with pytest.raises(BackendError, match="cannot reach the backend.*Backend panel"):
        BackendClient(f"http://127.0.0.1:{port}", backend.token, timeout=2).health()


def test_a_full_disk_fails_the_job_clearly_and_leaves_no_partial_png(tmp_path, models_dir):
    import subprocess
    import sys
    data = tmp_path / "data"
    data.mkdir()
    (data / "models").symlink_to(models_dir)
    check = os.path.join(os.path.dirname(os.path.abspath(__file__)), "disk_full_check.py")
    run = subprocess.run([sys.executable, check, str(data), "400000"], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["status"]["status"] == "failed"
    message = seen["status"]["error"]["message"]
    assert "could not save result" in message and "free disk space" in message and "File too large" in message
    assert seen["files"] == [] and seen["status"]["results"] == []  # no truncated PNG, no temporary file
    assert seen["health"]["status"] == "ok"  # and the server keeps serving


def test_a_result_swapped_for_a_link_outside_the_data_folder_is_not_served(api, tmp_path):
    backend, client, h = api
    job = wait(client, h, client.post("/jobs", json=spec(), headers=h).json()["id"])
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\nnot yours")
    path = backend.store.result_path(job["id"], "result")
    os.remove(path)
    os.symlink(secret, path)  # someone (or something) replaced the result with a link
    r = client.get(f"/jobs/{job['id']}/results/result", headers=h)
    assert r.status_code == 400 and "outside the data folder" in r.json()["message"]
    for name in (".hidden", "a%2Fb", "a\\b", "x" * 65):  # a bare ".." is resolved away by the client itself
        r = client.get(f"/jobs/{job['id']}/results/{name}", headers=h)
        assert r.status_code in (400, 404) and "type" in r.json()


def test_faceid_joins_plus_face_when_a_face_is_found(api):
    """The tiny profile has a FaceID adapter and an insightface-shaped detector: a reference
    with a face (the tiny detector's "face" is the brightest patch) feeds FaceID its embedding."""
    backend, client, h = api
    face = png_b64(64, 64, (255, 255, 255))

    def run(**identity):
        job = wait(client, h, client.post("/jobs", json=spec(seed=5, identity={"images": [face], **identity}),
                                          headers=h).json()["id"])
        assert job["status"] == "completed", job["error"]
        r = client.get(f"/jobs/{job['id']}/results/result", headers=h)
        return image_of(r), json.loads(Image.open(io.BytesIO(r.content)).text["characterforge"])

    without, record = run(scale=0.6, faceid_scale=0.0)
    assert record["identity_adapters"] == ["plus_face", "faceid", "appearance"]  # appearance at 0: no look sent
    with_faceid, _ = run(scale=0.6, faceid_scale=1.0)
    assert not np.array_equal(without, with_faceid)  # the embedding steers the image
    other = [0.0] * 511 + [1.0]
    given, _ = run(scale=0.6, faceid_scale=1.0, embedding=other)  # a pack's mean overrides the found face
    assert not np.array_equal(with_faceid, given)
    again, _ = run(scale=0.6, faceid_scale=0.0)
    assert np.array_equal(without, again)


def test_previews_while_denoising_then_none(api):
    import time
    backend, client, h = api
    job_id = client.post("/jobs", json=spec(steps=40, width=256, height=128), headers=h).json()["id"]
    deadline, preview = time.monotonic() + 120, None
    while preview is None and time.monotonic() < deadline:
        r = client.get(f"/jobs/{job_id}/preview", headers=h)
        if r.status_code == 200:
            preview = image_of(r)
        else:
            assert r.status_code == 404 and r.json()["type"] == "no_preview"
            time.sleep(0.05)
    assert preview is not None and preview.shape == (128, 256, 3)  # decoded by the tiny TAESD, full size
    done = wait(client, h, job_id)
    assert done["status"] == "completed"
    r = client.get(f"/jobs/{job_id}/preview", headers=h)
    assert r.status_code == 404 and "completed" in r.json()["message"]


def test_the_pose_map_steers_the_image(api):
    """The tiny ControlNets' output layers are random, not zero: the control image matters."""
    backend, client, h = api
    images = []
    for color in ((0, 0, 0), (255, 255, 255)):
        job = wait(client, h, client.post("/jobs", json=spec(seed=3, controls={"openpose": {"image": png_b64(64, 64, color)}}),
                                          headers=h).json()["id"])
        images.append(image_of(client.get(f"/jobs/{job['id']}/results/result", headers=h)))
    assert not np.array_equal(*images)
