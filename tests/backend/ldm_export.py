"""Test helper: write a diffusers SDXL pipeline as ONE original-layout (LDM/SGM) .safetensors
file, the way checkpoints come from model sites, so the single-file loading path can be tested
offline. The inverse of diffusers' single-file converters, for the layouts our tiny models use.
"""

import torch
from safetensors.torch import save_file

RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
          ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"))


def unet_to_ldm(unet):
    cfg = unet.config
    layers = cfg.layers_per_block
    levels = len(cfg.block_out_channels)
    prefix_map = {"time_embedding.linear_1.": "time_embed.0.", "time_embedding.linear_2.": "time_embed.2.",
                  "add_embedding.linear_1.": "label_emb.0.0.", "add_embedding.linear_2.": "label_emb.0.2.",
                  "conv_in.": "input_blocks.0.0.", "conv_norm_out.": "out.0.", "conv_out.": "out.2.",
                  "mid_block.resnets.0.": "middle_block.0.", "mid_block.attentions.0.": "middle_block.1.",
                  "mid_block.resnets.1.": "middle_block.2."}
    for i in range(levels):
        for j in range(layers):
            prefix_map[f"down_blocks.{i}.resnets.{j}."] = f"input_blocks.{(layers + 1) * i + j + 1}.0."
            prefix_map[f"down_blocks.{i}.attentions.{j}."] = f"input_blocks.{(layers + 1) * i + j + 1}.1."
        prefix_map[f"down_blocks.{i}.downsamplers.0.conv."] = f"input_blocks.{(layers + 1) * (i + 1)}.0.op."
        has_attn = "CrossAttn" in cfg.up_block_types[i]
        for j in range(layers + 1):
            prefix_map[f"up_blocks.{i}.resnets.{j}."] = f"output_blocks.{(layers + 1) * i + j}.0."
            prefix_map[f"up_blocks.{i}.attentions.{j}."] = f"output_blocks.{(layers + 1) * i + j}.1."
        prefix_map[f"up_blocks.{i}.upsamplers.0."] = f"output_blocks.{(layers + 1) * i + layers}.{2 if has_attn else 1}."
    out = {}
    for key, value in unet.state_dict().items():
        prefix = max((p for p in prefix_map if key.startswith(p)), key=len)
        out["model.diffusion_model." + _resnet_key(prefix_map[prefix], key[len(prefix):])] = value
    return out


def _resnet_key(ldm_prefix, rest):
    """Resnet layers are renamed inside their block; everything else keeps its name."""
    for new, old in RESNET:
        if rest.startswith(new + "."):
            return ldm_prefix + old + rest[len(new):]
    return ldm_prefix + rest


VAE_ATTN = (("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out"))


def vae_to_ldm(vae):
    blocks = len(vae.config.block_out_channels)
    out = {}
    for key, value in vae.state_dict().items():
        new = key
        for part in ("encoder", "decoder"):
            new = new.replace(f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1.")
            new = new.replace(f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2.")
            new = new.replace(f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.")
            new = new.replace(f"{part}.conv_norm_out.", f"{part}.norm_out.")
        for i in range(blocks):
            new = new.replace(f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block.")
            new = new.replace(f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample.")
            new = new.replace(f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{blocks - 1 - i}.block.")
            new = new.replace(f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{blocks - 1 - i}.upsample.")
        new = new.replace(".conv_shortcut.", ".nin_shortcut.")
        if ".mid.attn_1." in new:
            for a, b in VAE_ATTN:
                new = new.replace(f".mid.attn_1.{a}.", f".mid.attn_1.{b}.")
            if value.ndim == 2:  # the original attention uses 1x1 convolutions
                value = value[:, :, None, None]
        out["first_stage_model." + new] = value
    return out


def open_clip_to_ldm(text_encoder, prefix="conditioner.embedders.1.model."):
    sd = text_encoder.state_dict()
    out = {prefix + "positional_embedding": sd["text_model.embeddings.position_embedding.weight"],
           prefix + "token_embedding.weight": sd["text_model.embeddings.token_embedding.weight"],
           prefix + "ln_final.weight": sd["text_model.final_layer_norm.weight"],
           prefix + "ln_final.bias": sd["text_model.final_layer_norm.bias"],
           prefix + "text_projection": sd["text_projection.weight"].T.contiguous()}
    for i in range(text_encoder.config.num_hidden_layers):
        d, o = f"text_model.encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[f"{o}attn.in_proj_{kind}"] = torch.cat([sd[f"{d}self_attn.{p}_proj.{kind}"] for p in "qkv"])
            out[f"{o}attn.out_proj.{kind}"] = sd[f"{d}self_attn.out_proj.{kind}"]
            out[f"{o}ln_1.{kind}"] = sd[f"{d}layer_norm1.{kind}"]
            out[f"{o}ln_2.{kind}"] = sd[f"{d}layer_norm2.{kind}"]
            out[f"{o}mlp.c_fc.{kind}"] = sd[f"{d}mlp.fc1.{kind}"]
            out[f"{o}mlp.c_proj.{kind}"] = sd[f"{d}mlp.fc2.{kind}"]
    return out


def save_sdxl_single_file(pipe, path):
    tensors = {}
    tensors.update(unet_to_ldm(pipe.unet))
    tensors.update(vae_to_ldm(pipe.vae))
    te1 = pipe.text_encoder.state_dict()
    tensors.update({"conditioner.embedders.0.transformer." + (k if k.startswith("text_model.") else "text_model." + k): v
                    for k, v in te1.items()})
    tensors.update(open_clip_to_ldm(pipe.text_encoder_2))
    save_file({k: v.contiguous() for k, v in tensors.items()}, path)
