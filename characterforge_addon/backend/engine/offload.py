"""Where the weights of pipelines that share their modules live: sequential CPU offload
(accelerate's hooks) and group offload (diffusers' hooks), each applied once per module, and
float8 storage of the denoiser."""

import torch


def _offload_each(pipe, device, untouched, hook, done=lambda module: False):
    """`hook(module)` for every module of `pipe` that is `untouched`; a module partly hooked
    already (a ControlNet shared by a new MultiControlNet) has its untouched parts hooked, one
    that is `done` is left alone. Modules the pipeline keeps out of offloading go to `device`."""
    def offload(module):
        if done(module):
            return
        if untouched(module):
            hook(module)
            return
        for child in module.children():
            offload(child)

    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module):
            if name in pipe._exclude_from_cpu_offload:
                module.to(device)
            else:
                offload(module)


def offload_sequentially(pipe, device):
    """accelerate's sequential CPU offload for the modules of `pipe` not offloaded yet.

    Not `pipe.enable_sequential_cpu_offload()`: it first strips every hook of the pipeline,
    and our variants share their modules, so a new variant would strip the offloading of the
    others; and a module offloaded twice loses its weights ("Cannot copy out of meta tensor").
    """
    from accelerate import cpu_offload
    _offload_each(pipe, device, lambda m: not any(p.device.type == "meta" for p in m.parameters()),
                  lambda m: cpu_offload(m, device, offload_buffers=len(m._parameters) > 0),
                  done=lambda m: hasattr(m, "_hf_hook"))
    pipe._offload_gpu_id, pipe._offload_device = device.index or 0, device


def offload_in_groups(pipe, device, use_stream):
    """diffusers' group offload, layer by layer, for the modules of `pipe` not offloaded yet: only
    the layer running is on the GPU (with `use_stream` the next one is copied on a side stream
    while it runs), so it is nearly as light as sequential offload and far faster. Not
    `pipe.enable_group_offload()`, which would hook shared modules twice (see above)."""
    from diffusers.hooks import apply_group_offloading
    from diffusers.hooks.group_offloading import _is_group_offload_enabled
    _offload_each(pipe, device, lambda m: not _is_group_offload_enabled(m),
                  lambda m: apply_group_offloading(m, onload_device=device, offload_type="leaf_level",
                                                   use_stream=use_stream))


def store_in_fp8(module, compute_dtype):
    """Keep `module`'s weights in float8, each layer cast to `compute_dtype` while it runs
    (diffusers' layerwise casting; norms and embeddings are not hooked). Called again after
    something was loaded into it, it puts every layer right by one rule: hooked layers in
    float8 (loading IP-Adapters casts the whole UNet to the compute dtype: for that moment it
    takes its full size), every other one in the compute dtype (new adapter layers; a LoRA's,
    which PEFT makes float8 like the layer it wraps, with no hook to cast them)."""
    from diffusers.hooks.layerwise_casting import _is_layerwise_casting_active
    if not _is_layerwise_casting_active(module):
        module.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=compute_dtype)
    for part in module.modules():
        hook = part._diffusers_hook.get_hook("layerwise_casting") if hasattr(part, "_diffusers_hook") else None
        wanted = hook.storage_dtype if hook is not None else compute_dtype
        for param in part.parameters(recurse=False):
            if param.dtype != wanted:
                param.data = param.data.to(wanted)


def remove_offload(pipes):
    """Undo the sequential or group offload of every module of `pipes`, leaving their weights on
    the CPU (float8 storage stays)."""
    from accelerate.hooks import remove_hook_from_module
    from diffusers.hooks import HookRegistry
    for module in {id(m): m for pipe in pipes for m in pipe.components.values()
                   if isinstance(m, torch.nn.Module)}.values():
        remove_hook_from_module(module, recurse=True)
        for part in module.modules():
            if hasattr(part, "_diffusers_hook"):
                for hook in ("group_offloading", "lazy_prefetch_group_offloading"):
                    HookRegistry.check_if_exists_or_initialize(part).remove_hook(hook, recurse=False)
