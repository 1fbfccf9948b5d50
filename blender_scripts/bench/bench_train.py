"""Benchmark for issue 16: a character LoRA's training time and memory, ours against the plain
loop, side by side in one run.

  python blender_scripts/bench/bench_train.py [--steps 100 --resolution 128]
  python blender_scripts/bench/bench_train.py --full-size --resolution 1024 --gpu-limit-gb 12 --steps 100

Default: the tiny profile on this machine's device. --full-size builds SDXL 1.0's architecture
with RANDOM weights (bench_sheet.py's), loaded through a profile like a user's own folder; on a
GPU, --gpu-limit-gb caps what PyTorch may allocate, to show the training fits a smaller card.

Each case runs in a fresh process (its own peak memory):
  ours   the train_lora job's loop (backend/jobs/training.py): latents and caption embeddings
         computed once, gradient checkpointing, the VAE and text encoders off the GPU;
  plain  the same LoRA and optimizer the way a first script writes it: every step encodes its
         pictures with the VAE and its captions with the text encoders, no checkpointing,
         every model on the device.
Prints seconds per 100 steps and peak memory (GPU: allocated by PyTorch; CPU: resident).
"""

import argparse
import base64
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pictures(count, side):
    """Tall figures and square faces, as a sheet's views and faces are."""
    import numpy as np
    from PIL import Image
    out = []
    for i in range(count):
        w, h = (side, side) if i % 3 == 2 else (side * 2 // 3, side)
        pixels = np.zeros((h, w, 3), np.uint8) + np.array([210, 90, 40], np.uint8)
        pixels[h // 4:3 * h // 4, w // 3:2 * w // 3] = np.random.default_rng(i).integers(0, 255, 3)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "PNG")
        out.append({"image": base64.b64encode(buf.getvalue()).decode(), "caption": f"cf_hero, view {i}",
                    "mirror_caption": f"cf_hero, mirrored view {i}"})
    return out


def profile_for(args, models):
    from characterforge_addon.backend.models import profiles
    from characterforge_addon.backend import tiny
    if args.full_size:
        from full_size_sdxl import save_full_size
        path = os.path.join(models, "full-size-random.toml")
        if not os.path.exists(path):
            save_full_size(models)
        text = open(path).read().replace('family = "sdxl"', 'family = "sdxl"\ngpu_dtype = "float16"')
        return profiles.parse_profile(text, path)
    tiny.ensure(models)
    return profiles.load_profile("tiny")


class Progress:
    """Times the training loop alone (not the one-time encoding, nor the samples after it)."""

    def __init__(self):
        self.started = self.ended = None

    def stage(self, name):
        if name == "training" and self.started is None:
            self.started = time.perf_counter()
        if name.startswith("measuring the loss after"):
            self.ended = time.perf_counter()

    def step(self, *args):
        pass

    def show(self, png):
        pass


def peaks(device):
    import torch
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if device == "cuda" else None,
            "rss_mb": round(rss)}


def run_ours(args, engine, spec):
    """The train_lora job's loop; returns its seconds."""
    from characterforge_addon.backend.jobs import training
    from characterforge_addon.backend.models.lora_files import LoraStore
    work = tempfile.mkdtemp(prefix="bench-train-")
    never = type("Never", (), {"is_set": staticmethod(lambda: False)})()
    progress = Progress()
    training.run(engine, spec, "bench", progress, never, lambda: False, work, LoraStore(work),
                 lambda name, data: None)
    return progress.ended - progress.started


def run_plain(args, engine, spec):
    """The plain loop: PEFT LoRA on the UNet, AdamW, every input encoded at every step; returns
    the loop's seconds."""
    import numpy as np
    import torch
    from diffusers import DDPMScheduler
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig
    from PIL import Image

    from characterforge_addon.backend.engine.pictures import decode_image_bytes
    from characterforge_addon.backend.jobs.training import TARGETS, TextEncoding
    pipe = engine.base()
    where = torch.device(engine.device)
    pipe.to(where)
    unet, vae, text = pipe.unet, pipe.vae, TextEncoding(pipe)
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=spec["rank"], lora_alpha=spec["rank"], init_lora_weights="gaussian",
                                target_modules=TARGETS["unet"]))
    cast_training_params(unet, torch.float32)
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    scaler = torch.amp.GradScaler("cuda") if engine.device == "cuda" and unet.dtype == torch.float16 else None
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    side = spec["resolution"]
    items = [(decode_image_bytes(base64.b64decode(p["image"]), "image").resize((side, side), Image.LANCZOS),
              p["caption"]) for p in spec["images"]]
    started = time.perf_counter()
    for step in range(spec["steps"]):
        picture, caption = items[step % len(items)]
        pixels = torch.from_numpy(np.asarray(picture, np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
        with torch.no_grad():
            latents = vae.encode(pixels.to(where, vae.dtype)).latent_dist.sample() * vae.config.scaling_factor
            states, pooled = text([caption], where)
        noise = torch.randn_like(latents)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (1,), device=where)
        time_ids = torch.tensor([[side, side, 0, 0, side, side]], dtype=unet.dtype, device=where)
        prediction = unet(noise_scheduler.add_noise(latents, noise, t), t, encoder_hidden_states=states,
                          added_cond_kwargs={"text_embeds": pooled, "time_ids": time_ids}, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(prediction.float(), noise.float())
        optimizer.zero_grad()
        (scaler.scale(loss) if scaler else loss).backward()
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
    return time.perf_counter() - started


def run_case(args):
    """In this process: one case; prints a JSON line."""
    import torch

    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.core.spec.job_spec import validate_job
    if args.gpu_limit_gb and torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.gpu_limit_gb * 2**30 / total))
    engine = pipelines.Engine(profile_for(args, args.models), args.models, memory=args.memory)
    spec = validate_job({"kind": "train_lora", "profile": engine.profile.name, "trigger": "cf_hero",
                         "steps": args.steps, "rank": 16, "resolution": args.resolution, "sample_every": 0,
                         "checkpoint_every": args.steps, "images": pictures(9, args.resolution)})
    runner = run_ours if args.case == "ours" else run_plain
    try:
        seconds = runner(args, engine, spec)
        out = {"case": args.case, "s_per_100_steps": round(100 * seconds / args.steps, 1), **peaks(engine.device)}
    except Exception as exc:  # an out-of-memory plain run is a result too
        out = {"case": args.case, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}",
               **peaks(engine.device)}
    print(json.dumps(out), flush=True)


