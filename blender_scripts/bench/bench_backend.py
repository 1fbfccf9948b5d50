"""Benchmarks for issue 3 (the backend), with the tiny profile on this machine.

  python blender_scripts/bench/bench_backend.py [--jobs 5] [--steps 8] [--size 256]

1. Backend overhead per job: the same posed_character job through the real server process
   (HTTP submit, status polling every 50 ms (BENCH_POLL_S), PNG download) against the engine called
   directly in this process (goal: <= 50 ms and <= 5 % per job).
2. Memory with every pipeline variant loaded against one pipeline holding the same weights
   (goal <= 1.1x): unique parameter bytes, and process RSS.
"""

import argparse
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

POLL_S = float(os.environ.get("BENCH_POLL_S", "0.05"))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def control_png(size):
    import numpy as np
    from characterforge_addon.core.image_io import encode_png
    rng = np.random.default_rng(0)
    return encode_png(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def unique_bytes(modules):
    seen, total = set(), 0
    for module in modules:
        for p in module.parameters():
            if p.data_ptr() not in seen:
                seen.add(p.data_ptr())
                total += p.numel() * p.element_size()
    return total


def rss_mb():
    import psutil
    return psutil.Process().memory_info().rss / 2**20


def main():
    parser = argparse.ArgumentParser(prog="bench_backend.py")
    parser.add_argument("--jobs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()

    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.models import profiles
    from characterforge_addon.backend import tiny
    from characterforge_addon.client.backend_client import BackendClient
    from characterforge_addon.core.spec.job_spec import posed_character_spec

    data = tempfile.mkdtemp(prefix="cf-bench-backend-")
    models_dir = os.path.join(data, "models")
    tiny.ensure(models_dir)
    png = control_png(args.size)
    spec = posed_character_spec("a knight", {"openpose": {"png": png}, "depth": {"png": png, "strength": 0.5}},
                                args.size, args.size, seed=1, steps=args.steps, profile="tiny")

    # -- memory: one pipeline vs every variant ----------------------------------------------
    engine = pipelines.Engine(profiles.load_profile("tiny"), models_dir)
    one = engine.controlnet_pipeline(["controlnet_openpose", "controlnet_depth", "controlnet_depth"])
    one_bytes = unique_bytes(pipelines.modules_of(one).values())
    rss_one = rss_mb()
    variants = [engine.pipeline(mode, roles) for mode in ("txt2img", "img2img", "inpaint")
                for roles in ((), ("controlnet_openpose",), ("controlnet_openpose", "controlnet_depth"))] + [one]
    all_bytes = unique_bytes(m for p in variants for m in pipelines.modules_of(p).values())
    variant_count = len(variants)
    rss_all = rss_mb()

    # -- direct calls -----------------------------------------------------------------------
    pngs = {n: base64.b64decode(c["image"]) for n, c in spec["controls"].items()}
    never = threading.Event()
    engine.posed_character(spec, pngs, lambda *a: None, never)  # warm-up
    direct = []
    for _ in range(args.jobs):
        start = time.perf_counter()
        engine.posed_character(spec, pngs, lambda *a: None, never)
        direct.append(time.perf_counter() - start)
    del engine, one, variants

    # -- through the real server -----------------------------------------------------------
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "characterforge_addon.backend", "serve", "--port", str(port),
                               "--data", data, "--profile", "tiny"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        token_path = os.path.join(data, "token")
        deadline = time.monotonic() + 120
        client = None
        while time.monotonic() < deadline:
            try:
                client = BackendClient(f"http://127.0.0.1:{port}", open(token_path).read().strip())
                client.health()
                break
            except Exception:
                time.sleep(0.2)

        inside = []

        def through_api():
            job = client.submit(spec)
            while (status := client.status(job))["status"] not in ("completed", "failed", "canceled"):
                time.sleep(POLL_S)
            inside.append(status["finished"] - status["started"])
            return client.result(job, spec["name"])

        through_api()  # warm-up: loads the models in the server
        served = []
        for _ in range(args.jobs):
            start = time.perf_counter()
            through_api()
            served.append(time.perf_counter() - start)
    finally:
        server.terminate()
        server.wait()

    d, a = statistics.median(direct), statistics.median(served)
    print(f"posed_character, tiny profile, {args.size}², {args.steps} steps, 2 ControlNets, {args.jobs} jobs each:")
    print(f"  engine called directly: {d * 1000:.0f} ms/job (median)")
    print(f"  through the server (HTTP, {POLL_S * 1000:.0f} ms polling, PNG download): {a * 1000:.0f} ms/job (median)")
    print(f"  of which the job itself ran in the server for {statistics.median(inside[1:]) * 1000:.0f} ms/job (median)")
    print(f"  overhead: {(a - d) * 1000:.0f} ms/job = {(a - d) / d * 100:.1f} % (goal <= 50 ms and <= 5 %)")
    print(f"memory, every variant (txt2img, img2img, inpaint, each plain and with 1 or 2 ControlNets, "
          f"{variant_count} pipelines) vs one pipeline with the same weights:")
    print(f"  unique parameter bytes {all_bytes / 2**20:.1f} MiB vs {one_bytes / 2**20:.1f} MiB = "
          f"{all_bytes / one_bytes:.3f}x (goal <= 1.1x); process RSS {rss_all:.0f} vs {rss_one:.0f} MiB = "
          f"{rss_all / rss_one:.3f}x")


if __name__ == "__main__":
    main()
