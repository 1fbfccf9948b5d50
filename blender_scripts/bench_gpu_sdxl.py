"""GPU benchmark: full-size SDXL + one ControlNet with RANDOM weights built from the published
SDXL 1.0 configs (no download), at 1024², 30 steps: plain diffusers against CharacterForge's
engine settings (one dtype, output as latents + checked decode), side by side.

  python blender_scripts/bench_gpu_sdxl.py [--steps 30] [--size 1024] [--runs 3]

Needs a CUDA GPU (about 12 GB for fp16). Prints s/image and it/s for both.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sdxl_components(dtype):
    """SDXL 1.0's architecture (the stabilityai/stable-diffusion-xl-base-1.0 configs), random weights."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from characterforge_addon.backend.tiny import _tokenizer
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
        projection_class_embeddings_input_dim=2816)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                        layers_per_block=2, sample_size=1024, scaling_factor=0.13025)
    te1 = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                       num_hidden_layers=12, vocab_size=49408, projection_dim=768, hidden_act="quick_gelu"))
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=1280, intermediate_size=5120, num_attention_heads=20,
                                                     num_hidden_layers=32, vocab_size=49408, projection_dim=1280,
                                                     hidden_act="gelu"))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    controlnet = ControlNetModel.from_unet(unet)
    parts = dict(unet=unet, vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=_tokenizer(),
                 tokenizer_2=_tokenizer(), scheduler=scheduler)
    return {k: (v.to(dtype) if hasattr(v, "to") and k.startswith(("unet", "vae", "text")) else v) for k, v in parts.items()}, \
        controlnet.to(dtype)


def main():
    import torch
    from diffusers import StableDiffusionXLControlNetPipeline
    from PIL import Image

    from characterforge_addon.backend import pipelines
    from characterforge_addon.backend.families import FAMILIES
    parser = argparse.ArgumentParser(prog="bench_gpu_sdxl.py")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this benchmark needs one (see BENCHMARKS.md)")
    dtype = torch.float16
    parts, controlnet = sdxl_components(dtype)
    pipe = StableDiffusionXLControlNetPipeline(controlnet=controlnet, **parts).to("cuda")
    pipe.set_progress_bar_config(disable=True)
    control = Image.new("RGB", (args.size, args.size))
    kwargs = dict(prompt="a knight", image=control, width=args.size, height=args.size, num_inference_steps=args.steps)

    def timed(fn):
        fn()  # warm-up
        times = []
        for _ in range(args.runs):
            torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    plain = timed(lambda: pipe(**kwargs, output_type="pil"))
    ours = timed(lambda: pipelines.decode_checked(pipe, pipe(**kwargs, output_type="latent").images,
                                                            FAMILIES["sdxl"].decoder(pipe, {})))
    peak = torch.cuda.max_memory_allocated() / 2**30
    for label, t in (("plain diffusers", plain), ("CharacterForge settings", ours)):
        print(f"{label}: {t:.2f} s/image, {args.steps / t:.2f} it/s at {args.size}², {args.steps} steps")
    print(f"peak GPU memory {peak:.1f} GiB on {torch.cuda.get_device_name(0)}")


if __name__ == "__main__":
    main()
