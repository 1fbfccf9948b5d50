"""GPU benchmark of the video path: Wan2.1-VACE-1.3B at full size with RANDOM weights built from
the published configs (no download), one animated segment (the rig's pose video in the
characters' masks, the set's video kept, a picture of the character) made by CharacterForge's
engine in each memory plan: time per second of video and peak GPU memory.

  python blender_scripts/bench/bench_gpu_video.py [--frames 81] [--size 832x480] [--steps 2] [--full-steps 30]
                                                  [--plans gpu,gpu_text_encoder_cpu,model_offload,group_offload,gpu:fp8]
                                                  [--models DIR] [--json FILE] [--compile] [--cpu]

Configs (the diffusers conversion script's for "Wan-VACE-1.3B", scripts/convert_wan_to_diffusers.py):
transformer 30 layers of 12 x 128 heads, FFN 8960, VACE blocks at layers 0, 2, ..., 28 (2.15 B
parameters); text encoder UMT5-XXL (d_model 4096, 24 layers, 64 heads, d_ff 10240, vocabulary
256384: 5.7 B); the Wan2.1 VAE (AutoencoderKLWan's defaults). Saved once in bfloat16 (about 16
GB) into --models, loaded from there by the engine through a profile naming the folder, as a
user's own diffusers folder would be. The prompt goes through a tokenizer made here (its length
does not matter: the pipeline pads to 512 tokens).

A plan is a memory mode, optionally `:fp8` (the transformer stored in float8), or
`gpu_text_encoder_cpu` (all on the GPU, the text encoder encoding on the CPU). Each plan runs the
segment once with --steps steps; "per second of video" is computed for --full-steps steps from the
measured prompt encoding, step time and decode: (encode + full_steps x step + the rest) /
(frames / 16 fps). Random weights may decode NaN (the result is noise anyway): the time is still
measured and said. --cpu runs the same script on this machine's CPU with the tiny video shapes
(backend/tiny/video.py) at 64x64, 9 frames: a check of the script, not a figure.
"""

import argparse
import gc
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

FPS = 16  # Wan2.1's frame rate: an 81-frame segment is 5.06 s of video
VACE_13B = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
                text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", rope_max_seq_len=1024, vace_layers=list(range(0, 30, 2)),
                vace_in_channels=96)
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", is_gated_act=True, tie_word_embeddings=False)


