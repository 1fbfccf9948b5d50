"""The fast path against plain diffusers, side by side in one run on this machine's device:
full-size SDXL + one OpenPose ControlNet with RANDOM weights from the published SDXL 1.0
configs (no download), the same weights for every case.

  python blender_scripts/bench/bench_speed.py [--size 512] [--steps 30] [--cases plain,draft,skip,preview]

Cases:
  plain    plain diffusers: --steps steps, guidance 6, the full VAE decode (the reference)
  draft    CharacterForge's draft: TCD scheduler, 6 steps, no CFG (guidance 1), eta 0.3, a
           rank-64 LoRA on the attention and feed-forward layers left unfused (as a loaded TCD
           LoRA is), idle ControlNets skipped, channels-last convolutions, decoded by the tiny
           autoencoder (TAESDXL's shape)
  skip     8 steps with the ControlNet ending half way: diffusers (runs it at scale 0) against
           IdleSkippingControlNets; the two outputs must be identical
  preview  one preview: TAESDXL-shaped tiny autoencoder decode + PNG against the full VAE decode
  dtype    one UNet pass (batch 1) in float32, float32 channels-last and the chosen half type
  union    one step (batch 2) with an OpenPose and a depth ControlNet against one ControlNet-Union
           (full-size, random) taking both maps, interleaved --repeat times, and their weights
  fused    one ControlNet + UNet step (batch 2: CFG) with the projections as they are against
           the `fused_qkv` speed-up, interleaved --repeat times; the largest difference in the
           output and the parameter storage before and after fusing
  compile  one UNet step (batch 2: CFG) plain against the `compile` speed-up's regional
           compilation, each in a new process twice on one compile cache: the first call of
           the cold start (compiling), of the warm start (the cache), and the steady step

Every case runs in the dtype the backend's device layer picks for an SDXL profile here
(float16 on a GPU; bfloat16 on a CPU that computes it natively, else float32). Prints one line
per case and a summary. The plain 30-step case takes minutes on a CPU (the point of the draft).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from full_size_sdxl import sdxl_components  # noqa: E402


def main():
    import torch
    from diffusers import AutoencoderTiny, MultiControlNetModel, StableDiffusionXLControlNetPipeline, TCDScheduler
    from PIL import Image

    from characterforge_addon.backend.engine import device as devices
    from characterforge_addon.backend.engine import pipelines
    from characterforge_addon.backend.engine.controlnets import IdleSkippingControlNets
    from characterforge_addon.backend.families import FAMILIES
    from characterforge_addon.backend.engine.preview import decoded_preview

    parser = argparse.ArgumentParser(prog="bench_speed.py")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--cases", default="plain,draft,skip,preview")
    parser.add_argument("--repeat", type=int, default=3, help="pairs of the fused case")
    parser.add_argument("--compile-cache", help=argparse.SUPPRESS)  # the compile case's own processes
    args = parser.parse_args()
    cases = args.cases.split(",")
    if args.compile_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = args.compile_cache
    if "compile" in cases:
        compile_starts(args)
        cases.remove("compile")
        if not cases:
            return
    chosen = devices.choose(devices.probe(), "float16")
    device, dtype = chosen.kind, chosen.torch_dtype
    parts, controlnet = sdxl_components(dtype)
    torch.manual_seed(0)
    taesd = AutoencoderTiny().to(device, dtype)  # TAESD/TAESDXL's published shape
    for name in ("text_encoder", "text_encoder_2"):  # prompts go in as embeddings: encoders are not timed
        parts[name] = None
    plain_nets = MultiControlNetModel([controlnet])
    pipe = StableDiffusionXLControlNetPipeline(controlnet=plain_nets, **parts).to(device)
    pipe.set_progress_bar_config(disable=True)
    generator = torch.Generator("cpu")
    embeds = torch.randn(1, 77, 2048, generator=generator.manual_seed(1)).to(device, dtype)
    pooled = torch.randn(1, 1280, generator=generator.manual_seed(2)).to(device, dtype)
    prompt = dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled, negative_prompt_embeds=torch.zeros_like(embeds),
                  negative_pooled_prompt_embeds=torch.zeros_like(pooled))
    control = [Image.new("RGB", (args.size, args.size), (0, 0, 0))]
    common = dict(image=control, width=args.size, height=args.size, **prompt)
    print(f"full-size SDXL + 1 ControlNet, random weights, {device} ({torch.get_num_threads()} threads), {dtype}, "
          f"{args.size}x{args.size}", flush=True)

    def timed(fn):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, out

    def decode(latents):
        return pipelines.decode_checked(pipe, latents, FAMILIES["sdxl"].decoder(pipe, {}))

    figures = {}
    if "plain" in cases:
        t, _ = timed(lambda: pipe(**common, num_inference_steps=args.steps, guidance_scale=6.0, output_type="pil",
                                  generator=generator.manual_seed(0)))
        figures["plain"] = t
        print(f"plain diffusers: {args.steps} steps, guidance 6, VAE decode: {t:.1f} s", flush=True)
    if "draft" in cases:
        from peft import LoraConfig
        saved = pipe.scheduler
        pipe.scheduler = TCDScheduler.from_config(saved.config)
        pipe.unet.add_adapter(LoraConfig(r=64, lora_alpha=64, target_modules=["to_q", "to_k", "to_v", "to_out.0",
                                                                              "ff.net.0.proj", "ff.net.2"]),
                              adapter_name="draft")
        pipe.controlnet = IdleSkippingControlNets([controlnet])
        for module in (pipe.unet, controlnet, taesd):
            module.to(memory_format=torch.channels_last)

        def draft():
            latents = pipe(**common, num_inference_steps=6, guidance_scale=1.0, eta=0.3, output_type="latent",
                           generator=generator.manual_seed(0)).images
            with torch.no_grad():
                return taesd.decode(latents, return_dict=False)[0]
        t, _ = timed(draft)
        figures["draft"] = t
        print(f"CharacterForge draft: TCD, 6 steps, no CFG, LoRA unfused, TAESD decode: {t:.1f} s", flush=True)
        pipe.unet.delete_adapters("draft")
        for module in (pipe.unet, controlnet, taesd):
            module.to(memory_format=torch.contiguous_format)
        pipe.scheduler, pipe.controlnet = saved, plain_nets
    if "skip" in cases:
        run = dict(common, num_inference_steps=8, guidance_scale=6.0, control_guidance_end=[0.5], output_type="latent")
        t_plain, a = timed(lambda: pipe(**run, generator=generator.manual_seed(0)).images)
        pipe.controlnet = IdleSkippingControlNets([controlnet])
        t_skip, b = timed(lambda: pipe(**run, generator=generator.manual_seed(0)).images)
        pipe.controlnet = plain_nets
        same = torch.equal(a, b)
        figures["skip"] = (t_plain, t_skip)
        print(f"ControlNet ending half way, 8 steps: diffusers {t_plain:.1f} s, idle ControlNets skipped "
              f"{t_skip:.1f} s ({t_plain / t_skip:.2f}x), identical latents: {same}", flush=True)
        if not same:
            raise SystemExit("the skipped ControlNets changed the output")
    if "preview" in cases:
        latents = torch.randn(1, 4, args.size // 8, args.size // 8, generator=generator.manual_seed(3)).to(device, dtype)
        decoded_preview(taesd, latents)  # warm-up
        t_tiny, _ = timed(lambda: decoded_preview(taesd, latents))
        t_full, _ = timed(lambda: decode(latents))
        figures["preview"] = (t_tiny, t_full)
        print(f"one preview: TAESD decode + PNG {t_tiny * 1000:.0f} ms; the full VAE decode {t_full * 1000:.0f} ms; "
              f"previews are made at most twice a second", flush=True)
    if args.compile_cache:
        one_step_compiled(pipe, args.size, embeds, pooled, timed)
        return
    if "dtype" in cases:
        x = torch.randn(1, 4, args.size // 8, args.size // 8, generator=generator.manual_seed(4))
        added = {"text_embeds": pooled, "time_ids": torch.tensor([[args.size, args.size, 0, 0, args.size, args.size]])}

        def unet_pass(memory_format, kind):
            pipe.unet.to(kind, memory_format=memory_format)
            inputs = (x.to(device, kind).to(memory_format=memory_format), torch.tensor([500.0], device=device),
                      embeds.to(kind), {k: v.to(device, kind) for k, v in added.items()})
            with torch.inference_mode():
                pipe.unet(*inputs[:3], added_cond_kwargs=inputs[3])  # warm-up
                t, _ = timed(lambda: pipe.unet(*inputs[:3], added_cond_kwargs=inputs[3]))
            return t
        runs = [(torch.float32, torch.contiguous_format), (torch.float32, torch.channels_last)]
        if dtype != torch.float32:
            runs.append((dtype, torch.channels_last))
        results = [(f"{str(kind)[6:]}{' channels-last' if fmt == torch.channels_last else ''}", unet_pass(fmt, kind))
                   for kind, fmt in runs]
        pipe.unet.to(dtype, memory_format=torch.contiguous_format)
        print("one UNet pass: " + ", ".join(f"{label} {t:.2f} s" for label, t in results), flush=True)
    if "fused" in cases:
        fused_step(pipe, controlnet, args, embeds, pooled, timed)
    if "union" in cases:
        union_step(pipe, controlnet, args, embeds, pooled, timed)
    if "plain" in figures and "draft" in figures:
        print(f"draft against plain: {figures['plain'] / figures['draft']:.1f}x faster "
              f"({figures['draft']:.1f} s against {figures['plain']:.1f} s)")


def step_inputs(unet, size, embeds, pooled):
    """A denoising step's inputs at `size` for batch 2 (CFG): latents, timestep, text, added."""
    import torch
    x = torch.randn(2, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(5)).to(unet.device, unet.dtype)
    added = {"text_embeds": pooled.expand(2, -1),
             "time_ids": torch.tensor([[size, size, 0, 0, size, size]] * 2).to(unet.device, unet.dtype)}
    return x, torch.tensor([500.0], device=unet.device), embeds.expand(2, -1, -1), added


