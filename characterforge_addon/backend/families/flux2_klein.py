"""The FLUX.2 [klein] family (Flux2KleinPipeline): a small distilled model that draws from a
prompt and up to four reference pictures. Its own negative prompt is empty (none is taken)."""

from .draft import Draft
from .edit import EditFamily


class Flux2Klein(EditFamily):
    name = "flux2_klein"
    pipeline_class = "Flux2KleinPipeline"
    max_pictures = 4
    takes_negative_prompt = False
    gpu_gb = 16  # the 4B transformer and the Qwen3 4B text encoder in bf16
    offload_gb = 11  # the transformer and its activations at 1024x1024 with four pictures
    denoiser_gb = 7.8
    native_size = 1024
    modules = ("transformer", "text_encoder", "vae")

    @staticmethod
    def draft(profile):
        """klein is distilled: a draft is its own 4-step schedule without guidance, no LoRA."""
        return Draft(profile.draft_steps or 4, 1.0, "FlowMatchEuler")

    @staticmethod
    def guidance(spec, call):
        return {"guidance_scale": spec["guidance"]}

    @staticmethod
    def decoder(pipe, call):
        """Its latents come back unpacked and denormalised: the VAE decodes them as they are."""
        def decode(latents, dtype):
            return pipe.vae.decode(latents.to(dtype), return_dict=False)[0]
        return decode

    def call_options(self, engine):
        """The text encoder's layers whose states condition the model (the model's own: 9, 18, 27)."""
        layers = engine.profile.text_layers
        return {"text_encoder_out_layers": tuple(layers)} if layers else {}
