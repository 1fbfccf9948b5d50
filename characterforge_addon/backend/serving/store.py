"""Durable job index (SQLite, stdlib) and result files in the data folder.

A job survives a crash: on start, the job that was running is queued again, pending jobs
keep their order, finished results stay where they are. Result files are written under a
temporary name and renamed, so a result listed in the index is always complete.
"""

import glob
import json
import os
import sqlite3
import threading
import time
import uuid

from ...core.errors import UserError
from ...core.image_io import write_atomic
from ...core.spec.job_spec import safe_name

FILE_RESULTS = (".safetensors", ".json")  # results that are not PNGs keep their extension in their name
STATUSES = ("pending", "running", "completed", "failed", "canceled")
FINISHED = ("completed", "failed", "canceled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT '',
    error TEXT,
    results TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    attempts INTEGER NOT NULL DEFAULT 0
);
"""


class JobStore:
    def __init__(self, data_dir, busy_timeout_s=10.0):
        self.data_dir = os.path.abspath(data_dir)
        self.results_dir = os.path.join(self.data_dir, "results")
        os.makedirs(self.results_dir, exist_ok=True)
        self.path = os.path.join(self.data_dir, "jobs.sqlite3")
        self.notices = []  # what the user should know about this start (shown by /health and the log)
        self._lock = threading.Lock()
        try:
            self._db = self._open(busy_timeout_s)
        except sqlite3.DatabaseError as exc:
            if "locked" in str(exc):
                raise UserError(f"the job index {self.path} is locked by another program ({exc}): close whatever "
                                "holds it (a database browser, a second backend) and start again") from None
            # damaged: keep it for inspection and start a new one; result files stay where they are
            aside = f"{self.path}.damaged-{time.strftime('%Y%m%d-%H%M%S')}"
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.path + suffix):
                    os.replace(self.path + suffix, aside + suffix)
            self.notices.append(f"the job index was damaged ({exc}); it was moved to {aside} and a new one started: "
                                f"finished results are still in {self.results_dir}, jobs not yet run must be sent again")
            self._db = self._open(busy_timeout_s)

    def _open(self, busy_timeout_s):
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=busy_timeout_s)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: safe against crashes of this process
            db.executescript(_SCHEMA)
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check found damage")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    # -- life cycle ------------------------------------------------------------------------

    def recover(self):
        """After a crash: the interrupted job runs again, and temporary files of a result whose
        rename never happened are removed. Returns pending job ids in order."""
        for tmp in glob.glob(os.path.join(self.results_dir, "*", ".tmp-*")):
            os.unlink(tmp)
        with self._lock:
            self._db.execute("UPDATE jobs SET status='pending', step=0, stage='' WHERE status='running'")
            rows = self._db.execute("SELECT id FROM jobs WHERE status='pending' ORDER BY seq").fetchall()
        return [r[0] for r in rows]

    def add(self, spec):
        job_id = uuid.uuid4().hex
        with self._lock:
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            self._db.execute("INSERT INTO jobs (id, seq, spec, status, created) VALUES (?, ?, ?, 'pending', ?)",
                             (job_id, seq, json.dumps(spec), time.time()))
        return job_id

    def count(self, status):
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM jobs WHERE status=?", (status,)).fetchone()[0]

    def get(self, job_id):
        with self._lock:
            row = self._db.execute(
                "SELECT id, spec, status, step, total, stage, error, results, created, started, finished, attempts "
                "FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            return None
        keys = ("id", "spec", "status", "step", "total", "stage", "error", "results", "created", "started",
                "finished", "attempts")
        job = dict(zip(keys, row))
        job["spec"] = json.loads(job["spec"])
        job["results"] = json.loads(job["results"])
        job["error"] = json.loads(job["error"]) if job["error"] else None
        return job

    def start(self, job_id, total):
        with self._lock:
            self._db.execute("UPDATE jobs SET status='running', step=0, total=?, started=?, attempts=attempts+1 "
                             "WHERE id=?", (total, time.time(), job_id))

    def progress(self, job_id, step, total, stage=""):
        with self._lock:
            self._db.execute("UPDATE jobs SET step=?, total=?, stage=? WHERE id=?", (step, total, stage, job_id))

    def finish(self, job_id, status, error=None):
        assert status in FINISHED
        with self._lock:
            self._db.execute("UPDATE jobs SET status=?, error=?, finished=? WHERE id=?",
                             (status, json.dumps(error) if error else None, time.time(), job_id))

    def requeue(self, job_id):
        """A running job whose worker was lost: pending again (its results so far are rewritten)."""
        with self._lock:
            self._db.execute("UPDATE jobs SET status='pending', step=0, stage='' WHERE id=? AND status='running'",
                             (job_id,))

    def cancel_pending(self, job_id):
        """Cancel a job that has not started; returns False if it already runs or ended."""
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET status='canceled', finished=? WHERE id=? AND status='pending'",
                                   (time.time(), job_id))
        return cur.rowcount == 1

    # -- results ---------------------------------------------------------------------------

    def result_path(self, job_id, name):
        """The file of result `name` of job `job_id`, always inside the results folder: a PNG, or
        a file named with its own extension (a LoRA's .safetensors)."""
        safe_name(job_id, "job id")
        safe_name(name, "result name")
        file = name if name.endswith(FILE_RESULTS) else f"{name}.png"
        path = os.path.realpath(os.path.join(self.results_dir, job_id, file))
        if os.path.commonpath([path, os.path.realpath(self.results_dir)]) != os.path.realpath(self.results_dir):
            raise ValueError(f"result {name!r} resolves outside the data folder")
        return path

    def add_result(self, job_id, name, png_bytes):
        path = self.result_path(job_id, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_atomic(path, png_bytes)
        self._list_result(job_id, name)

    def _list_result(self, job_id, name):
        with self._lock:
            results = json.loads(self._db.execute("SELECT results FROM jobs WHERE id=?", (job_id,)).fetchone()[0])
            if name not in results:
                results.append(name)
            self._db.execute("UPDATE jobs SET results=? WHERE id=?", (json.dumps(results), job_id))

    def close(self):
        with self._lock:
            self._db.close()