def union_step(pipe, controlnet, args, embeds, pooled, timed):
    """The union case: the UNet with two ControlNets (pose, depth) against one ControlNet-Union
    taking both maps in its modes 0 and 1, in pairs; the ControlNets' weights side by side."""
    import statistics

    import torch
    from diffusers import ControlNetModel, ControlNetUnionModel
    unet = pipe.unet
    torch.manual_seed(1)
    depth = ControlNetModel.from_unet(unet).to(unet.device, unet.dtype)
    union = ControlNetUnionModel.from_unet(unet).to(unet.device, unet.dtype)
    x, t, cond, added = step_inputs(unet, args.size, embeds, pooled)
    maps = [torch.rand(2, 3, args.size, args.size, generator=torch.Generator().manual_seed(i))
            .to(unet.device, unet.dtype) for i in (6, 7)]
    control_type = torch.zeros(2, union.config.num_control_type).to(unet.device, unet.dtype)
    control_type[:, :2] = 1

    def two():
        down, mid = controlnet(x, t, cond, maps[0], added_cond_kwargs=added, return_dict=False)
        d2, m2 = depth(x, t, cond, maps[1], added_cond_kwargs=added, return_dict=False)
        return unet(x, t, cond, added_cond_kwargs=added, mid_block_additional_residual=mid + m2,
                    down_block_additional_residuals=[a + b for a, b in zip(down, d2)]).sample

    def one():
        down, mid = union(x, t, cond, maps, control_type, [0, 1], [1.0, 1.0], added_cond_kwargs=added,
                          return_dict=False)
        return unet(x, t, cond, added_cond_kwargs=added, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid).sample

    def weights(*models):
        return sum(p.numel() * p.element_size() for m in models for p in m.parameters()) / 2**30

    pairs = []
    with torch.inference_mode():
        two(), one()  # warm-up
        for _ in range(args.repeat):
            pairs.append((timed(two)[0], timed(one)[0]))
    a, b = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
    listed = ", ".join(f"{p:.2f}/{q:.2f}" for p, q in pairs)
    print(f"one step, batch 2, OpenPose + depth: two ControlNets {a:.2f} s, one ControlNet-Union {b:.2f} s "
          f"({a / b:.2f}x; pairs: {listed}); ControlNet weights {weights(controlnet, depth):.2f} GiB against "
          f"{weights(union):.2f} GiB", flush=True)


