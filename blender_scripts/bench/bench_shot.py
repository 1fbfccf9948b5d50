"""Benchmark for issue 5: time and peak memory of a shot (two characters composited in place
or cut out and harmonized, four hands redrawn) and of an expression edit, against one plain
generation of the same size with the same two ControlNets.

  python blender_scripts/bench/bench_shot.py [--size 1024 --steps 30 --memory auto --gpu-limit-gb 0 --full-size]

Default: the tiny profile on this machine's device. --full-size: SDXL 1.0-shaped random
weights (bench_sheet.py's), for a GPU. Identity adapters are left out (their full-size
random weights would need the ViT-H image encoder); they add one adapter's attention per
cross-attention layer.
"""

import argparse
import base64
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def specs(size, steps, profile, native):
    import numpy as np

    from characterforge_addon.core.image_io import encode_png
    rng = np.random.default_rng(0)
    b64 = lambda a: base64.b64encode(encode_png(a)).decode()  # noqa: E731
    picture = b64(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
    left, right = np.zeros((size, size), np.uint8), np.zeros((size, size), np.uint8)
    left[size // 8:size * 7 // 8, size // 8:size * 3 // 8] = 255
    right[size // 8:size * 7 // 8, size * 5 // 8:size * 7 // 8] = 255
    q = size // 16
    hands = [[size // 8, size // 2, size // 8 + 2 * q, size // 2 + 2 * q],
             [size * 3 // 8 - 2 * q, size // 2, size * 3 // 8, size // 2 + 2 * q],
             [size * 5 // 8, size // 2, size * 5 // 8 + 2 * q, size // 2 + 2 * q],
             [size * 7 // 8 - 2 * q, size // 2, size * 7 // 8, size // 2 + 2 * q]]
    common = {"seed": 1, "steps": steps, "width": size, "height": size, "profile": profile, "prompt": "a courtyard"}
    controls = {"openpose": {"image": picture}, "depth": {"image": picture},
                "hand_depth": {"image": picture, "strength": 0.6}}
    shot = dict(common, kind="shot", background={"image": picture}, controls=controls,
                characters=[{"name": "Hero", "prompt": "a knight", "mask": b64(left)},
                            {"name": "Rival", "prompt": "a witch", "mask": b64(right)}],
                hands={"boxes": hands})
    return {"one plain image": dict(common, kind="posed_character",
                                    controls={"openpose": {"image": picture}, "depth": {"image": picture}}),
            "shot in place": shot,
            "shot cut-out": dict(shot, composite={"mode": "cutout"}),
            "expression": dict(common, kind="expression", image=picture, expression="happy",
                               face_box=[size // 4, size // 4, size // 4 + size // 8, size // 4 + size // 8],
                               detector="rig")}


def main():
    parser = argparse.ArgumentParser(prog="bench_shot.py")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--memory", default="auto")
    parser.add_argument("--gpu-limit-gb", type=float, default=0)
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--models", help="folder for the models (a full-size set made there is reused)")
    args = parser.parse_args()
    import resource

    import torch

    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.jobs import expression, posed, shot
    from characterforge_addon.backend.models import profiles
    from characterforge_addon.backend import tiny
    from characterforge_addon.core.spec.job_spec import validate_job
    models = args.models or tempfile.mkdtemp(prefix="bench-shot-")
    os.makedirs(models, exist_ok=True)
    if args.full_size:
        from full_size_sdxl import save_full_size
        made = os.path.join(models, "full-size-random.toml")
        profile = profiles.load_profile(made if os.path.exists(made) else save_full_size(models))
    else:
        tiny.ensure(models)
        profile = profiles.load_profile("tiny")
    if args.gpu_limit_gb and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.gpu_limit_gb * 2**30 / total))
    engine = pipelines.Engine(profile, models, memory=args.memory)
    on_gpu = engine.device == "cuda"

    def peak_mb():
        if on_gpu:
            return torch.cuda.max_memory_allocated() / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    class Progress:
        def __init__(self):
            self.stages, self.name, self.t = {}, None, time.perf_counter()

        def stage(self, name):
            now = time.perf_counter()
            if self.name:
                key = self.name.split(":")[0]
                self.stages[key] = round(self.stages.get(key, 0) + now - self.t, 1)
            self.name, self.t = name, now

        def step(self, *a):
            pass

    never = type("Never", (), {"is_set": staticmethod(lambda: False)})()
    print(f"{'full-size random SDXL' if args.full_size else profile.name}, {engine.device} (memory mode "
          f"{engine.memory}{f', capped at {args.gpu_limit_gb} GB' if args.gpu_limit_gb else ''}), {args.size}², "
          f"{args.steps} steps, hands at {profile.native_size}²", flush=True)
    for name, spec in specs(args.size, args.steps, profile.name, profile.native_size).items():
        spec = validate_job(spec)
        pngs = {n: base64.b64decode(c["image"]) for n, c in spec["controls"].items()}
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        progress = Progress()
        start = time.perf_counter()
        if spec["kind"] == "posed_character":
            posed.run(engine, spec, pngs, progress, never, None, None)
        elif spec["kind"] == "shot":
            shot.run(engine, spec, pngs, progress, never, None, None)
        else:
            expression.run(engine, spec, progress, never, None)
        progress.stage("end")
        print(json.dumps({"job": name, "seconds": round(time.perf_counter() - start, 1),
                          "peak_mb": round(peak_mb()), "stages_s": progress.stages}), flush=True)


if __name__ == "__main__":
    main()
