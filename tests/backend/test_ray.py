"""Scale-out on Ray (issue 17): `serve-ray` with a local Ray cluster of two logical GPUs and two
engine replicas of the tiny profile, driven over HTTP like `serve`: jobs spread over both
replicas, a replica killed mid-job (its job runs again on the other and completes once), cancel,
the token and browser guards, and nothing listening beyond loopback."""

import io
import json
import os
import re
import signal
import time

import psutil
import pytest
from PIL import Image

from conftest import Server, spec

REPLICA = "ServeReplica:characterforge-replicas"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, models_dir):
    server = Server(tmp_path_factory.mktemp("ray") / "data", models_dir, command="serve-ray", timeout=240,
                    extra_args=["--replicas", "2", "--local-gpus", "2"])
    assert server.token and server.process.poll() is None, server.output()[-3000:]
    yield server
    family = [server.process] + psutil.Process(server.process.pid).children(recursive=True)
    server.stop()
    gone, alive = psutil.wait_procs(family, timeout=30)
    for process in alive:  # whatever Ray left behind
        process.kill()
    assert not alive, f"serve-ray left {[p.pid for p in alive]} running after it stopped"


def submit(server, job):
    answer = server.request("POST", "/jobs", job)
    assert answer.status == 201, answer.data
    return json.loads(answer.data)["id"]


def finished(server, ids, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = [json.loads(server.get(f"/jobs/{i}").data) for i in ids]
        if all(s["status"] in ("completed", "failed", "canceled") for s in statuses):
            return statuses
        time.sleep(0.2)
    raise AssertionError(f"still running after {timeout} s: {statuses}")


def replicas(server):
    """The engine replicas of this server's cluster (processes it started, not another test run's)."""
    return [p for p in psutil.Process(server.process.pid).children(recursive=True)
            if REPLICA in " ".join(p.cmdline())]


def test_jobs_spread_over_both_replicas_and_each_completes_once(cluster):
    ids = [submit(cluster, spec(seed=i, steps=3, width=128, height=128)) for i in range(4)]
    statuses = finished(cluster, ids)
    assert [(s["status"], s["attempts"], s["results"]) for s in statuses] == [("completed", 1, ["result"])] * 4
    workers = set()
    for job_id in ids:
        png = cluster.get(f"/jobs/{job_id}/results/result").data
        workers.add(json.loads(Image.open(io.BytesIO(png)).text["characterforge"])["worker"])
    assert len(workers) == 2, workers  # both replicas ran jobs, each in its own process


def test_a_replica_killed_mid_job_its_job_runs_again_and_every_job_completes_once(cluster):
    ids = [submit(cluster, spec(seed=10 + i, steps=12, width=256, height=256)) for i in range(4)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        running = [s for s in (json.loads(cluster.get(f"/jobs/{i}").data) for i in ids)
                   if s["status"] == "running" and s["step"] >= 2]
        if len(running) == 2:  # both replicas busy
            break
        time.sleep(0.05)
    victims = replicas(cluster)
    assert len(victims) == 2 and len(running) == 2, (victims, running)
    os.kill(victims[0].pid, signal.SIGKILL)
    statuses = finished(cluster, ids, timeout=400)
    assert [s["status"] for s in statuses] == ["completed"] * 4, statuses
    assert sorted(s["attempts"] for s in statuses) == [1, 1, 1, 2]  # the lost job ran once more, nothing else
    assert all(s["results"] == ["result"] for s in statuses)
    for job_id in ids:
        folder = os.path.join(cluster.data, "results", job_id)
        assert os.listdir(folder) == ["result.png"]  # one file each, no temporary one left
    deadline = time.monotonic() + 120
    while len(replicas(cluster)) < 2 and time.monotonic() < deadline:  # Serve brings the lost replica back
        time.sleep(0.5)
    assert len(replicas(cluster)) == 2


def test_cancel_reaches_the_replica_running_the_job(cluster):
    job_id = submit(cluster, spec(seed=3, steps=150, width=256, height=256))
    deadline = time.monotonic() + 120
    while json.loads(cluster.get(f"/jobs/{job_id}").data)["step"] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    asked = time.monotonic()
    assert json.loads(cluster.request("POST", f"/jobs/{job_id}/cancel", {}).data)["canceled"]
    status = finished(cluster, [job_id], timeout=60)[0]
    assert status["status"] == "canceled" and status["step"] < 150
    assert time.monotonic() - asked < 15


def test_the_ingress_guards_as_serve_does_and_ray_wants_its_token(cluster):
    """Our ingress: loopback, token, no browsers; no Ray dashboard or Serve proxy listening. Ray
    2.60's own gRPC ports listen beyond loopback by design (it maps 127.0.0.1 to the node's address
    for its workers), so what guards them is Ray's token: a process without it cannot join."""
    import subprocess
    import sys
    assert cluster.request("GET", "/health", headers={"x-characterforge-token": "wrong"}).status == 401
    assert cluster.request("GET", "/health", headers={"origin": "https://evil.example"}).status == 403
    tree = [psutil.Process(cluster.process.pid)] + psutil.Process(cluster.process.pid).children(recursive=True)
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
                 and c.pid in {p.pid for p in tree}]
    ours = [c for c in listening if c.laddr.port == cluster.port]
    assert ours and all(c.laddr.ip in ("127.0.0.1", "::1") for c in ours), ours
    assert not [c for c in listening if c.laddr.port in (8265, 8000)]  # dashboard, Serve's HTTP proxy: off
    address = re.search(r"Ray cluster at (\S+)", cluster.output()).group(1)
    intruder = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address={address!r})"], capture_output=True,
                              text=True, timeout=120,
                              env=dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="not-the-token"))
    assert intruder.returncode != 0 and "auth" in (intruder.stdout + intruder.stderr).lower(), intruder.stderr[-1500:]
