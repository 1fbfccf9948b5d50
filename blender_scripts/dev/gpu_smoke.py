"""GPU smoke run: every job kind (posed character with identity, character sheet, background,
shot in place and cut out with two identities, expression, a LoRA training) through the real backend code on
CUDA, with the tiny components of each model family in half precision (or the dtype given), in
each memory mode asked for. Catches device and dtype mistakes ("same dtype", tensors left on the
CPU) that a CPU run cannot show. A kind a family cannot do is listed as refused, as the backend
would refuse it.

  python blender_scripts/dev/gpu_smoke.py [--dtype float16] [--memory gpu model_offload group_offload sequential_offload] [--weights native fp8]
                                          [--profiles tiny tiny-union tiny-qwen-edit tiny-flux2-klein]

Prints one line per profile, job kind and mode: ok with seconds and peak GPU memory, or the error.
"""

import argparse
import base64
import io
import os
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def b64(pixels):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def jobs(rng):
    import numpy as np
    w, h = 128, 96
    noise = lambda seed, ww=w, hh=h: b64(np.random.default_rng(seed).integers(0, 255, (hh, ww, 3), dtype=np.uint8))  # noqa: E731
    face = lambda c: b64(np.full((64, 64, 3), c, np.uint8))  # noqa: E731
    mask = np.zeros((h, w), np.uint8)
    left, right = mask.copy(), mask.copy()
    left[10:90, 16:48], right[10:90, 80:112] = 255, 255
    common = {"seed": 1, "steps": 3, "width": w, "height": h, "profile": "smoke", "prompt": "a knight"}
    controls = {"openpose": {"image": noise(1)}, "depth": {"image": noise(2), "strength": 0.5},
                "hand_depth": {"image": noise(3), "strength": 0.5}}
    identity = {"images": [face(200)], "scale": 0.7, "embedding": list(rng.standard_normal(512) / 22.6)}
    shot = dict(common, kind="shot", background={"image": noise(4)}, controls=controls,
                characters=[{"name": "Hero", "prompt": "a knight", "mask": b64(left), "identity": identity},
                            {"name": "Rival", "prompt": "a witch", "mask": b64(right),
                             "identity": {"images": [face(60)], "scale": 0.7,
                                          "embedding": list(rng.standard_normal(512) / 22.6)}}],
                composite={"grow": 4, "feather": 2}, hands={"boxes": [[20, 40, 40, 60], [88, 40, 108, 60]]})
    jobs = {
        "posed_character": dict(common, kind="posed_character", controls=controls, identity=identity),
        "character_sheet": dict(common, kind="character_sheet", width=256, controls=controls | {
            "openpose": {"image": noise(5, 256)}, "depth": {"image": noise(6, 256)}, "hand_depth": {"image": noise(7, 256)}},
            views=[{"name": "front", "kind": "body", "box": [0, 0, 128, 96], "face_box": [50, 10, 80, 40]},
                   {"name": "face_front", "kind": "face", "box": [128, 0, 256, 96], "face_box": [170, 20, 210, 60]}],
            upscale={"factor": 1.5, "tile": 128, "overlap": 32}, faces={"detector": "rig", "size": 128}),
        "background": dict(common, kind="background", controls={"depth": {"image": noise(8)}},
                           detail={"tile": 64, "overlap": 16}),
        "shot (in place)": shot,
        "shot (cut-out)": dict(shot, composite={"mode": "cutout", "grow": 4, "feather": 2, "harmonize": 0.4}),
        "expression": dict(common, kind="expression", image=noise(9), expression="surprised",
                           face_box=[40, 20, 88, 68], detector="rig", identity=identity),
    }
    # what the edit families draw: the sheet without its redraw passes, the background without detail
    jobs["sheet (drawn only)"] = dict(jobs["character_sheet"], identity=identity, upscale={"factor": 1, "strength": 0},
                                      faces={"enabled": False})
    jobs["background (plain)"] = dict(jobs["background"], sharp=False)
    # drafts: the draft LoRA loaded into offloaded / float8 denoisers, switched on and off again
    jobs["posed (draft)"] = dict(jobs["posed_character"], draft=True)
    jobs["shot (draft)"] = dict(shot, draft=True)
    jobs["posed (final after draft)"] = jobs["posed_character"]
    # a character LoRA: float16 weights under a float32 LoRA (loss scaling), samples, a checkpoint
    jobs["train_lora"] = {"kind": "train_lora", "profile": "smoke", "trigger": "smoke_hero", "steps": 6, "rank": 4,
                          "resolution": 64, "sample_every": 3, "checkpoint_every": 3,
                          "images": [{"image": noise(20 + i, 64, 96), "caption": "smoke_hero, full body",
                                      "mirror_caption": "smoke_hero, full body, mirrored"} for i in range(6)]}
    return jobs


