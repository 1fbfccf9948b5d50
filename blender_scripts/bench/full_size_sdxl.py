"""SDXL 1.0's architecture with RANDOM weights from the published configs (no download), for the
GPU benchmarks: the components in memory, or saved once as diffusers folders with a profile
naming them, loaded as a user's own folders would be. Timing does not depend on the weights'
values."""

import os


def sdxl_components(dtype):
    """SDXL 1.0's architecture (the stabilityai/stable-diffusion-xl-base-1.0 configs), random weights."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from characterforge_addon.backend.tiny.sdxl import _tokenizer
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


def save_full_size(models):
    """SDXL 1.0-shaped base and two ControlNets, random fp16 weights, and a profile naming them."""
    import torch
    from diffusers import StableDiffusionXLPipeline

    parts, controlnet = sdxl_components(torch.float16)
    StableDiffusionXLPipeline(**parts).save_pretrained(os.path.join(models, "base"))
    controlnet.save_pretrained(os.path.join(models, "controlnet"))
    profile = os.path.join(models, "full-size-random.toml")
    with open(profile, "w") as f:
        f.write('name = "full-size-random"\nfamily = "sdxl"\n[models.base]\nfolder = "base"\n'
                '[models.controlnet_openpose]\nfolder = "controlnet"\n[models.controlnet_depth]\nfolder = "controlnet"\n')
    return profile
