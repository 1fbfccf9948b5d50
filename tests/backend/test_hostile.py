"""What a hostile client found (issue 12), one test per class: every input gets an answer that
is not a server error, and a job that is accepted runs."""

import json
import socket
import time

import psutil
import pytest
from fastapi.testclient import TestClient

from conftest import png_b64, spec, wait

BIG = 10**400  # valid JSON, far beyond any float


@pytest.fixture
def api(make_backend):
    backend = make_backend()
    backend.start()
    return backend, TestClient(backend.app, raise_server_exceptions=False), {"x-characterforge-token": backend.token}


def post(client, headers, body):
    return client.post("/jobs", content=json.dumps(body), headers=dict(headers, **{"content-type": "application/json"}))


def shot(**changes):
    out = spec(kind="shot", background={"image": png_b64()},
               characters=[{"name": "Hero", "prompt": "a knight", "mask": png_b64(64, 64, (255, 255, 255))}],
               hands={"boxes": [[8, 8, 24, 24]]})
    out.update(changes)
    return out


@pytest.mark.parametrize("where", ["seed", "steps", "guidance", "width", "batch", "controls.openpose.strength",
                                   "controls.openpose.end", "identity.scale", "retry.max_tries",
                                   "retry.min_identity"])
@pytest.mark.parametrize("value", [BIG, -BIG], ids=["huge", "minus_huge"])
def test_numbers_beyond_the_float_range_are_field_errors(api, where, value):
    backend, client, h = api
    body = spec(identity={"images": [png_b64()]}, retry={})
    *path, key = where.split(".")
    holder = body
    for part in path:
        holder = holder[part]
    holder[key] = value
    r = post(client, h, body)
    assert r.status_code == 400 and r.json()["details"]["field"] == where, r.text[:300]


def test_a_number_of_thousands_of_digits_or_json_nested_deeply_is_a_bad_request(api):
    backend, client, h = api
    for body in (b'{"kind": "posed_character", "seed": ' + b"9" * 5000 + b"}", b"[" * 100000 + b"]" * 100000,
                 b'{"prompt": "\xff\xfe"}'):
        r = client.post("/jobs", content=body, headers=dict(h, **{"content-type": "application/json"}))
        assert r.status_code == 400 and r.json()["type"] == "invalid_request", r.text[:300]


@pytest.mark.parametrize("field, body", [
    ("prompt", spec(prompt="a \ud800 knight")),
    ("negative_prompt", spec(negative_prompt="\udfff")),
    ("style", spec(kind="character_sheet", style="ink \ud83d", views=[{"name": "f", "kind": "body", "box": [0, 0, 8, 8]}])),
    ("characters[0].prompt", shot(characters=[{"name": "Hero", "prompt": "\ud800", "mask": png_b64()}])),
    ("custom", spec(kind="expression", controls={}, image=png_b64(), expression="custom", custom="grin \udc00",
                    face_box=[0, 0, 32, 32])),
])
def test_text_no_tokenizer_can_encode_is_refused(api, field, body):
    backend, client, h = api
    r = post(client, h, body)
    assert r.status_code == 400 and r.json()["details"]["field"] == field, r.text[:300]
    assert "not valid Unicode" in r.json()["message"]


def test_an_embedding_of_the_wrong_length_is_refused_and_the_right_one_runs(api):
    backend, client, h = api
    r = post(client, h, spec(identity={"images": [png_b64()], "embedding": [0.1] * 4}))
    assert r.status_code == 400 and r.json()["details"]["field"] == "identity.embedding"
    assert "512" in r.json()["message"]
    r = post(client, h, spec(identity={"images": [png_b64()], "embedding": [0.04] * 512}))
    assert r.status_code == 201
    status = wait(client, h, r.json()["id"])
    assert status["status"] == "completed", status["error"]


