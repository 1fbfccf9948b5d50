"""Backend tests: the real FastAPI app and real diffusers pipelines on tiny local models."""

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """Tiny components made once per session and shared by every backend."""
    from characterforge_addon.backend import tiny
    folder = tmp_path_factory.mktemp("models")
    tiny.ensure(str(folder))
    return str(folder)


@pytest.fixture
def make_backend(tmp_path, models_dir):
    from characterforge_addon.backend.server import Backend
    made = []

    def make(data=None, **kw):
        data = data or tmp_path / "data"
        data.mkdir(exist_ok=True)
        link = data / "models"
        if not link.exists():
            link.symlink_to(models_dir)
        backend = Backend(str(data), kw.pop("profile", "tiny"), **kw)
        made.append(backend)
        return backend

    yield make
    for b in made:
        try:
            b.stop()
        except Exception:
            pass


def png_b64(width=64, height=64, color=(0, 0, 0)):
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def spec(**changes):
    out = {"kind": "posed_character", "prompt": "a knight", "seed": 1, "steps": 2, "width": 64, "height": 64,
           "profile": "tiny", "controls": {"openpose": {"image": png_b64()}}}
    out.update(changes)
    return out


def wait(client, headers, job_id, until=("completed", "failed", "canceled"), timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/jobs/{job_id}", headers=headers).json()
        if status["status"] in until:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {status['status']} after {timeout} s")


def image_of(response):
    return np.asarray(Image.open(io.BytesIO(response.content)))


def completed_job(backend, job):
    """Submit `job` to `backend` (its runner started if needed) and wait for it to complete:
    (client, headers, final status)."""
    from fastapi.testclient import TestClient
    if not backend.runner._thread.is_alive():
        backend.start()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    response = client.post("/jobs", json=job, headers=headers)
    assert response.status_code == 201, response.json()
    status = wait(client, headers, response.json()["id"], timeout=300)
    assert status["status"] == "completed", status["error"]
    return client, headers, status
