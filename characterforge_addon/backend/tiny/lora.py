"""A random LoRA for a tiny denoiser, written as diffusers writes LoRAs: it stands in for the
draft LoRAs (TCD, Lightning) in the tiny profiles. It changes the output, nothing more."""

import os

TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]


def make(folder, pipeline_class, denoiser, layers_key, seed=0):
    """`denoiser` gets a rank-4 LoRA on its attention projections with random weights (a new
    LoRA's B matrices are zero: it would change nothing); saved with `pipeline_class`'s
    `save_lora_weights` under `layers_key` (unet_lora_layers, transformer_lora_layers), then
    removed from `denoiser`."""
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    denoiser.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=TARGETS), adapter_name="tiny")
    with torch.no_grad():
        for name, param in denoiser.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.2)
    layers = get_peft_model_state_dict(denoiser, adapter_name="tiny")
    pipeline_class.save_lora_weights(folder, **{layers_key: layers}, safe_serialization=True)
    denoiser.delete_adapters("tiny")
    return os.path.join(folder, "pytorch_lora_weights.safetensors")
