"""Benchmark for issue 17: throughput with 1 and 2 engine replicas on Ray, and the per-job
overhead of the Ray path against plain `serve`, side by side in one run.

  python blender_scripts/bench/bench_ray.py [--jobs 8 --steps 4 --size 128]

Three real backend processes in turn on the tiny profile (each in a fresh data folder): `serve`,
`serve-ray --replicas 1`, `serve-ray --replicas 2` (a local Ray cluster with that many logical
GPUs). For each: the latency of one job at a time (after warming every replica; the median of --samples), then the wall time of
--jobs jobs sent at once. Overhead = Ray's one-job latency minus serve's. On a machine with
several GPUs, run it with more replicas (--replicas 1 2 4) to see scaling with GPU count.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Backend:
    def __init__(self, command, extra, models):
        self.data = tempfile.mkdtemp(prefix="bench-ray-")
        os.symlink(models, os.path.join(self.data, "models"))
        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, "-m", "characterforge_addon.backend", command, "--profile",
                                         "tiny", "--data", self.data, "--port", str(self.port), *extra], cwd=ROOT,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        env=dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE="1"))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                self.token = open(os.path.join(self.data, "token")).read().strip()
                self.call("GET", "/health")
                return
            except OSError:
                time.sleep(0.5)
        raise SystemExit(f"{command} did not start")

    def call(self, method, path, body=None):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method,
                                         data=json.dumps(body).encode() if body is not None else None,
                                         headers={"x-characterforge-token": self.token,
                                                  "content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def run(self, jobs):
        ids = [self.call("POST", "/jobs", job)["id"] for job in jobs]
        while True:
            states = [self.call("GET", f"/jobs/{i}")["status"] for i in ids]
            if all(s in ("completed", "failed", "canceled") for s in states):
                assert states == ["completed"] * len(ids), states
                return
            time.sleep(0.02)

    def stop(self):
        self.process.terminate()
        self.process.wait(60)


def job(seed, args):
    import base64
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (args.size, args.size)).save(buf, "PNG")
    return {"kind": "posed_character", "prompt": "a knight", "seed": seed, "steps": args.steps, "width": args.size,
            "height": args.size, "profile": "tiny",
            "controls": {"openpose": {"image": base64.b64encode(buf.getvalue()).decode()}}}


def main():
    parser = argparse.ArgumentParser(prog="bench_ray.py")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--samples", type=int, default=15, help="one-at-a-time jobs timed (the median is shown)")
    args = parser.parse_args()
    from characterforge_addon.backend import tiny
    models = os.path.join(tempfile.gettempdir(), "characterforge-bench-ray-models")
    tiny.ensure(models)
    cases = [("serve", "serve", [], 1)] + [(f"serve-ray x{n}", "serve-ray", ["--replicas", str(n), "--local-gpus",
                                                                             str(n)], n) for n in args.replicas]
    rows = []
    for label, command, extra, replicas in cases:
        backend = Backend(command, extra, models)
        try:
            backend.run([job(i, args) for i in range(2 * replicas)])  # warm: each replica loads its engine
            one = []
            for i in range(args.samples):
                started = time.perf_counter()
                backend.run([job(100 + i, args)])
                one.append(time.perf_counter() - started)
            started = time.perf_counter()
            backend.run([job(200 + i, args) for i in range(args.jobs)])
            rows.append((label, sorted(one)[len(one) // 2], time.perf_counter() - started))
        finally:
            backend.stop()
    base_one, base_all = rows[0][1], rows[0][2]
    print(f"\n{args.jobs} tiny jobs of {args.steps} steps at {args.size}px on {os.cpu_count()} CPU cores")
    print(f"{'backend':14s} {'one job (median)':>22s} {'overhead':>9s} {'all at once':>12s} {'jobs/min':>9s}")
    for label, one, whole in rows:
        print(f"{label:14s} {one * 1000:>19.0f} ms {1000 * (one - base_one):>6.0f} ms {whole:>10.1f} s "
              f"{60 * args.jobs / whole:>9.1f}")
    ray = {label: whole for label, _, whole in rows if label.startswith("serve-ray")}
    if len(ray) > 1:
        first = list(ray.values())[0]
        print("throughput vs one replica: " + ", ".join(f"{k}: {first / v:.2f}x" for k, v in ray.items()))
    print(f"(serve all at once: {base_all:.1f} s)")


if __name__ == "__main__":
    main()
