"""The Qwen-Image-Edit family (QwenImageEditPlusPipeline: Qwen-Image-Edit-2509/2511), up to
three input pictures, true classifier-free guidance with a negative prompt."""

import contextlib

from .draft import LIGHTNING_SCHEDULER, Draft
from .edit import EditFamily


class QwenEdit(EditFamily):
    name = "qwen_edit"
    pipeline_class = "QwenImageEditPlusPipeline"
    max_pictures = 3  # the model was trained with up to three input pictures
    gpu_gb = 60  # bf16 transformer (about 41 GB) and text encoder (about 17 GB) together
    offload_gb = 45  # the transformer and its activations at 1024x1024 with three pictures
    denoiser_gb = 40.9
    native_size = 1024
    modules = ("transformer", "text_encoder", "vae")

    @staticmethod
    def roles_for(capability, models=()):
        return ("draft_lora",) if capability == "draft" else ()

    @staticmethod
    def draft(profile):
        """Qwen-Image-Edit Lightning (its LoRA in `draft_lora`): 4 steps (8 with the 8-step
        LoRA: set `draft_steps`), its own schedule, no true CFG."""
        return Draft(profile.draft_steps or 4, 1.0, "FlowMatchEuler (Lightning)", "FlowMatchEulerDiscreteScheduler",
                     LIGHTNING_SCHEDULER)

    @staticmethod
    def guidance(spec, call):
        """True classifier-free guidance, which runs only with a negative prompt."""
        if spec["guidance"] > 1 and not call.get("negative_prompt"):
            call["negative_prompt"] = " "
        return {"true_cfg_scale": spec["guidance"]}

    @staticmethod
    def decoder(pipe, call):
        """Packed latents -> images in -1..1 (the pipeline's own decode, with the VAE in `dtype`)."""
        import torch

        def decode(latents, dtype):
            vae = pipe.vae
            unpacked = pipe._unpack_latents(latents, call["height"], call["width"], pipe.vae_scale_factor).to(dtype)
            mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(unpacked)
            std = torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(unpacked)
            return vae.decode(unpacked * std + mean, return_dict=False)[0][:, :, 0]
        return decode

    @staticmethod
    def preview_latents(pipe, latents, call):
        """Packed 2x2 patches -> (batch, 16, h, w), still normalised (as the preview factors want)."""
        return pipe._unpack_latents(latents, call["height"], call["width"], pipe.vae_scale_factor)[:, :, 0]

    @contextlib.contextmanager
    def calling(self, engine):
        """The profile's sizes for input pictures. diffusers reads them from module globals at
        call time (one job runs at a time, so setting them for the call is safe)."""
        from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as edit_plus
        saved = edit_plus.VAE_IMAGE_SIZE, edit_plus.CONDITION_IMAGE_SIZE
        edit_plus.VAE_IMAGE_SIZE = engine.profile.reference_pixels
        edit_plus.CONDITION_IMAGE_SIZE = engine.profile.condition_pixels
        try:
            yield
        finally:
            edit_plus.VAE_IMAGE_SIZE, edit_plus.CONDITION_IMAGE_SIZE = saved
