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
    from characterforge_addon.backend.serving.server import Backend
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
    if not backend.runner.running():
        backend.start()
    client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
    response = client.post("/jobs", json=job, headers=headers)
    assert response.status_code == 201, response.json()
    status = wait(client, headers, response.json()["id"], timeout=300)
    assert status["status"] == "completed", status["error"]
    return client, headers, status


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real backend process (`python -m characterforge_addon.backend serve`, or `command`) on a
    free port."""

    def __init__(self, data, models_dir, extra_args=(), script=None, user=None, timeout=120, command="serve"):
        import os
        import subprocess
        import sys
        os.makedirs(data, exist_ok=True)
        link = os.path.join(data, "models")
        if not os.path.exists(link):
            os.symlink(models_dir, link)
        self.data, self.port = str(data), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        program = [sys.executable, script] if script else [sys.executable, "-m", "characterforge_addon.backend"]
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=root, OMP_NUM_THREADS="1")
        self.log = open(os.path.join(os.path.dirname(str(data)), f"server-{self.port}.log"), "w+")
        self.process = subprocess.Popen(
            program + [command, "--profile", "tiny", "--data", self.data, "--port", str(self.port), *extra_args],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT, user=user)
        self.token = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                self.token = open(os.path.join(self.data, "token")).read().strip()
                if self.get("/health").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def request(self, method, path, body=None, headers=None, timeout=30):
        import http.client
        import json
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"x-characterforge-token": self.token or "",
                                                         "content-type": "application/json", **(headers or {})})
        response = conn.getresponse()
        response.data = response.read()
        conn.close()
        return response

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except Exception:
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture
def start_server(tmp_path, models_dir):
    made = []

    def start(data=None, **kw):
        server = Server(data or tmp_path / "data", models_dir, **kw)
        made.append(server)
        return server

    yield start
    for server in made:
        server.stop()