def fused_step(pipe, controlnet, args, embeds, pooled, timed):
    """The fused case: one ControlNet + UNet step of batch 2, plain and fused, in pairs."""
    import statistics

    import torch

    from characterforge_addon.backend.engine.fused_attention import fused_attention
    unet = pipe.unet
    x, t, cond, added = step_inputs(unet, args.size, embeds, pooled)
    control = torch.zeros(2, 3, args.size, args.size).to(unet.device, unet.dtype)

    def step():
        down, mid = controlnet(x, t, cond, control, added_cond_kwargs=added, return_dict=False)
        return unet(x, t, cond, added_cond_kwargs=added, down_block_additional_residuals=down,
                    mid_block_additional_residual=mid).sample

    def stored():
        return sum({p.untyped_storage().data_ptr(): p.untyped_storage().nbytes()
                    for m in (unet, controlnet) for p in m.parameters()}.values())

    before = stored()
    plain, fused = [], []
    with torch.inference_mode():
        step()  # warm-up
        with fused_attention([unet, controlnet]):
            step()  # warm-up, and the one-time fusing
        for _ in range(args.repeat):
            t_plain, a = timed(step)
            with fused_attention([unet, controlnet]) as count:
                t_fused, b = timed(step)
            plain.append(t_plain)
            fused.append(t_fused)
    diff = (a.float() - b.float()).abs().max().item()
    p, f = statistics.median(plain), statistics.median(fused)
    listed = ", ".join(f"{x:.2f}/{y:.2f}" for x, y in zip(plain, fused))
    print(f"one ControlNet + UNet step, batch 2: plain {p:.2f} s, fused QKV ({count} attentions) {f:.2f} s "
          f"({p / f:.2f}x; medians of {args.repeat} pairs: {listed}); largest output difference {diff:.2e} "
          f"(output scale {a.float().abs().max().item():.2f}); parameter storage {before / 2**30:.3f} GiB "
          f"before fusing, {stored() / 2**30:.3f} GiB after", flush=True)