def main():
    parser = argparse.ArgumentParser(prog="bench_train.py")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--full-size", action="store_true")
    parser.add_argument("--gpu-limit-gb", type=float, default=0)
    parser.add_argument("--memory", default="auto")
    parser.add_argument("--models", default=os.path.join(tempfile.gettempdir(), "characterforge-bench-train"))
    parser.add_argument("--case", choices=("ours", "plain"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        return run_case(args)
    os.makedirs(args.models, exist_ok=True)
    if args.full_size:  # built once, before the timed processes
        profile_for(args, args.models)
    rows = []
    for case in ("ours", "plain"):
        command = [sys.executable, __file__, "--case", case] + [a for a in sys.argv[1:]]
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        rows.append(json.loads(lines[-1]) if lines else {"case": case, "error": result.stderr[-400:]})
    what = "full-size SDXL (random weights)" if args.full_size else "tiny SDXL"
    print(f"\nLoRA training, {what}, rank 16, {args.resolution}px, {args.steps} steps"
          + (f", PyTorch capped at {args.gpu_limit_gb} GB" if args.gpu_limit_gb else ""))
    print(f"{'case':6s} {'s / 100 steps':>14s} {'peak GPU MB':>12s} {'peak RSS MB':>12s}")
    for row in rows:
        if "error" in row:
            print(f"{row['case']:6s} {row['error']}")
        else:
            print(f"{row['case']:6s} {row['s_per_100_steps']:>14} {str(row['gpu_mb']):>12s} {row['rss_mb']:>12}")


if __name__ == "__main__":
    main()
