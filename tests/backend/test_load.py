"""Load (issue 12): many clients at once against a real backend process on the tiny models,
submitting, polling, downloading and cancelling. No server error, no job lost or run twice,
memory bounded, a full queue answered with a retry hint; status latency under load printed.

`make test` runs a short one; the soak (RELIABILITY.md) sets CHARACTERFORGE_LOAD_CLIENTS and
CHARACTERFORGE_LOAD_S.
"""

import json
import os
import random
import sqlite3
import threading
import time

import psutil

from conftest import png_b64, spec

CLIENTS = int(os.environ.get("CHARACTERFORGE_LOAD_CLIENTS", "12"))
SECONDS = float(os.environ.get("CHARACTERFORGE_LOAD_S", "12"))
FINISHED = ("completed", "failed", "canceled")


class Client(threading.Thread):
    def __init__(self, server, seed, deadline, tally):
        super().__init__(daemon=True)
        self.server, self.random, self.deadline, self.tally = server, random.Random(seed), deadline, tally
        self.accepted, self.latencies, self.problems = [], [], []

    def call(self, method, path, body=None):
        start = time.perf_counter()
        try:
            response = self.server.request(method, path, body)
        except OSError as exc:  # a refused or dropped connection is a failure to serve too
            self.problems.append(f"{method} {path}: {exc}")
            return None
        took = time.perf_counter() - start
        with self.tally["lock"]:
            self.tally[response.status] = self.tally.get(response.status, 0) + 1
        if response.status >= 500:
            self.problems.append(f"{method} {path}: {response.status} {response.data[:200]!r}")
        return response, took

    def run(self):
        job = spec(steps=1, controls={"openpose": {"image": png_b64()}})
        while time.monotonic() < self.deadline:
            got = self.call("POST", "/jobs", dict(job, seed=self.random.randrange(2**31)))
            if got and got[0].status == 201:
                self.accepted.append(json.loads(got[0].data)["id"])
            elif got and got[0].status == 429:
                hint = got[0].getheader("retry-after")
                if not hint or int(hint) < 1:
                    self.problems.append(f"429 without a Retry-After hint: {hint!r}")
                time.sleep(self.random.uniform(0.05, 0.3))
            if not self.accepted:
                continue
            job_id = self.random.choice(self.accepted)
            got = self.call("GET", f"/jobs/{job_id}")
            if not got:
                continue
            self.latencies.append(got[1])
            status = json.loads(got[0].data)
            if status["status"] == "completed" and self.random.random() < 0.5:
                result = self.call("GET", f"/jobs/{job_id}/results/result")
                if result and not result[0].data.startswith(b"\x89PNG"):
                    self.problems.append(f"result of {job_id} is not a PNG")
            elif status["status"] in ("pending", "running") and self.random.random() < 0.15:
                self.call("POST", f"/jobs/{job_id}/cancel")
            time.sleep(self.random.uniform(0.0, 0.05))


def test_many_clients_at_once(start_server):
    server = start_server()
    assert server.token, server.output()[-2000:]
    warm = json.loads(server.request("POST", "/jobs", spec(steps=1)).data)["id"]  # models loaded before measuring
    while json.loads(server.get(f"/jobs/{warm}").data)["status"] not in FINISHED:
        time.sleep(0.2)
    process = psutil.Process(server.process.pid)
    before = process.memory_info().rss
    tally = {"lock": threading.Lock()}
    deadline = time.monotonic() + SECONDS
    clients = [Client(server, seed, deadline, tally) for seed in range(CLIENTS)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(SECONDS + 120)
    accepted = [job_id for c in clients for job_id in c.accepted]
    problems = [p for c in clients for p in c.problems]
    for job_id in accepted:  # what is still waiting is canceled; what runs finishes
        server.request("POST", f"/jobs/{job_id}/cancel")
    statuses = {}
    drain = time.monotonic() + 120
    for job_id in accepted:
        while (status := json.loads(server.get(f"/jobs/{job_id}").data))["status"] not in FINISHED:
            assert time.monotonic() < drain, f"job {job_id} never finished"
            time.sleep(0.1)
        statuses[job_id] = status
    after = process.memory_info().rss
    latencies = sorted(t for c in clients for t in c.latencies)
    server.stop()

    assert not problems, problems[:10]
    assert len(set(accepted)) == len(accepted) and accepted, "a job id was handed out twice, or none"
    db = sqlite3.connect(os.path.join(server.data, "jobs.sqlite3"))
    stored = [row[0] for row in db.execute("SELECT id FROM jobs")]
    db.close()
    assert sorted(stored) == sorted(accepted + [warm])  # none lost, none extra
    for job_id, status in statuses.items():
        if status["status"] == "completed":
            assert status["results"] == ["result"] and status["attempts"] == 1, status
        assert status["status"] != "failed", status["error"]
    done = {s: sum(st["status"] == s for st in statuses.values()) for s in FINISHED}
    p50, p95 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95)]
    grown = (after - before) / 2**20
    print(f"\nload: {CLIENTS} clients, {SECONDS:.0f} s: answers {dict((k, v) for k, v in tally.items() if k != 'lock')}; "
          f"jobs {done}; status latency p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max "
          f"{latencies[-1] * 1000:.0f} ms; server RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MiB")
    assert grown < 400, f"the server grew by {grown:.0f} MiB"