def compile_starts(args):
    """The compile case: this script twice in new processes on one empty compile cache."""
    import json
    import subprocess
    import tempfile
    cache = tempfile.mkdtemp(prefix="characterforge-compile-")
    runs = []
    for start in ("cold", "warm"):
        out = subprocess.run([sys.executable, __file__, "--size", str(args.size), "--cases", "none",
                              "--compile-cache", cache], capture_output=True, text=True)
        if out.returncode:
            raise SystemExit(out.stderr[-3000:])
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = runs[-1]
        print(f"{start} start: plain step {r['plain']:.2f} s; compiled: first call {r['first']:.1f} s "
              f"(cache hits {r['hits']}, misses {r['misses']}), then {r['steady']:.2f} s a step "
              f"({r['plain'] / r['steady']:.2f}x plain)", flush=True)


def one_step_compiled(pipe, size, embeds, pooled, timed):
    """One UNet step (batch 2) plain, then with its blocks compiled into `TORCHINDUCTOR_CACHE_DIR`
    as the engine compiles them: one JSON line of seconds and cache counts."""
    import json

    import torch
    from torch._dynamo.utils import counters

    from characterforge_addon.backend.engine.pipelines import compile_blocks
    unet = pipe.unet
    x, t, cond, added = step_inputs(unet, size, embeds, pooled)

    def step():
        return unet(x, t, cond, added_cond_kwargs=added)

    with torch.inference_mode():
        step()  # warm-up
        plain, _ = timed(step)
        compile_blocks(unet)
        first, _ = timed(step)
        steady, _ = timed(step)
    print(json.dumps({"plain": plain, "first": first, "steady": steady,
                      "hits": counters["inductor"]["fxgraph_cache_hit"],
                      "misses": counters["inductor"]["fxgraph_cache_miss"]}))


if __name__ == "__main__":
    main()