def run_kind(engine, spec):
    from characterforge_addon.backend.jobs import background, expression, posed, sheet, shot
    from characterforge_addon.core.spec.job_spec import validate_job
    spec = validate_job(spec)
    progress = type("Progress", (), {"stage": lambda self, name: None, "step": staticmethod(lambda *a: None),
                                     "show": lambda self, png: None})()
    never = type("Never", (), {"is_set": staticmethod(lambda: False)})()
    if spec["kind"] == "train_lora":
        from characterforge_addon.backend.jobs import training
        from characterforge_addon.backend.models.lora_files import LoraStore
        work = tempfile.mkdtemp(prefix="gpu-smoke-train-")
        training.check(spec, engine.profile, engine.family, engine.weights, work, [(64, 96)] * len(spec["images"]))
        samples = []
        training.run(engine, spec, "smoke", progress, never, lambda: False, work, LoraStore(work),
                     lambda name, data: samples.append(data) if name.startswith("sample_") else None)
        from characterforge_addon.core.image_io import decode_png
        return [(f"sample {i}", decode_png(png), {}) for i, png in enumerate(samples)]
    pngs = {n: base64.b64decode(c["image"]) for n, c in spec["controls"].items()}
    pngs["identity"] = [base64.b64decode(i) for i in spec.get("identity", {}).get("images", [])]
    kind = spec["kind"]
    if kind == "posed_character":
        return posed.run(engine, spec, pngs, progress, never, None, None)
    if kind == "character_sheet":
        return sheet.run(engine, spec, pngs, progress, never)
    if kind == "background":
        return background.run(engine, spec, pngs, progress, never)
    if kind == "shot":
        return shot.run(engine, spec, pngs, progress, never, None, None)
    return expression.run(engine, spec, progress, never, None)


def main():
    parser = argparse.ArgumentParser(prog="gpu_smoke.py")
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    parser.add_argument("--memory", nargs="+", default=["gpu", "model_offload", "group_offload", "sequential_offload"])
    parser.add_argument("--weights", nargs="+", default=["native", "fp8"])
    parser.add_argument("--profiles", nargs="+", default=["tiny", "tiny-union", "tiny-qwen-edit", "tiny-flux2-klein"],
                        help="built-in tiny profiles: one per model family, and SDXL with a ControlNet-Union")
    args = parser.parse_args()
    import numpy as np
    import torch

    from characterforge_addon.backend import families
    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.models import profiles
    from characterforge_addon.backend import tiny
    from characterforge_addon.core.spec.job_spec import JobSpecError, needs, validate_job
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this smoke run is for GPU machines (the CPU path is what make test runs)")
    models = tempfile.mkdtemp(prefix="gpu-smoke-")
    tiny.ensure(models)
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, tiny components in {args.dtype}")
    failures = 0
    for base in args.profiles:
        text = open(os.path.join(profiles.BUILTIN_DIR, f"{base}.toml")).read()
        text = text.replace(f'name = "{base}"', 'name = "smoke"').replace('gpu_dtype = "float32"',
                                                                         f'gpu_dtype = "{args.dtype}"')
        profile = profiles.parse_profile(text, os.path.join(models, "smoke.toml"))
        able = families.capabilities(profile)
        for memory, weights in [(m, w) for m in args.memory for w in args.weights]:
            engine = pipelines.Engine(profile, models, memory=memory, weights=weights)
            mode = f"{memory}/{weights}"
            for name, spec in jobs(np.random.default_rng(0)).items():
                missing = needs(validate_job(spec)) - able
                if missing:
                    print(f"{base:17s} {mode:25s} {name:18s} refused: {profile.family} cannot do "
                          f"{', '.join(sorted(missing))}", flush=True)
                    continue
                torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                try:
                    outputs = run_kind(engine, spec)
                    bad = [n for n, pixels, _ in outputs if not np.isfinite(pixels).all()]
                    status = "ok" if not bad else f"non-finite pixels in {bad}"
                except JobSpecError as exc:  # refused before queueing, as the backend would (float8 training)
                    print(f"{base:17s} {mode:25s} {name:18s} refused: {exc}", flush=True)
                    continue
                except Exception as exc:  # report every kind, then fail at the end
                    status = f"FAILED {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
                failures += status != "ok"
                print(f"{base:17s} {mode:25s} {name:18s} {status} ({time.perf_counter() - start:.1f} s, "
                      f"peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MB)", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
