"""Tiny random-weight SDXL components, made locally (no hub): the `tiny` profile.

Shapes follow diffusers' own SDXL ControlNet tests (but for a VAE that scales by 8 like
SDXL's, so full-size scenes stay fast). Made once per data folder, seeded, saved
as safetensors diffusers folders, then loaded like any other local model. They produce noise.
"""

import os

TINY_SEED = 0
VERSION = 3  # bump when the shapes change: older folders are left alone, a new one is made
COMPONENTS = ("base", "controlnet_openpose", "controlnet_depth")


def _byte_level_vocab():
    # GPT-2's byte-to-unicode table, each byte also with the end-of-word suffix CLIP uses.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    chars = [chr(c) for c in cs]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in chars:
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    return vocab


def _tokenizer():
    from transformers import CLIPTokenizer
    return CLIPTokenizer(vocab=_byte_level_vocab(), merges=[], pad_token="<|endoftext|>",
                         bos_token="<|startoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                         model_max_length=77)


def _unet_kwargs():
    return dict(block_out_channels=(32, 64), layers_per_block=2, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
                addition_time_embed_dim=8, transformer_layers_per_block=(1, 2),
                projection_class_embeddings_input_dim=80, cross_attention_dim=64)


def make(folder):
    """Write the tiny components into `folder` (base pipeline + two ControlNets)."""
    import torch
    from diffusers import AutoencoderKL, ControlNetModel, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(TINY_SEED)
    unet = UNet2DConditionModel(sample_size=32, in_channels=4, out_channels=4,
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **_unet_kwargs())
    torch.manual_seed(TINY_SEED)
    # four blocks: latents 1/8 of the image, as in SDXL, so attention stays small at real sizes
    vae = AutoencoderKL(block_out_channels=[32, 32, 64, 64], in_channels=3, out_channels=3, latent_channels=4,
                        layers_per_block=1, down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4)
    config = CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32, intermediate_size=37,
                            layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=5, vocab_size=1000,
                            hidden_act="gelu", projection_dim=32)
    torch.manual_seed(TINY_SEED)
    text_encoder = CLIPTextModel(config)
    torch.manual_seed(TINY_SEED)
    text_encoder_2 = CLIPTextModelWithProjection(config)
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                       beta_schedule="scaled_linear", timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=_tokenizer(), tokenizer_2=_tokenizer(), unet=unet, scheduler=scheduler)
    pipe.save_pretrained(os.path.join(folder, "base"), safe_serialization=True)
    for i, name in enumerate(("controlnet_openpose", "controlnet_depth"), start=1):
        torch.manual_seed(TINY_SEED + i)
        ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(8, 16, 16, 32), **_unet_kwargs()).save_pretrained(
            os.path.join(folder, name), safe_serialization=True)
    with open(os.path.join(folder, "README.txt"), "w") as f:
        f.write("Tiny random-weight components made by CharacterForge for tests. They produce noise.\n")


def folder_in(models_dir):
    return os.path.join(models_dir, f"tiny-v{VERSION}")


def ensure(models_dir):
    """The tiny components' folder, made on first use."""
    folder = folder_in(models_dir)
    if not all(os.path.isdir(os.path.join(folder, c)) for c in COMPONENTS):
        tmp = folder + ".partial"
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        make(tmp)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    return folder
