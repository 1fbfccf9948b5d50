"""Faults a backend left running for days meets (issue 12): a damaged or locked job index, a
read-only data folder, its token file deleted, a second backend on the same folder, a kill in
the middle of a result's rename. Each ends with a message that says what to do, and nothing
lost or half written."""

import os
import sqlite3
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient

from conftest import spec, wait
from characterforge_addon.core.errors import UserError

HERE = os.path.dirname(os.path.abspath(__file__))


def test_a_damaged_job_index_is_moved_aside_and_the_server_starts(make_backend, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "jobs.sqlite3").write_bytes(b"this is not a database" * 100)
    backend = make_backend(data)
    backend.start()
    client, h = TestClient(backend.app), {"x-characterforge-token": backend.token}
    notices = client.get("/health", headers=h).json()["notices"]
    assert len(notices) == 1 and "damaged" in notices[0] and "moved to" in notices[0]
    kept = [f for f in os.listdir(data) if f.startswith("jobs.sqlite3.damaged-")]
    assert kept and (data / kept[0]).read_bytes().startswith(b"this is not a database")
    status = wait(client, h, client.post("/jobs", json=spec(), headers=h).json()["id"])
    assert status["status"] == "completed"


def test_a_job_index_locked_by_another_program_is_named(make_backend, tmp_path):
    from characterforge_addon.backend.serving.store import JobStore
    data = tmp_path / "data"
    data.mkdir()
    JobStore(str(data)).close()
    other = sqlite3.connect(str(data / "jobs.sqlite3"), isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(UserError, match="locked by another program.*close whatever holds it"):
            JobStore(str(data), busy_timeout_s=0.2)
    finally:
        other.execute("ROLLBACK")
        other.close()
    JobStore(str(data)).close()  # free again: it starts


def _read_only(folder):
    """Make `folder` unwritable for this process: permissions for a user, the immutable flag for
    root (whom permissions do not stop)."""
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        return lambda: os.chmod(folder, 0o755)
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    return lambda: subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_data_folder_is_refused_with_the_fix(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    undo = _read_only(data)
    try:
        run = subprocess.run([sys.executable, "-m", "characterforge_addon.backend", "serve", "--profile", "tiny",
                              "--data", str(data), "--port", "1"], capture_output=True, text=True, timeout=120,
                             cwd=os.path.dirname(os.path.dirname(HERE)), env=dict(os.environ, HF_HUB_OFFLINE="1"))
        assert os.listdir(data) == []
    finally:
        undo()
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"the data folder {data} cannot be written" in run.stderr and "--data DIR" in run.stderr


def test_a_deleted_token_file_is_written_again(start_server):
    server = start_server()
    path = os.path.join(server.data, "token")
    os.unlink(path)
    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.2)
    assert open(path).read().strip() == server.token
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert server.get("/health").status == 200
    assert "written again" in server.output()


def test_a_second_backend_on_the_same_data_folder_is_refused(start_server, make_backend):
    first = start_server()
    assert first.get("/health").status == 200
    second = start_server(data=first.data)
    assert second.process.wait(60) == 2
    assert "another CharacterForge backend is already using the data folder" in second.output()
    with pytest.raises(UserError, match="already using the data folder"):
        make_backend(__import__("pathlib").Path(first.data))
    job = first.request("POST", "/jobs", spec())  # the first one is untouched and keeps working
    assert job.status == 201


def test_killed_during_a_results_rename_the_job_runs_again_cleanly(start_server, tmp_path):
    import json
    dying = start_server(script=os.path.join(HERE, "kill_on_rename.py"))
    job_id = json.loads(dying.request("POST", "/jobs", spec()).data)["id"]
    assert dying.process.wait(120) == -9  # SIGKILL at the rename
    folder = os.path.join(dying.data, "results", job_id)
    assert [f for f in os.listdir(folder) if f.startswith(".tmp-")]  # the half-done rename left its temporary file
    again = start_server(data=dying.data)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = json.loads(again.get(f"/jobs/{job_id}").data)
        if status["status"] in ("completed", "failed"):
            break
        time.sleep(0.2)
    assert status["status"] == "completed" and status["attempts"] == 2, status
    assert os.listdir(folder) == ["result.png"]  # no temporary file left, one result
    png = again.get(f"/jobs/{job_id}/results/result")
    assert png.status == 200 and png.data.startswith(b"\x89PNG")
