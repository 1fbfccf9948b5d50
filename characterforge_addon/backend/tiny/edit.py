"""Tiny random-weight edit pipelines made locally: Qwen-Image-Edit (QwenImageEditPlusPipeline,
the `tiny-qwen-edit` profile) and FLUX.2 klein (Flux2KleinPipeline, `tiny-flux2-klein`).
Shapes follow diffusers' own tests; the tokenizer, which no package ships, is a byte-level BPE
trained here on Qwen-Image-Edit's prompt template (its system prefix must come to exactly the
64 tokens that pipeline drops), with Qwen's special tokens, and for FLUX.2 a Qwen3 chat
template that honours enable_thinking. They produce noise."""

import json
import os

SEED = 0
SPECIAL = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",
           "<|video_pad|>", "<think>", "</think>")
# Qwen3's chat template, cut to what Flux2KleinPipeline asks of it (no thinking)
CHAT_TEMPLATE = ("{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{%- endfor %}"
                 "{%- if add_generation_prompt %}<|im_start|>assistant\n"
                 "{%- if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{%- endif %}"
                 "{%- endif %}")
# Qwen2's pre-tokenizer split (words, numbers one digit at a time, punctuation, spaces)
_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
          r"|\s+(?!\S)|\s+")
_TEXTS = ("Describe the key features of the input image (color, shape, size, texture, objects, background), then "
          "explain how the user's text instruction should alter or modify the image. Generate a new image that meets "
          "the user's requirements while maintaining consistency with the original input where appropriate.",
          "system user assistant Picture 1: 2: 3: the character in the pose of the skeleton, a knight in silver armour")


def _tokenizer():
    from tokenizers import decoders, models, pre_tokenizers, Regex, Tokenizer, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(_SPLIT), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(_TEXTS, trainers.BpeTrainer(vocab_size=600,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    vocab = dict(bpe.get_vocab())
    vocab.setdefault("<|endoftext|>", len(vocab))
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
              for m in json.loads(bpe.to_str())["model"]["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges)
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL)})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def make(folder):
    """Write both tiny pipelines into `folder` (diffusers folders, loaded like any other)."""
    _qwen_edit(os.path.join(folder, "qwen_edit"))
    _flux2_klein(os.path.join(folder, "flux2_klein"))


def _qwen_edit(folder):
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageEditPlusPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tokenizer = _tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in (*SPECIAL, "<|endoftext|>")}
    torch.manual_seed(SEED)
    transformer = QwenImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=4, num_layers=2,
                                              attention_head_dim=16, num_attention_heads=3, joint_attention_dim=16,
                                              guidance_embeds=False, axes_dims_rope=(8, 4, 4))
    torch.manual_seed(SEED)
    vae = AutoencoderKLQwenImage(base_dim=24, z_dim=4, dim_mult=[1, 2, 4], num_res_blocks=1,
                                 temperal_downsample=[False, True], latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    torch.manual_seed(SEED)
    # the token ids must be this tokenizer's, and the vocabulary size goes inside text_config
    config = Qwen2_5_VLConfig(
        text_config={"hidden_size": 16, "intermediate_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
                     "num_key_value_heads": 2, "vocab_size": len(tokenizer), "bos_token_id": ids["<|endoftext|>"],
                     "eos_token_id": ids["<|im_end|>"], "rope_theta": 1000000.0,
                     "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"}},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 16, "num_heads": 2, "out_hidden_size": 16},
        hidden_size=16, vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        vision_token_id=ids["<|vision_pad|>"], image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"])
    text_encoder = Qwen2_5_VLForConditionalGeneration(config)
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tokenizer,
                                 video_processor=Qwen2VLVideoProcessor())
    pipe = QwenImageEditPlusPipeline(transformer=transformer, vae=vae, scheduler=FlowMatchEulerDiscreteScheduler(),
                                     text_encoder=text_encoder, tokenizer=tokenizer, processor=processor)
    pipe.save_pretrained(folder, safe_serialization=True)
    from . import lora as tiny_lora
    tiny_lora.make(os.path.join(os.path.dirname(folder), "draft_lora_qwen_edit"), QwenImageEditPlusPipeline,
                   transformer, "transformer_lora_layers")


def _flux2_klein(folder):
    import torch
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinPipeline,
        Flux2Transformer2DModel,
    )
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = _tokenizer()
    torch.manual_seed(SEED)
    # joint_attention_dim = the text encoder's width x the layers taken (profile text_layers = [1])
    transformer = Flux2Transformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                          attention_head_dim=16, num_attention_heads=2, joint_attention_dim=16,
                                          timestep_guidance_channels=256, axes_dims_rope=[4, 4, 4, 4],
                                          guidance_embeds=False)
    torch.manual_seed(SEED)
    text_encoder = Qwen3ForCausalLM(Qwen3Config(intermediate_size=16, hidden_size=16, num_hidden_layers=2,
                                                num_attention_heads=2, num_key_value_heads=2,
                                                vocab_size=len(tokenizer), max_position_embeddings=512))
    torch.manual_seed(SEED)
    vae = AutoencoderKLFlux2(sample_size=32, in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",),
                             up_block_types=("UpDecoderBlock2D",), block_out_channels=(4,), layers_per_block=1,
                             latent_channels=1, norm_num_groups=1, use_quant_conv=False, use_post_quant_conv=False)
    pipe = Flux2KleinPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=text_encoder,
                              tokenizer=tokenizer, transformer=transformer, is_distilled=True)
    pipe.save_pretrained(folder, safe_serialization=True)
