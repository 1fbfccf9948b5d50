"""Fused QKV projections: a self-attention's query, key and value (a cross-attention's key and
value) computed by one matrix multiply instead of three, call by call.

diffusers' `fuse_qkv_projections` swaps every processor of a model for good: an IP-Adapter's
processors loaded after it are replaced (the identity silently gone), and a LoRA on the
query/key/value layers is skipped (the fused layer holds the base weights only), in the
pictures and in a training alike. Here an attention is fused only for the length of one call,
and only where it is plain: diffusers' default processor (not an IP-Adapter's) and no LoRA
acting on its projections. The fused layer's weight is the originals' storage (each original
keeps a view into it), so fusing costs no memory. Weights that move (offloading) would be fused
again at every call, which is why the engine fuses only in the memory modes that never move them.
"""

import contextlib

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0, FusedAttnProcessor2_0

# One processor (it holds no state) for every call: a compiled block then sees the same object
# from call to call and is not compiled again.
_FUSED = FusedAttnProcessor2_0()


def _acting_lora(layer):
    """A PEFT LoRA on `layer` changes its output in this call (enabled, active, not merged)."""
    adapters = getattr(layer, "lora_A", None)
    if adapters is None:
        return False
    return not (layer.disable_adapters or layer.merged) and any(a in adapters for a in layer.active_adapters)


def _projections(attn):
    return ("to_k", "to_v") if attn.is_cross_attention else ("to_q", "to_k", "to_v")


def fusable(attn):
    """`attn` runs diffusers' plain processor on projections no LoRA changes."""
    return type(attn.processor) is AttnProcessor2_0 and not any(
        _acting_lora(getattr(attn, n)) for n in ("to_q", "to_k", "to_v"))


@torch.no_grad()
def fuse_in_place(attn):
    """Give `attn` its fused layers over the projections' own storage: the concatenated weight
    is made once and every projection (the base layer under a LoRA) then holds a view into it.
    A self-attention gets `to_qkv` and also `to_kv` (its last rows), since some are called with
    other states as keys and values (the IP-Adapter's resampler); a cross-attention gets `to_kv`.
    The fused layers are plain attributes, not submodules: the model's state dict, parameters
    and moves stay as diffusers made them. Made again if the projections' weights are no longer
    views into them (moved to another device, or replaced)."""
    layers = [getattr(getattr(attn, n), "base_layer", getattr(attn, n)) for n in _projections(attn)]
    fused = attn.__dict__.get("to_qkv", attn.__dict__.get("to_kv"))
    if fused is not None and all(_same_storage(layer.weight, fused.weight) for layer in layers):
        return
    weight = torch.cat([layer.weight for layer in layers])
    bias = torch.cat([layer.bias for layer in layers]) if attn.use_bias else None
    start = 0
    for layer in layers:
        rows = layer.weight.shape[0]
        layer.weight.data = weight[start:start + rows]
        if bias is not None:
            layer.bias.data = bias[start:start + rows]
        start += rows
    if not attn.is_cross_attention:
        attn.__dict__["to_qkv"] = _linear(weight, bias)
        q = layers[0].weight.shape[0]
        weight, bias = weight[q:], bias[q:] if bias is not None else None
    attn.__dict__["to_kv"] = _linear(weight, bias)


def _same_storage(a, b):
    return a.device == b.device and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _linear(weight, bias):
    """A linear layer over these very tensors (no copy)."""
    layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    layer.weight = torch.nn.Parameter(weight, requires_grad=False)
    if bias is not None:
        layer.bias = torch.nn.Parameter(bias, requires_grad=False)
    return layer


@contextlib.contextmanager
def fused_attention(models):
    """While open, every plain attention in `models` runs fused; each gets its own processor
    back when it closes (so a training or a later call with a LoRA sees them unchanged)."""
    switched = []
    for model in models:
        for attn in model.modules():
            if isinstance(attn, Attention) and fusable(attn):
                fuse_in_place(attn)
                switched.append((attn, attn.processor))
    for attn, _ in switched:
        attn.set_processor(_FUSED)
    try:
        yield len(switched)
    finally:
        for attn, original in switched:
            attn.set_processor(original)
