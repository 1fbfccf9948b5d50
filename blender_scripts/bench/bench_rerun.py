"""Benchmark for issue 34 (re-runs keyed by what made each unit): the time fingerprints add to
a batch unit, printed beside the unit's own time. BENCHMARKS.md records the figures.

  python blender_scripts/bench/bench_rerun.py [--size 1024] [--frames 6] [--units 1000]
                                              [--url http://127.0.0.1:7861 --token T --profile tiny --steps 4]

Per unit of the demo scene (one camera, SIZE², as batch.py runs it): the control-map render
into the staging folder and the job built from the maps (what every unit did before), then
what this issue adds: the fingerprint of that job, the maps-only fingerprint, the decision
against a recorded fingerprint, moving the staged folder into place, and the manifest written
with fingerprints for UNITS units (it is rewritten after every unit). With --url, the unit's
generation on that backend too, and the profile identity asked once per run.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _bootstrap import register_addon, script_args  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_rerun.py")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--units", type=int, default=1000, help="units in the manifest when it is rewritten")
    parser.add_argument("--url", help="a running backend: also time each unit's generation there")
    parser.add_argument("--token", default="")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args(script_args(argv))

    import bpy
    import demo_scene
    register_addon()
    import numpy as np
    from batch import SHOT_DEFAULTS, generate, unit_spec
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.core.batch import batch_plan, fingerprint
    from characterforge_addon.core.image_io import encode_png
    from characterforge_addon.core.spec.job_spec import shot_spec

    scene = demo_scene.build(bpy, resolution=(args.size, args.size))
    camera = scene.camera
    shot = SimpleNamespace(**{**SHOT_DEFAULTS, "prompt": "a knight", "steps": args.steps, "profile": args.profile})
    client, identity, identity_s = None, None, 0.0
    if args.url:
        from characterforge_addon.client.backend_client import BackendClient
        client = BackendClient(args.url, args.token)
        identity, identity_s = timed(lambda: client.models(args.profile)["identity"])
    root = tempfile.mkdtemp(prefix="characterforge-bench-rerun-")
    rows = []
    try:
        for frame in range(1, args.frames + 1):
            scene.frame_set(frame)
            folder = batch_plan.unit_folder(camera.name, frame, 1)
            here, unit_dir = os.path.join(root, ".staging", folder), os.path.join(root, folder)
            maps, render_s = timed(lambda: controls.render_controls(bpy.context, os.path.join(here, "controls"),
                                                                    camera, preview=False))
            spec, spec_s = timed(lambda: unit_spec(shot, os.path.join(here, "controls"), maps, 1))
            made, job_fp_s = timed(lambda: fingerprint.of_job(spec, identity))
            _, maps_fp_s = timed(lambda: fingerprint.of_files(os.path.join(here, "controls"), maps["files"]))
            _, decide_s = timed(lambda: fingerprint.outcome(True, made, fingerprint.of_job(spec, identity)))
            decide_s -= job_fp_s  # the comparison alone (the second fingerprint is the one above again)

            def move():
                shutil.rmtree(unit_dir, ignore_errors=True)
                os.makedirs(os.path.dirname(unit_dir), exist_ok=True)
                os.replace(here, unit_dir)
            _, move_s = timed(move)
            generate_s = timed(lambda: generate(client, spec, unit_dir))[1] if client else None
            rows.append((render_s, spec_s, job_fp_s, maps_fp_s, max(decide_s, 0.0), move_s, generate_s))

        # the manifest rewritten after a unit, with UNITS units in it: with fingerprints and without
        record = fingerprint.of_job(spec, identity)
        many = batch_plan.Manifest(root, "manifest.bench.json")
        many.done = {f"Cam/frame_{i:04d}/seed_1": [f"Cam/frame_{i:04d}/seed_1/seed1.png"] for i in range(args.units)}
        many.made_by = {f: record for f in many.done}
        with_s = statistics.median(timed(lambda: many.add("Cam/frame_0000/seed_1", ["x.png"], record))[1]
                                   for _ in range(5))
        size_with = os.path.getsize(many.path)
        many.made_by = {}  # the same manifest without fingerprints
        without_s = statistics.median(timed(lambda: many.add("Cam/frame_0000/seed_1", ["x.png"]))[1]
                                      for _ in range(5))
        size_without = os.path.getsize(many.path)

        # a shot job's fingerprint: background, a mask per character and the carried-over frame at SIZE²
        noise = np.random.default_rng(0).integers(0, 255, (args.size, args.size, 3), np.uint8)
        big = encode_png(noise)  # noise compresses worst: an upper bound on a picture's bytes
        mask = encode_png(np.full((args.size, args.size), 255, np.uint8))
        shot_job = shot_spec("a courtyard", {"openpose": {"png": big, "strength": 1.0}}, args.size, args.size, big,
                             [{"name": n, "prompt": "p", "mask": mask, "references": [big]} for n in ("A", "B")],
                             previous=(big, mask, 0.5))
        shot_fp_s = statistics.median(timed(lambda: fingerprint.of_job(shot_job, identity))[1] for _ in range(5))
        shot_mb = sum(len(v) for v in json.dumps(shot_job)) / 2**20
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def med(i):
        return statistics.median(r[i] for r in rows)
    print(f"demo scene, one camera, {args.size}², {args.frames} units (medians), profile {args.profile}")
    print("per unit, what it did before this issue:")
    print(f"  control maps rendered           {med(0) * 1000:8.1f} ms")
    print(f"  job built from the maps         {med(1) * 1000:8.1f} ms")
    if client:
        print(f"  generation ({args.steps} steps, {args.url})  {med(6):8.2f} s")
    print("per unit, what fingerprints add:")
    print(f"  fingerprint of its posed job    {med(2) * 1000:8.2f} ms")
    print(f"  fingerprint of its maps only    {med(3) * 1000:8.2f} ms")
    print(f"  comparing with the recorded one {med(4) * 1000:8.3f} ms")
    print(f"  staged folder moved into place  {med(5) * 1000:8.2f} ms")
    print(f"  manifest rewritten, {args.units} units: {with_s * 1000:.1f} ms ({size_with / 1024:.0f} KiB) with "
          f"fingerprints, {without_s * 1000:.1f} ms ({size_without / 1024:.0f} KiB) without")
    print(f"  fingerprint of a shot job ({shot_mb:.1f} MB of pictures as base64): {shot_fp_s * 1000:.1f} ms")
    if client:
        print(f"  profile identity from the backend (once per run): {identity_s * 1000:.1f} ms")
    added = med(2) + med(4) + med(5) + with_s
    unit = med(0) + med(1) + (med(6) if client else 0.0)
    print(f"a unit made: {unit:.2f} s of its own{' (no generation timed: give --url)' if not client else ''}, "
          f"{added * 1000:.1f} ms added ({100 * added / unit:.1f} %)")
    print(f"a finished unit on a re-run: {med(0) + med(1) + med(2) + med(4):.2f} s to decide (its maps rendered "
          "again), instead of being skipped unchecked before")


if __name__ == "__main__":
    main()
