"""Sequential CPU offload of pipelines that share their modules (accelerate's hooks, once per
module)."""

import torch


def offload_sequentially(pipe, device):
    """accelerate's sequential CPU offload for the modules of `pipe` not offloaded yet.

    Not `pipe.enable_sequential_cpu_offload()`: it first strips every hook of the pipeline,
    and our variants share their modules, so a new variant would strip the offloading of the
    others; and a module offloaded twice loses its weights ("Cannot copy out of meta tensor").
    """
    from accelerate import cpu_offload

    def offload(module):
        if hasattr(module, "_hf_hook"):
            return
        if not any(p.device.type == "meta" for p in module.parameters()):
            cpu_offload(module, device, offload_buffers=len(module._parameters) > 0)
            return
        for child in module.children():  # partly offloaded already (a ControlNet shared by a new MultiControlNet)
            offload(child)

    for name, module in pipe.components.items():
        if isinstance(module, torch.nn.Module):
            if name in pipe._exclude_from_cpu_offload:
                module.to(device)
            else:
                offload(module)
    pipe._offload_gpu_id, pipe._offload_device = device.index or 0, device


def remove_offload(pipes):
    """Undo the sequential offload of every module of `pipes`, putting their weights back on the CPU."""
    from accelerate.hooks import remove_hook_from_module
    for module in {id(m): m for pipe in pipes for m in pipe.components.values()
                   if isinstance(m, torch.nn.Module)}.values():
        remove_hook_from_module(module, recurse=True)
