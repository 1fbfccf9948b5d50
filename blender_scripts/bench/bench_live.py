"""Live mode's latency: from a pose change to the new picture on the live plane, stage by stage.

  python blender_scripts/bench/bench_live.py [--profile tiny] [--size 128] [--changes 5] [--data DIR]

The demo scene (two rigs, floor, box) at --size x --size, the add-on's own live mode as an
artist uses it: Live on starts the bundled backend (the add-on's way: --data, a free port),
the first picture is the cold start (the engine loads); then the Hero's hand moves --changes
times, each change after the picture before is on the plane, and the live timer's work runs on
the real clock at its real interval (headless Blender has no event loop: this script is it).

Prints each change's stages, their medians over the warm changes, and the total from the pose
change to the new plane (the quiet time included). The stages (blender/generation/live.py):
quiet (the debounce), render (maps at the live size and the spec, main thread), upload (pictures
the backend lacks and the job), queue (in the backend's queue), load (models: cold start only),
denoise (the draft's steps and decode), finish (scores and the PNG), poll (noticing the end),
download, hand-over (to the main thread's timer), placement (the plane's picture replaced).

On a GPU with the SDXL profile and its TCD LoRA downloaded:
  python blender_scripts/bench/bench_live.py --profile sdxl --size 1024 --changes 10
"""

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _bootstrap import fail, register_addon, script_args  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(prog="bench_live.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--size", type=int, default=128, help="the render resolution and live size (square)")
    parser.add_argument("--changes", type=int, default=5, help="pose changes timed after the first picture")
    parser.add_argument("--data", help="backend data folder (default: a new temporary one)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for one picture")
    args = parser.parse_args(script_args())
    data = os.path.abspath(args.data or tempfile.mkdtemp(prefix="characterforge-bench-live-"))
    os.environ.update(CHARACTERFORGE_BACKEND_PYTHON=os.environ.get("CHARACTERFORGE_BACKEND_PYTHON", sys.executable),
                      CHARACTERFORGE_DATA=data, CHARACTERFORGE_PROFILE=args.profile,
                      CHARACTERFORGE_PORT=os.environ.get("CHARACTERFORGE_PORT", str(free_port())))
    import bpy
    register_addon()
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import demo_scene
    from characterforge_addon.blender.backend import backend_process
    from characterforge_addon.blender.generation import live
    from characterforge_addon.core.errors import UserError

    scene = demo_scene.build(bpy, resolution=(args.size, args.size))
    s = scene.characterforge
    s.prompt, s.random_seed, s.seed = "a knight in silver armour, full body", False, 7
    s.live_size = args.size
    s.results_dir = os.path.join(data, "results")
    hero = scene.objects["Hero"]
    print(f"live mode, profile {args.profile}, {args.size}x{args.size}, data {data}", flush=True)
    try:
        session = live.start(bpy.context)
    except UserError as exc:
        fail(str(exc))

    def shown(generation):
        deadline = time.monotonic() + args.timeout
        while session.shown < generation:
            if live.session() is not session:
                fail(s.live_message)
            if time.monotonic() > deadline:
                fail(f"no picture within {args.timeout:.0f} s: {s.live_message}")
            session.tick(bpy.context, time.monotonic())
            time.sleep(live.TICK_S)
        return session.record(generation)

    try:
        cold = shown(1)
        runs = []
        for i in range(args.changes):
            hero.pose.bones["hand_ik.L"].location.z += 0.04  # a new pose each time: new maps to send
            bpy.context.view_layer.update()  # what Blender does after each step of a drag
            runs.append(shown(session.generation + 1))
            print(f"change {i + 1}: {runs[-1]['total']:.3f} s", flush=True)
    finally:
        live.stop(bpy.context)
        backend_process.stop()
    print()
    print(f"{'stage':<10} {'median':>8} {'min':>8} {'max':>8}   {'first (cold)':>12}")
    for stage in live.STAGES:
        values = [r["seconds"][stage] for r in runs]
        print(f"{stage:<10} {statistics.median(values):8.3f} {min(values):8.3f} {max(values):8.3f}   "
              f"{cold['seconds'][stage]:12.3f}")
    totals = [r["total"] for r in runs]
    print(f"{'total':<10} {statistics.median(totals):8.3f} {min(totals):8.3f} {max(totals):8.3f}   "
          f"{cold['total']:12.3f}")
    print(f"\npose change -> new plane: {statistics.median(totals):.2f} s median over {len(runs)} changes with the "
          f"engine warm ({statistics.median(totals) - statistics.median(r['seconds']['quiet'] for r in runs):.2f} s "
          f"after the quiet time); the first picture {cold['total']:.2f} s (cold: the backend starts, the engine loads)")
    uploads = [r["pictures"] for r in runs]
    print(f"pictures per job: {uploads[-1]['pictures']}, uploaded per change: "
          f"{statistics.median(u['uploaded'] for u in uploads):.0f} "
          f"({statistics.median(u['bytes'] for u in uploads) / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
