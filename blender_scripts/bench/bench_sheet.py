"""Benchmark for issue 4: memory and time of the character sheet job.

  python blender_scripts/bench/bench_sheet.py [--width 1536 --height 1024 --factor 2 --tile 1024 --steps 4]
  python blender_scripts/bench/bench_sheet.py --full-size --memory model_offload --gpu-limit-gb 12 --steps 30

Default: the tiny profile on this machine's device. --full-size builds SDXL 1.0's architecture
and two ControlNets with RANDOM weights (no download; bench_gpu_sdxl.py's configs), saves them
as diffusers folders and loads them through a profile, as a user's own folders would be; on a
GPU, --gpu-limit-gb caps what PyTorch may allocate, to show the job fits a smaller card.

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

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gpu_peak_mb():
    import torch
    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0


def run_case(case, args, models):
    """In this process: load, then run one case; prints a JSON line."""
    import base64

    import numpy as np

    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.jobs import sheet
    from characterforge_addon.backend.models import profiles
    from characterforge_addon.core.image_io import encode_png
    from characterforge_addon.core.spec.job_spec import validate_job
    if args.gpu_limit_gb:
        import torch
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.gpu_limit_gb * 2**30 / total))
    profile = profiles.load_profile(args.profile)
    engine = pipelines.Engine(profile, models, memory=args.memory)
    w, h = (1024, 1024) if case == "single" else (args.width, args.height)
    rng = np.random.default_rng(0)
    png = encode_png(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    b64 = base64.b64encode(png).decode()
    spec = {"kind": "character_sheet", "prompt": "a knight", "seed": 1, "steps": args.steps, "width": w, "height": h,
            "profile": profile.name, "controls": {"openpose": {"image": b64}, "depth": {"image": b64, "strength": 0.4}},
            "views": [{"name": f"v{i}", "kind": "body", "box": [i * w // 5, 0, (i + 1) * w // 5, h * 2 // 3],
                       "face_box": [i * w // 5 + 40, 20, i * w // 5 + 120, 100]} for i in range(5)],
            "upscale": {"factor": args.factor, "strength": 0.3, "tile": args.tile, "overlap": 128},
            "faces": {"enabled": True, "strength": 0.4, "size": profile.native_size, "detector": "rig"}}
    spec = validate_job(spec)
    pngs = {"openpose": png, "depth": png}
    engine.pipeline("txt2img", ["controlnet_openpose", "controlnet_depth"])
    engine.pipeline("img2img")
    engine.pipeline("inpaint")
    loaded, gpu_loaded = peak_mb(), gpu_peak_mb()

    class Progress:
        def __init__(self):
            self.times, self.peaks, self.name, self.t = {}, {}, None, time.perf_counter()

        def stage(self, name):
            now = time.perf_counter()
            if self.name:
                key = self.name.split(":")[0]
                self.times[key] = self.times.get(key, 0) + now - self.t
                # the peak so far above the loaded models: GPU memory on a GPU, else the process's
                self.peaks[key] = round(gpu_peak_mb() - gpu_loaded if engine.device == "cuda" else peak_mb() - loaded)
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
    print(json.dumps({"case": case, "size": [w, h], "device": engine.device, "memory": engine.memory,
                      "loaded_mb": round(loaded), "peak_mb": round(peak_mb()),
                      "gpu_loaded_mb": round(gpu_loaded), "gpu_peak_mb": round(gpu_peak_mb()),
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
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--memory", default="auto", help="auto, gpu, model_offload, sequential_offload, cpu")
    parser.add_argument("--full-size", action="store_true", help="SDXL 1.0-shaped random weights instead of tiny")
    parser.add_argument("--gpu-limit-gb", type=float, default=0)
    args = parser.parse_args()
    if args.case:
        return run_case(args.case, args, args.models)

    from characterforge_addon.backend import tiny
    models = tempfile.mkdtemp(prefix="bench-sheet-")
    tiny.ensure(models)
    forward = [a for a in sys.argv[1:] if a != "--full-size"]
    if args.full_size:
        from full_size_sdxl import save_full_size
        forward += ["--profile", save_full_size(models)]
    results = {}
    for case in ("single", "sheet"):
        out = subprocess.run([sys.executable, __file__, "--case", case, "--models", models] + forward,
                             stdout=subprocess.PIPE, text=True, check=True)
        results[case] = json.loads(out.stdout.strip().splitlines()[-1])
    single, whole = results["single"], results["sheet"]
    on_gpu = single["device"] == "cuda"
    kind, peak, loaded = ("GPU", "gpu_peak_mb", "gpu_loaded_mb") if on_gpu else ("RSS", "peak_mb", "loaded_mb")
    grow = lambda r: r[peak] - r[loaded]  # noqa: E731
    print(f"{'full-size random SDXL' if args.full_size else args.profile}, {single['device']} "
          f"(memory mode {single['memory']}{f', capped at {args.gpu_limit_gb} GB' if args.gpu_limit_gb else ''}), "
          f"{args.steps} steps, tile {args.tile}")
    for r, label in ((single, "one 1024x1024 generation"), (whole, f"sheet {whole['size'][0]}x{whole['size'][1]} -> "
                                                                     f"x{args.factor} + face pass")):
        print(f"  {label}: {kind} peak {r[peak]} MB, {grow(r)} MB above the loaded models (loaded {r[loaded]} MB), "
              f"{r['seconds']} s; stages {r['stages_s']}")
    print(f"  peak above the models after each stage (MB): {whole['peak_after_stage_mb']}")
    print(f"  ratio sheet / single: {grow(whole) / max(grow(single), 1):.2f}")


if __name__ == "__main__":
    main()
