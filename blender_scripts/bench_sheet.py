"""Benchmark for issue 4: memory and time of the character sheet job (tiny profile, CPU).

  python blender_scripts/bench_sheet.py [--width 1536 --height 1024 --factor 2 --tile 1024 --steps 4]

Runs, each in a fresh process so peak memory is its own: (a) one plain 1024x1024 generation
with the OpenPose + depth ControlNets, the largest single model call a tiled sheet makes;
(b) the whole sheet job: the sheet at WIDTHxHEIGHT, the tiled upscale, the face pass at
1024 pixels per face. Prints peak RSS above the loaded models and each stage's time. If (b)
stays near (a), the sheet's memory does not grow with its size: a GPU plan that fits one
1024x1024 SDXL image fits the upscaled sheet.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(case, args, models):
    """In this process: load, then run one case; prints a JSON line."""
    import base64

    import numpy as np

    from characterforge_addon.backend import pipelines, profiles, sheet
    from characterforge_addon.core.image_io import encode_png
    from characterforge_addon.core.job_spec import validate_job
    engine = pipelines.Engine(profiles.load_profile("tiny"), models)
    w, h = (1024, 1024) if case == "single" else (args.width, args.height)
    rng = np.random.default_rng(0)
    png = encode_png(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    b64 = base64.b64encode(png).decode()
    spec = {"kind": "character_sheet", "prompt": "a knight", "seed": 1, "steps": args.steps, "width": w, "height": h,
            "profile": "tiny", "controls": {"openpose": {"image": b64}, "depth": {"image": b64, "strength": 0.4}},
            "views": [{"name": f"v{i}", "kind": "body", "box": [i * w // 5, 0, (i + 1) * w // 5, h * 2 // 3],
                       "face_box": [i * w // 5 + 40, 20, i * w // 5 + 120, 100]} for i in range(5)],
            "upscale": {"factor": args.factor, "strength": 0.3, "tile": args.tile, "overlap": 128},
            "faces": {"enabled": True, "strength": 0.4, "size": 1024, "detector": "rig"}}
    spec = validate_job(spec)
    pngs = {"openpose": png, "depth": png}
    engine.pipeline("txt2img", ["controlnet_openpose", "controlnet_depth"])
    engine.pipeline("img2img")
    engine.pipeline("inpaint")
    loaded = peak_mb()

    class Progress:
        def __init__(self):
            self.times, self.peaks, self.name, self.t = {}, {}, None, time.perf_counter()

        def stage(self, name):
            now = time.perf_counter()
            if self.name:
                key = self.name.split(":")[0]
                self.times[key] = self.times.get(key, 0) + now - self.t
                self.peaks[key] = round(peak_mb() - loaded)  # the process peak so far, above the models
            self.name, self.t = name, now

        def step(self, *a):
            pass

    progress = Progress()
    never = type("Never", (), {"is_set": staticmethod(lambda: False)})()
    start = time.perf_counter()
    if case == "single":
        engine.controlnet_images(spec, pngs, [], progress.step, never)
    else:
        sheet.run(engine, spec, pngs, progress, never)
        progress.stage("end")
    print(json.dumps({"case": case, "size": [w, h], "loaded_mb": round(loaded), "peak_mb": round(peak_mb()),
                      "seconds": round(time.perf_counter() - start, 1),
                      "stages_s": {k: round(v, 1) for k, v in progress.times.items()},
                      "peak_after_stage_mb": progress.peaks}), flush=True)


def main():
    parser = argparse.ArgumentParser(prog="bench_sheet.py")
    parser.add_argument("--width", type=int, default=1536)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--factor", type=float, default=2.0)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--case", choices=("single", "sheet"))
    parser.add_argument("--models")
    args = parser.parse_args()
    if args.case:
        return run_case(args.case, args, args.models)

    from characterforge_addon.backend import tiny
    models = tempfile.mkdtemp(prefix="bench-sheet-")
    tiny.ensure(models)
    results = {}
    for case in ("single", "sheet"):
        out = subprocess.run([sys.executable, __file__, "--case", case, "--models", models] + sys.argv[1:],
                             capture_output=True, text=True, check=True)
        results[case] = json.loads(out.stdout.strip().splitlines()[-1])
    single, whole = results["single"], results["sheet"]
    grow = lambda r: r["peak_mb"] - r["loaded_mb"]  # noqa: E731
    print(f"tiny profile, CPU, {args.steps} steps, tile {args.tile}, faces at 1024 px")
    print(f"  one 1024x1024 generation: {grow(single)} MB above the loaded models "
          f"(loaded {single['loaded_mb']} MB), {single['seconds']} s")
    print(f"  sheet {whole['size'][0]}x{whole['size'][1]} -> x{args.factor} + face pass: {grow(whole)} MB above the "
          f"loaded models (loaded {whole['loaded_mb']} MB), {whole['seconds']} s; stages {whole['stages_s']}")
    print(f"  peak above the models after each stage (MB): {whole['peak_after_stage_mb']}")
    print(f"  ratio sheet / single: {grow(whole) / max(grow(single), 1):.2f}")


if __name__ == "__main__":
    main()
