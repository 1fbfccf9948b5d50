"""The Qwen-Image-Edit family (QwenImageEditPlusPipeline: Qwen-Image-Edit-2509/2511): a
multi-reference edit model. It keeps the whole character (outfit, hair, colours, props) by
taking the character's pictures as input pictures, next to the rig's OpenPose (and depth) map,
with an instruction saying which picture is which. It draws new pictures only; redrawing
(img2img, inpaint) and text-to-image without any picture are not offered here, so the jobs that
need them are refused before queueing in favour of a Stable Diffusion profile."""

import contextlib

import torch
from PIL import Image

from ..pictures import decode_image_bytes

CAPABILITIES = ("draw", "edit_region", "pose_control", "depth_control", "identity")
MAX_PICTURES = 3  # the model was trained with up to three input pictures
_MAPS = {"openpose": "an OpenPose skeleton", "depth": "a depth map"}


class QwenEdit:
    CAPABILITIES = CAPABILITIES
    required_roles = ("base",)
    region_strength = False  # an edit decides how much it changes
    name = "qwen_edit"
    gpu_gb = 60  # bf16 transformer (about 41 GB) and text encoder (about 17 GB) together
    native_size = 1024
    modules = ("transformer", "text_encoder", "vae")

    @staticmethod
    def roles_for(capability):
        return ()

    def load_base(self, engine):
        from diffusers import QwenImageEditPlusPipeline
        return engine.load(QwenImageEditPlusPipeline, "base")

    def variant(self, engine, mode, roles):
        raise ValueError(f"the {self.name} family builds no {mode} pipeline")  # refused before queueing

    @staticmethod
    def guidance(spec, call):
        """True classifier-free guidance, which runs only with a negative prompt."""
        if spec["guidance"] > 1 and not call.get("negative_prompt"):
            call["negative_prompt"] = " "
        return {"true_cfg_scale": spec["guidance"]}

    @staticmethod
    def decoder(pipe, call):
        """Packed latents -> images in -1..1 (the pipeline's own decode, with the VAE in `dtype`)."""
        def decode(latents, dtype):
            vae = pipe.vae
            unpacked = pipe._unpack_latents(latents, call["height"], call["width"], pipe.vae_scale_factor).to(dtype)
            mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(unpacked)
            std = torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(unpacked)
            return vae.decode(unpacked * std + mean, return_dict=False)[0][:, :, 0]
        return decode

    def draw(self, engine, spec, pngs, references, on_step, cancel_event):
        """The maps first, then as many of the character's pictures as the model takes (best
        first, as the pack orders them), one image at a time (the pipeline takes no batch)."""
        size = (spec["width"], spec["height"])
        maps = [(n, decode_image_bytes(pngs[n], f"controls.{n}.image").resize(size)) for n in _MAPS
                if n in spec["controls"]]
        refs = references[:max(0, MAX_PICTURES - len(maps))]
        pictures = [im for _, im in maps] + refs
        if not pictures:  # nothing to edit from: a neutral canvas of the job's size
            pictures = [Image.new("RGB", size, (127, 127, 127))]
        prompt = instruction([n for n, _ in maps], len(refs), spec)

        def run():
            pipe = engine.pipeline("txt2img")
            images = []
            with _reference_sizes(engine.profile):
                for i in range(spec["batch"]):
                    images += engine._generate(pipe, spec, spec["seed"] + i, 1, on_step, cancel_event, image=pictures,
                                               prompt=prompt, negative_prompt=spec["negative_prompt"] or None,
                                               width=spec["width"], height=spec["height"])
            return images
        return engine._with_oom_retry(run)


    def edit_region(self, engine, spec, pixels, mask, strength, references, seed, suffix, on_step, cancel_event,
                    controls):
        """The region (a face's square) edited as the prompt says, the character's pictures after
        it; the caller pastes the result through its feathered mask. An edit model decides how
        much to change: `strength` does not apply."""
        h, w = pixels.shape[:2]
        refs = references[:MAX_PICTURES - 1]
        words = ", ".join(p for p in (spec["prompt"].strip(), suffix.strip(", ")) if p)
        keep = (f", keeping the same person as in picture{'s' if len(refs) > 1 else ''} "
                f"{', '.join(str(i + 2) for i in range(len(refs)))}" if refs else ", keeping the same person")
        prompt = f"Edit picture 1: {words}{keep}; change nothing else."
        job = dict(spec, width=w, height=h)

        def run():
            pipe = engine.pipeline("txt2img")
            with _reference_sizes(engine.profile):
                return engine._generate(pipe, job, seed, 1, on_step, cancel_event,
                                        image=[Image.fromarray(pixels)] + refs, prompt=prompt,
                                        negative_prompt=spec["negative_prompt"] or None, width=w, height=h)[0]
        return engine._with_oom_retry(run)


@contextlib.contextmanager
def _reference_sizes(profile):
    """The profile's sizes for input pictures. diffusers reads them from module globals at call
    time (one job runs at a time, so setting them for the call is safe)."""
    from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as edit_plus
    saved = edit_plus.VAE_IMAGE_SIZE, edit_plus.CONDITION_IMAGE_SIZE
    edit_plus.VAE_IMAGE_SIZE, edit_plus.CONDITION_IMAGE_SIZE = profile.reference_pixels, profile.condition_pixels
    try:
        yield
    finally:
        edit_plus.VAE_IMAGE_SIZE, edit_plus.CONDITION_IMAGE_SIZE = saved


def instruction(maps, references, spec):
    """What the edit model is asked: which picture is which, then the user's own words."""
    words = ", ".join(p for p in (spec["prompt"].strip(), spec.get("style", "").strip()) if p)
    told = [f"Picture {i + 1} is {_MAPS[n]}" for i, n in enumerate(maps)]
    first = len(maps) + 1
    if references:
        who = f"picture {first}" if references == 1 else f"pictures {first} to {first + references - 1}"
        told.append(f"Draw the same character as in {who}: the same face, hair, outfit, colours and props")
    else:
        told.append("Draw the character")
    if maps:
        told[-1] += f", in exactly the pose of the skeleton in picture {maps.index('openpose') + 1}" \
            if "openpose" in maps else ", following the depth map"
    return ". ".join(told) + (f". {words}" if words else ".")