def build_full_size(folder, device):
    """The random full-size pipeline saved as a diffusers folder in bfloat16 (made on `device`)."""
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanVACEPipeline, WanVACETransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from characterforge_addon.backend.tiny.video import _tokenizer
    started = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):  # initialised where it is quick, saved from the CPU
        transformer = WanVACETransformer3DModel(**VACE_13B).to("cpu", torch.bfloat16)
        text_encoder = UMT5EncoderModel(UMT5Config(**UMT5_XXL)).to("cpu", torch.bfloat16)
        vae = AutoencoderKLWan().to("cpu", torch.bfloat16)
    pipe = WanVACEPipeline(tokenizer=_tokenizer(), text_encoder=text_encoder, vae=vae, transformer=transformer,
                           scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.save_pretrained(folder, safe_serialization=True)
    counts = {n: sum(p.numel() for p in m.parameters()) for n, m in (("transformer", transformer),
                                                                      ("text_encoder", text_encoder), ("vae", vae))}
    del pipe, transformer, text_encoder, vae
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    print(f"random full-size Wan2.1-VACE-1.3B built and saved in {time.perf_counter() - started:.0f} s: "
          + ", ".join(f"{n} {c / 1e9:.2f} B" for n, c in counts.items()), flush=True)


def profile_for(folder, tiny):
    from characterforge_addon.backend.models import profiles
    return profiles.parse_profile(
        f'name = "bench-wan-vace"\nfamily = "wan_vace"\ngpu_dtype = "{"float32" if tiny else "bfloat16"}"\n'
        f'native_size = 480\n[models.base]\nfolder = "{folder}"\n', where=os.path.join(folder, "bench.toml"))


def clip(width, height, frames):
    """A segment's inputs: random pose-like maps, a mask over the middle third, a set, a picture."""
    import numpy as np
    from PIL import Image

    from characterforge_addon.backend.jobs.animation import Clip
    rng = np.random.default_rng(0)

    def picture(*shape):
        return Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))

    mask = np.zeros((height, width), np.uint8)
    mask[:, width // 3: 2 * width // 3] = 255
    spec = {"prompt": "a knight in silver armour walking across a courtyard", "negative_prompt": "", "seed": 0,
            "steps": 0, "guidance": 5.0, "width": width, "height": height, "control": "openpose", "mode": "replace",
            "strength": 1.0}
    maps = [{"openpose": picture(height, width, 3), "mask": Image.fromarray(mask),
             "background": picture(height, width, 3)} for _ in range(frames)]
    return Clip(spec, maps, [], [picture(height, width, 3)])


def run_plan(plan, profile, models, args, size, tiny):
    """One memory plan: {plan, mode, text encoder, seconds..., peak GB}."""
    import torch

    from characterforge_addon.backend.engine.pipelines import Engine, GenerationError
    mode, _, weights = plan.partition(":")
    te_cpu = mode == "gpu_text_encoder_cpu"
    memory = "cpu" if args.cpu else ("gpu" if te_cpu else mode)
    from characterforge_addon.backend.engine import speedups
    # torch.compile's cold start (a minute a plan) is left out unless asked for: the figures are the warm path's
    on = speedups.chosen(without=() if args.compile else ("compile",))
    engine = Engine(profile, models, memory=memory, weights=weights or "native", speedups=on)
    if te_cpu:
        engine.text_encoder_place = "cpu"
    cuda = engine.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
    started = time.perf_counter()
    engine.base()
    loaded = time.perf_counter() - started
    segment = clip(*size, args.frames)
    segment.spec["steps"] = args.steps
    steps, note = [], ""

    def on_step(step, total, elapsed):
        if cuda:
            torch.cuda.synchronize()
        steps.append(time.perf_counter())

    encode_started = time.perf_counter()
    engine.family.prompt_embeddings(engine, engine.base(), segment.spec)  # the shot's prompt, once
    if cuda:
        torch.cuda.synchronize()
    encode = time.perf_counter() - encode_started
    started = time.perf_counter()
    try:
        engine.family.animate(engine, segment, on_step, threading.Event())
    except GenerationError as exc:
        note = f"random weights decoded badly ({str(exc).split(':')[0]}); timed all the same"
    if cuda:
        torch.cuda.synchronize()
    total = time.perf_counter() - started
    step = (steps[-1] - steps[0]) / (len(steps) - 1) if len(steps) > 1 else (steps[0] - started)
    rest = total - step * len(steps)  # conditioning encode, first step's warm-up share, decode
    seconds_of_video = args.frames / FPS
    full = encode + args.full_steps * step + rest
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    out = {"plan": plan, "memory_mode": engine.memory, "text_encoder": engine.text_encoder_place,
           "weights": engine.weights, "vae_tiling": engine.vae_tiling, "speedups": sorted(engine.speedups),
           "load_s": round(loaded, 1),
           "encode_s": round(encode, 2), "step_s": round(step, 3), "rest_s": round(rest, 2),
           "segment_s": round(total, 2), "full_steps": args.full_steps,
           "s_per_video_second": round(full / seconds_of_video, 2), "peak_gb": round(peak, 2) if peak else None,
           "note": note}
    del engine, segment
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_gpu_video.py", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--size", default="832x480", help="WIDTHxHEIGHT, multiples of 16")
    parser.add_argument("--steps", type=int, default=2, help="steps run per plan (the step time is measured)")
    parser.add_argument("--full-steps", type=int, default=30, help="steps the per-second figure is computed for")
    parser.add_argument("--plans", default="gpu,gpu_text_encoder_cpu,model_offload,group_offload,gpu:fp8")
    parser.add_argument("--models", help="where the random full-size weights are saved (kept for the next run)")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--compile", action="store_true", help="with the compile speed-up (its cold start is timed)")
    parser.add_argument("--cpu", action="store_true", help="tiny shapes on the CPU: a check of the script")
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(max(1, min(16, os.cpu_count() or 1)) if not args.cpu else 1)
    if not args.cpu and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this benchmark needs one (see BENCHMARKS.md), or --cpu to check the script")
    if args.cpu:
        args.frames, args.size, args.plans = min(args.frames, 9), "64x64", "cpu"
    size = tuple(int(v) for v in args.size.lower().split("x"))
    models = args.models or tempfile.mkdtemp(prefix="bench-video-")
    folder = os.path.join(models, "tiny-wan-vace" if args.cpu else "wan-vace-1.3b-random")
    if not os.path.isfile(os.path.join(folder, "model_index.json")):
        if args.cpu:
            from characterforge_addon.backend.tiny import video as tiny_video
            tiny_video._wan_vace(folder, tiny_video._tokenizer())
        else:
            build_full_size(folder, "cuda")
    profile = profile_for(folder, args.cpu)
    name = torch.cuda.get_device_name(0) if not args.cpu else "CPU"
    print(f"{'tiny' if args.cpu else 'full-size random'} Wan2.1-VACE-1.3B, {size[0]}x{size[1]}, {args.frames} frames "
          f"({args.frames / FPS:.2f} s at {FPS} fps), {args.steps} steps timed, per second of video at "
          f"{args.full_steps} steps; {name}", flush=True)
    figures = []
    for plan in args.plans.split(","):
        figure = run_plan(plan.strip(), profile, models, args, size, args.cpu)
        figures.append(figure)
        peak = f"{figure['peak_gb']:.1f} GB peak" if figure["peak_gb"] is not None else "peak n/a on the CPU"
        print(f"{figure['plan']:<22} {figure['memory_mode']}, text encoder on {figure['text_encoder']}, "
              f"{figure['weights']}: load {figure['load_s']} s, prompt {figure['encode_s']} s, "
              f"{figure['step_s']} s/step, rest {figure['rest_s']} s -> {figure['s_per_video_second']} s per second of "
              f"video at {args.full_steps} steps; {peak}" + (f" ({figure['note']})" if figure["note"] else ""),
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "size": size, "frames": args.frames, "figures": figures}, f, indent=1)


if __name__ == "__main__":
    main()
