"""GPU benchmark for the speed issue's first row: full-size SDXL + one OpenPose ControlNet with
RANDOM weights from the published SDXL 1.0 configs (no download), 1024², 30 steps: plain
diffusers against CharacterForge's engine running the same job with the fast path this machine
gets (`--one-by-one`: again with each speed-up turned off in turn), side by side in one run.

  python blender_scripts/bench/bench_gpu_sdxl.py [--steps 30] [--size 1024] [--runs 3] [--one-by-one]
                                                 [--models DIR] [--cpu]

The weights are saved once in fp16 (about 9.5 GB) into --models (kept there for the next run;
a temporary folder by default) and both sides load them from there. Each engine's first job is
reported on its own: it moves the weights to the device and, with `compile`, compiles (the
cold start; the compiled code goes to <models>/compile_cache, so a second run of the script
shows the warm start). Prints s/image, it/s and peak memory. Needs a CUDA GPU (about 12 GB);
--cpu runs it on this machine's CPU instead, as a check of the script (minutes a step at 1024²).
"""

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    parser = argparse.ArgumentParser(prog="bench_gpu_sdxl.py")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--one-by-one", action="store_true", help="also the engine with each speed-up off in turn")
    parser.add_argument("--models", help="where the random full-size weights are saved (kept for the next run)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (a check of the script)")
    args = parser.parse_args()
    import torch
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this benchmark needs one (see BENCHMARKS.md), or --cpu to check the script")
    models = args.models or tempfile.mkdtemp(prefix="bench-sdxl-")
    os.makedirs(models, exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(models, "compile_cache")  # as the server sets it
    from full_size_sdxl import save_full_size

    from characterforge_addon.backend.engine import pipelines, speedups
    from characterforge_addon.backend.models import profiles
    made = os.path.join(models, "full-size-random.toml")
    profile = profiles.load_profile(made if os.path.exists(made) else save_full_size(models))
    memory = "cpu" if args.cpu else "gpu"
    on = speedups.chosen()
    probe = pipelines.Engine(profile, models, memory=memory, speedups=on)  # loads nothing until a job
    device, dtype = probe.device, probe.dtype
    print(f"full-size random SDXL + OpenPose ControlNet, {args.size}², {args.steps} steps, {device} {dtype}; "
          f"fast path here: {', '.join(sorted(on))}", flush=True)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def timed(fn):
        """(first call's seconds, median of --runs more, peak GB)."""
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync()
        start = time.perf_counter()
        fn()
        sync()
        first = time.perf_counter() - start
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        peak = f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device == "cuda" else "not measured on a CPU"
        return first, statistics.median(times), peak

    job, pngs, control = posed_job(profile.name, args.size, args.steps)
    start = time.perf_counter()
    run = plain_run(models, device, dtype, job, control)
    loading = time.perf_counter() - start
    first, steady, peak = timed(run)
    results = [("plain diffusers", first + loading, steady, peak)]  # loading counted, as the engine's first job does
    del run
    free(device)  # the plain pipeline's weights
    variants = [("CharacterForge, fast path", ())]
    if args.one_by_one:
        variants += [(f"CharacterForge without {name}", (name,)) for name in sorted(on)]
    for label, without in variants:
        results.append((label, *timed(engine_run(pipelines.Engine(profile, models, memory=memory,
                                                                  speedups=on - set(without)), job, pngs))))
        free(device)  # that engine's weights, before the next one loads its own
    plain = results[0][2]
    for label, first, steady, peak in results:
        print(f"{label}: first job {first:.2f} s (loading the weights included); then {steady:.2f} s/image, "
              f"{args.steps / steady:.2f} it/s ({plain / steady:.2f}x plain); peak {peak}", flush=True)


def posed_job(profile, size, steps):
    """(validated posed_character job, its control PNGs by name, the control picture)."""
    import base64

    import numpy as np
    from PIL import Image

    from characterforge_addon.core.image_io import encode_png
    from characterforge_addon.core.spec.job_spec import validate_job
    pixels = np.zeros((size, size, 3), np.uint8)
    pixels[size // 4:size * 3 // 4, size // 2 - 4:size // 2 + 4] = 255  # a stroke for the OpenPose net to see
    png = encode_png(pixels)
    job = validate_job({"kind": "posed_character", "prompt": "a knight", "seed": 1, "steps": steps, "width": size,
                        "height": size, "profile": profile,
                        "controls": {"openpose": {"image": base64.b64encode(png).decode()}}})
    return job, {"openpose": png}, Image.fromarray(pixels)


def engine_run(engine, job, pngs):
    """A call of the engine's posed-character job."""
    never = type("Never", (), {"is_set": staticmethod(lambda: False)})()
    return lambda: engine.posed_character(job, pngs, lambda *a: None, never)


def plain_run(models, device, dtype, job, control):
    """A call of plain diffusers' ControlNet pipeline on the same weights, the job's settings."""
    import torch
    from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline
    controlnet = ControlNetModel.from_pretrained(os.path.join(models, "controlnet"), dtype=dtype)
    pipe = StableDiffusionXLControlNetPipeline.from_pretrained(os.path.join(models, "base"), controlnet=controlnet,
                                                               dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=True)

    def run():
        return pipe(prompt=job["prompt"], image=control, width=job["width"], height=job["height"],
                    num_inference_steps=job["steps"], guidance_scale=job["guidance"],
                    generator=torch.Generator("cpu").manual_seed(job["seed"])).images
    return run


def free(device):
    import torch
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
