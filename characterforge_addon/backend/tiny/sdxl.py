"""Tiny random-weight SDXL components, made locally (no hub): the `tiny` profile's base, ControlNets,
identity and appearance adapters, draft LoRA and preview decoder.

Shapes follow diffusers' own SDXL ControlNet tests (but for a VAE that scales by 8 like
SDXL's, so full-size scenes stay fast). Made once per data folder, seeded, saved
as safetensors diffusers folders, then loaded like any other local model. They produce noise.
"""

import os

TINY_SEED = 0


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
    """Write the tiny SDXL components into `folder` (base pipeline, two ControlNets and a Union, ...)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        ControlNetUnionModel,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(TINY_SEED)
    unet = UNet2DConditionModel(sample_size=32, in_channels=4, out_channels=4,
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), **_unet_kwargs())
    torch.manual_seed(TINY_SEED)
    # four blocks: latents 1/8 of the image, as in SDXL, so attention stays small at real sizes
    vae = AutoencoderKL(block_out_channels=[32, 32, 64, 64], in_channels=3, out_channels=3, latent_channels=4,
                        layers_per_block=1, down_block_types=["DownEncoderBlock2D"] * 4,
                        up_block_types=["UpDecoderBlock2D"] * 4)
    # Two encoders of different widths (24 + 40 = the UNet's 64), as SDXL's are (768 + 1280):
    # single-file loading tells them apart by width.
    def text_config(hidden):
        return CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=hidden, intermediate_size=37,
                              layer_norm_eps=1e-05, num_attention_heads=4, num_hidden_layers=5, vocab_size=1000,
                              hidden_act="gelu", projection_dim=32)

    torch.manual_seed(TINY_SEED)
    text_encoder = CLIPTextModel(text_config(24))
    torch.manual_seed(TINY_SEED + 1)
    text_encoder_2 = CLIPTextModelWithProjection(text_config(40))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                       beta_schedule="scaled_linear", timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=_tokenizer(), tokenizer_2=_tokenizer(), unet=unet, scheduler=scheduler)
    pipe.save_pretrained(os.path.join(folder, "base"), safe_serialization=True)
    for i, name in enumerate(("controlnet_openpose", "controlnet_depth"), start=1):
        torch.manual_seed(TINY_SEED + i)
        controlnet = ControlNetModel(in_channels=4, conditioning_embedding_out_channels=(8, 16, 16, 32), **_unet_kwargs())
        # A new ControlNet's output convolutions start at zero (it changes nothing until trained);
        # random ones make the control image matter, so tests can see conditioning work.
        with torch.no_grad():
            for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block,
                           controlnet.controlnet_cond_embedding.conv_out]:
                module.weight.normal_(0.0, 0.05)
        controlnet.save_pretrained(os.path.join(folder, name), safe_serialization=True)
    torch.manual_seed(TINY_SEED + 3)  # ControlNet-Union: one network, a control mode per map
    union = ControlNetUnionModel(in_channels=4, conditioning_embedding_out_channels=(8, 16, 16, 32),
                                 num_trans_channel=32, num_trans_head=4, num_proj_channel=32, **_unet_kwargs())
    with torch.no_grad():  # (and a map embedding strong enough that a tiny map changes the picture)
        embedding = union.controlnet_cond_embedding
        for module in [embedding.conv_in, *embedding.blocks]:
            module.weight.normal_(0.0, 0.3)
        for module in [*union.controlnet_down_blocks, union.controlnet_mid_block, embedding.conv_out,
                       union.spatial_ch_projs]:
            module.weight.normal_(0.0, 0.05)
    union.save_pretrained(os.path.join(folder, "controlnet_union"), safe_serialization=True)
    _ip_adapter(folder, unet)
    from . import lora as tiny_lora
    tiny_lora.make(os.path.join(folder, "draft_lora_sdxl"), StableDiffusionXLPipeline, unet, "unet_lora_layers")
    from diffusers import AutoencoderTiny
    torch.manual_seed(TINY_SEED)  # TAESD's shape (8x up, 4 latent channels), a few channels wide
    AutoencoderTiny(encoder_block_out_channels=(8,) * 4, decoder_block_out_channels=(8,) * 4,
                    num_encoder_blocks=(1,) * 4, num_decoder_blocks=(1,) * 4).save_pretrained(
        os.path.join(folder, "preview_decoder"), safe_serialization=True)


def _ip_adapter(folder, unet):
    """A tiny CLIP image encoder and an IP-Adapter *plus* (Resampler) in the original key layout
    (image_proj.* / ip_adapter.*), sized for the tiny UNet. diffusers' loader reads the
    Resampler's heads as to_q rows / 64 and assumes depth 4, so those are kept."""
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(TINY_SEED)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, image_size=32, patch_size=8,
                                                             num_hidden_layers=2, num_attention_heads=4,
                                                             intermediate_size=37, projection_dim=32))
    encoder.save_pretrained(os.path.join(folder, "image_encoder"), safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        os.path.join(folder, "image_encoder"))
    gen = torch.Generator().manual_seed(TINY_SEED)

    def rand(*shape):
        return torch.randn(*shape, generator=gen) * 0.02

    dim, embed, out, queries = 64, 32, unet.config.cross_attention_dim, 4
    tensors = {"image_proj.latents": rand(1, queries, dim), "image_proj.proj_in.weight": rand(dim, embed),
               "image_proj.proj_in.bias": rand(dim), "image_proj.proj_out.weight": rand(out, dim),
               "image_proj.proj_out.bias": rand(out), "image_proj.norm_out.weight": torch.ones(out),
               "image_proj.norm_out.bias": torch.zeros(out)}
    for i in range(4):
        p = f"image_proj.layers.{i}"
        tensors.update({f"{p}.0.norm1.weight": torch.ones(dim), f"{p}.0.norm1.bias": torch.zeros(dim),
                        f"{p}.0.norm2.weight": torch.ones(dim), f"{p}.0.norm2.bias": torch.zeros(dim),
                        f"{p}.0.to_q.weight": rand(64, dim), f"{p}.0.to_kv.weight": rand(128, dim),
                        f"{p}.0.to_out.weight": rand(dim, 64), f"{p}.1.0.weight": torch.ones(dim),
                        f"{p}.1.0.bias": torch.zeros(dim), f"{p}.1.1.weight": rand(dim * 4, dim),
                        f"{p}.1.3.weight": rand(dim, dim * 4)})
    key = 1  # diffusers numbers the cross-attention processors 1, 3, 5, ...
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            hidden = unet.get_submodule(name[: -len(".processor")]).to_q.out_features
            tensors[f"ip_adapter.{key}.to_k_ip.weight"] = rand(hidden, out)
            tensors[f"ip_adapter.{key}.to_v_ip.weight"] = rand(hidden, out)
            key += 2
    save_file(tensors, os.path.join(folder, "ip_adapter_plus_face.safetensors"))
    # FaceID: a 512-number insightface embedding -> 4 tokens, in the published key layout
    faceid = {"image_proj.proj.0.weight": rand(1024, 512), "image_proj.proj.0.bias": rand(1024),
              "image_proj.proj.2.weight": rand(4 * out, 1024), "image_proj.proj.2.bias": rand(4 * out),
              "image_proj.norm.weight": torch.ones(out), "image_proj.norm.bias": torch.zeros(out)}
    faceid.update({k: rand(*v.shape) for k, v in tensors.items() if k.startswith("ip_adapter.")})
    save_file(faceid, os.path.join(folder, "ip_adapter_faceid.safetensors"))
    # Appearance: a plain IP-Adapter (the image encoder's 32-number embedding -> 4 tokens), in the
    # published ip-adapter_sdxl_vit-h layout (image_proj.proj / image_proj.norm)
    plain = {"image_proj.proj.weight": rand(4 * out, embed), "image_proj.proj.bias": rand(4 * out),
             "image_proj.norm.weight": torch.ones(out), "image_proj.norm.bias": torch.zeros(out)}
    plain.update({k: rand(*v.shape) for k, v in tensors.items() if k.startswith("ip_adapter.")})
    save_file(plain, os.path.join(folder, "ip_adapter_appearance.safetensors"))