@pytest.mark.parametrize("body", [
    shot(steps=1),
    shot(steps=1, composite={"mode": "cutout"}),
    shot(steps=1, hands={"boxes": [[8, 8, 24, 24]], "strength": 0.0}),
    spec(kind="character_sheet", steps=1, views=[{"name": "front", "kind": "body", "box": [0, 0, 32, 64],
                                                  "face_box": [8, 0, 24, 16]}],
         upscale={"factor": 1.5, "strength": 0.05, "tile": 64, "overlap": 8}, faces={"strength": 0.0, "detector": "rig"}),
    spec(kind="expression", steps=1, controls={}, image=png_b64(), expression="sad", face_box=[8, 8, 40, 40],
         strength=0.05, detector="rig"),
])
def test_one_step_and_edge_strengths_run_to_completion(api, body):
    backend, client, h = api
    r = post(client, h, body)
    assert r.status_code == 201, r.text[:300]
    status = wait(client, h, r.json()["id"], timeout=300)
    assert status["status"] == "completed", status["error"]


@pytest.mark.parametrize("headers", [{"origin": "null"}, {"origin": "file://"}, {"sec-fetch-mode": "cors"}])
def test_every_browser_origin_is_refused(api, headers):
    backend, client, h = api
    r = client.post("/jobs", json=spec(), headers=dict(h, **headers))
    assert r.status_code == 403 and r.json()["type"] == "forbidden_origin"


def test_odd_job_ids_are_not_found(api):
    backend, client, h = api
    for job_id in ("%ED%A0%80", "x" * 64, "0" * 31 + "g", "%00"):
        r = client.get(f"/jobs/{job_id}", headers=h)
        assert r.status_code == 404, r.text[:200]


def test_queue_full_says_when_to_come_back(make_backend):
    backend = make_backend(max_pending=1)  # not started: jobs stay pending
    client, h = TestClient(backend.app), {"x-characterforge-token": backend.token}
    assert client.post("/jobs", json=spec(), headers=h).status_code == 201
    r = client.post("/jobs", json=spec(), headers=h)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["details"]["retry_after_s"] == int(r.headers["retry-after"])


def _chunked_post(server, total_mb):
    """POST /jobs with Transfer-Encoding: chunked (no Content-Length), 1 MiB a chunk; returns
    the status line the server answered, or None if it closed the connection first."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    sock.sendall(f"POST /jobs HTTP/1.1\r\nHost: x\r\nx-characterforge-token: {server.token}\r\n"
                 "content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".encode())
    chunk = b'{"prompt": "' + b"a" * (2**20 - 12)
    try:
        for i in range(total_mb):
            data = chunk if i == 0 else b"a" * 2**20
            sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed while we were still sending
    try:
        return sock.recv(4096).split(b"\r\n")[0].decode()
    except (ConnectionResetError, TimeoutError):
        return None
    finally:
        sock.close()


def test_a_chunked_body_is_capped_as_it_streams(start_server):
    server = start_server()
    assert server.token, server.output()[-2000:]
    process = psutil.Process(server.process.pid)
    before = process.memory_info().rss
    answers = [_chunked_post(server, 300) for _ in range(2)]
    time.sleep(0.5)
    grown = (process.memory_info().rss - before) / 2**20
    assert all(a is None or " 413 " in a + " " for a in answers), answers
    assert any(a and " 413" in a for a in answers), answers
    assert grown < 150, f"the server grew by {grown:.0f} MiB for 300 MiB bodies"  # the cap is 65 MiB
    assert server.get("/health").status == 200


@pytest.mark.parametrize("body, field", [
    (shot(hands={"boxes": [[8, 8, 24, 24]], "strength": 2.2e-308}), "hands.strength"),
    (shot(composite={"harmonize": 1e-9}), "composite.harmonize"),
    (spec(kind="character_sheet", views=[{"name": "f", "kind": "body", "box": [0, 0, 32, 64]}],
          upscale={"strength": 1e-300}), "upscale.strength"),
])
def test_a_strength_too_small_to_change_anything_is_refused(api, body, field):
    """Found by the property test: a strength of 2e-308 asked the engine for 4e307 steps."""
    backend, client, h = api
    r = post(client, h, body)
    assert r.status_code == 400 and r.json()["details"]["field"] == field, r.text[:300]
    assert "use 0 to turn this pass off" in r.json()["message"]
