"""Tiny random-weight video pipelines made locally: Wan2.1-VACE (WanVACEPipeline, the
`tiny-wan-vace` profile) and Wan2.2-Animate (WanAnimatePipeline, `tiny-wan-animate`), in the
shapes of the real ones (a UMT5 text encoder, the Wan VAE with its 4x temporal and 8x spatial
compression, 2x2 patches), a few layers and channels wide. The UMT5 tokenizer, which no
package ships, is a Unigram model trained here on a few sentences (as T5's is, with NFKC, the
Metaspace pre-tokenizer and `</s>` appended). They produce noise."""

import os

SEED = 0
_TEXTS = ("a knight in silver armour walking across a courtyard", "a small child in a blue tunic sitting",
          "full body, studio lighting, detailed, the same character as in the pictures",
          "blurry, low quality, deformed hands, extra fingers, static, still picture")


def _tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import T5TokenizerFast

    unigram = Tokenizer(models.Unigram())
    unigram.normalizer = normalizers.NFKC()
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    unigram.train_from_iterator(_TEXTS * 20, trainers.UnigramTrainer(vocab_size=300, unk_token="<unk>",
                                                                     special_tokens=["<pad>", "</s>", "<unk>"]))
    unigram.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                           special_tokens=[("</s>", unigram.token_to_id("</s>"))])
    return T5TokenizerFast(tokenizer_object=unigram, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                           extra_ids=0, model_max_length=512)


def _text_encoder(vocab_size):
    import torch
    from transformers import UMT5Config, UMT5EncoderModel
    torch.manual_seed(SEED)
    return UMT5EncoderModel(UMT5Config(vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                                       relative_attention_num_buckets=8))


def _vae():
    import torch
    from diffusers import AutoencoderKLWan
    torch.manual_seed(SEED)
    return AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            temperal_downsample=[False, True, True])


def make(folder):
    """Write both tiny pipelines into `folder` (diffusers folders, loaded like any other)."""
    tokenizer = _tokenizer()
    _wan_vace(os.path.join(folder, "wan_vace"), tokenizer)
    _wan_animate(os.path.join(folder, "wan_animate"), tokenizer)


def _wan_vace(folder, tokenizer):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, WanVACEPipeline, WanVACETransformer3DModel
    torch.manual_seed(SEED)
    transformer = WanVACETransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                            in_channels=16, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32,
                                            num_layers=3, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                            rope_max_seq_len=32, vace_layers=[0, 2], vace_in_channels=96)
    WanVACEPipeline(tokenizer=tokenizer, text_encoder=_text_encoder(len(tokenizer)), vae=_vae(),
                    scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), transformer=transformer).save_pretrained(
        folder, safe_serialization=True)


def _wan_animate(folder, tokenizer):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, WanAnimatePipeline, WanAnimateTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(SEED)
    # the face video goes through a motion encoder sized for 16x16 crops (the real one: 512x512)
    transformer = WanAnimateTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, latent_channels=16,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", image_dim=32, added_kv_proj_dim=24, rope_max_seq_len=32,
        motion_encoder_channel_sizes={"4": 8, "8": 8, "16": 8}, motion_encoder_size=16, motion_style_dim=8,
        motion_dim=4, motion_encoder_dim=8, face_encoder_hidden_dim=16, face_encoder_num_heads=2,
        inject_face_latents_blocks=2, motion_encoder_batch_size=4)
    torch.manual_seed(SEED)
    image_encoder = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, image_size=32, patch_size=8, num_hidden_layers=2,
                                                     num_attention_heads=4, intermediate_size=37, projection_dim=32))
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    WanAnimatePipeline(tokenizer=tokenizer, text_encoder=_text_encoder(len(tokenizer)), vae=_vae(),
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), image_processor=image_processor,
                       image_encoder=image_encoder, transformer=transformer).save_pretrained(
        folder, safe_serialization=True)
