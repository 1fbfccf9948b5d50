"""The video families: Wan2.1-VACE (WanVACEPipeline) and Wan2.2-Animate (WanAnimatePipeline).
They make a clip from control videos the rig renders frame by frame, the character's pictures
keeping who it is. A clip longer than the model's window is made in overlapping segments, each
after the first carried over the model's own way: VACE is given the previous segment's last
frames as the first frames of its video, kept (mask black); Animate encodes them as its
previous-segment conditioning (`prev_segment_conditioning_frames`), as its own pipeline does
between the segments of one call.

Capabilities: animate (a clip from control videos), pose_control (the OpenPose video steers
it), depth_control (VACE: a depth video instead), identity (the character's pictures),
inpaint (the painted set's video kept outside the characters' masks, the characters drawn in)."""

import contextlib

from ...core.spec.animation_spec import FAMILY_WINDOWS
from ...core.errors import UserError

# The Wan VAE's compression: a clip of 4k+1 frames becomes k+1 latent frames, 8x8 pixels one
# latent, and the transformer's 2x2 patches: sides in multiples of 16.
TEMPORAL = 4
SIDE_MULTIPLE = 16
# The prompt's negative when none is given: the model's own (Wan's sample negative, in English)
WAN_NEGATIVE = ("bright tones, overexposed, static, blurred details, subtitles, worst quality, low quality, JPEG "
                "compression residue, ugly, incomplete, extra fingers, poorly drawn hands, poorly drawn faces, "
                "deformed, disfigured, misshapen limbs, fused fingers, still picture, messy background")


def model_frames(count):
    """The frames the model makes for `count` frames: the next 4k+1 (the rest padded, dropped)."""
    return (max(count, 1) - 1 + TEMPORAL - 1) // TEMPORAL * TEMPORAL + 1


def padded(frames, count):
    """`frames` (a list) made `count` long by reflecting its end back and forth, as WanAnimate
    pads its own videos (the padded frames' results are dropped)."""
    if len(frames) >= count:
        return list(frames[:count])
    out, i, step = list(frames), len(frames) - 1, -1
    while len(out) < count:
        if len(frames) > 1:
            i += step
            if i in (0, len(frames) - 1):
                step = -step
        out.append(frames[max(0, i)])
    return out


class WanVideo:
    """What both Wan video families share: one base pipeline (no variants), the prompt encoded
    once per shot (the text encoder is the largest model: it leaves the GPU after encoding where
    the memory plan says so), latents decoded by the engine's NaN guard."""

    denoiser = "transformer"
    decodes_video = True
    taesd_latents = False
    region_strength = False
    batched_inpaint = False
    pipeline_class = ""
    cards_gb = (8, 12, 16, 24)  # the doctor's card sizes: video runs on smaller cards too
    max_references = 3
    needs_picture = False  # whether it cannot animate without a picture of the character

    @staticmethod
    def roles_for(capability, models=()):
        return ()

    @staticmethod
    def saved_gb(roles):
        return 0

    @staticmethod
    def check_roles(models, where):
        if "base" not in models:
            raise UserError(f"{where}: no model for base: add [models.base] with repo, folder or file")

    def load_base(self, engine):
        import diffusers
        return engine.load(getattr(diffusers, self.pipeline_class), "base")

    def variant(self, engine, mode, roles):
        raise ValueError(f"the {self.name} family builds no {mode} pipeline")  # refused before queueing

    def memory_need(self, weights="native"):
        """(GB with every model on the GPU, the text encoder leaving it after encoding; GB with
        the text encoder encoding on the CPU instead; GB at the peak of model offload), the
        denoiser stored as `weights`. Activations: this family's own size and window."""
        denoiser = self.denoiser_gb / 2 if weights == "fp8" else self.denoiser_gb
        rest = denoiser + self.other_gb + self.activations_gb
        return (round(max(self.text_encoder_gb + denoiser + self.other_gb, rest), 1), round(rest, 1),
                round(max(self.text_encoder_gb, rest), 1))

    @staticmethod
    def frames_for(frames, carried):
        """The frames the model makes for a segment of `frames` frames (the rest padded, dropped)."""
        return model_frames(frames)

    def window_problem(self, frames, carried):
        """Why the model cannot make a segment of `frames` frames whose first `carried` are carried
        over (None when it can): the model's window and its carry-over rules."""
        made = self.frames_for(frames, carried)
        if made > self.window:
            return (f"{frames} frames are more than {self.name}'s window of {self.window} frames in one pass",
                    f"make segments of at most {self.window} frames (4k+1: {self.window}, {self.window - 4}, ...)")
        if carried >= frames:
            return (f"all {frames} frames are carried over from the segment before: nothing new to make",
                    "make segments longer than the frames carried over")
        return None

    # -- running ---------------------------------------------------------------------------

    def prompt_embeddings(self, engine, pipe, spec):
        """(prompt, negative) embeddings, made once per prompt and kept on the engine (every
        segment of a shot sends the same prompt: the text encoder runs once a shot)."""
        import torch

        from ..engine import device
        negative = spec["negative_prompt"].strip() or WAN_NEGATIVE
        key = (self.name, spec["prompt"], negative, spec["guidance"] > 1)
        cache = engine.__dict__.setdefault("video_prompts", {})
        if key not in cache:
            text_encoder = pipe.text_encoder
            leaves = device.text_encoder_leaves(engine.memory, engine.text_encoder_place)
            if leaves:
                text_encoder.to(engine.device)
            where = torch.device("cpu" if engine.text_encoder_place == "cpu" else engine.device)
            try:
                with torch.no_grad():
                    embeds, negatives = pipe.encode_prompt(prompt=spec["prompt"] or " ", negative_prompt=negative,
                                                           do_classifier_free_guidance=spec["guidance"] > 1,
                                                           device=where)
            finally:
                if leaves:
                    text_encoder.to("cpu")
                    device.empty_cache(engine.device)
            cache.clear()  # one shot's prompt at a time: the embeddings are small, the memory is the GPU's
            cache[key] = (embeds.to(engine.device), None if negatives is None else negatives.to(engine.device))
        return cache[key]

    def animate(self, engine, clip, on_step, cancel_event):
        """Frames (H x W x 3 uint8 arrays) for every frame of `clip` (`animation.Clip`: its control
        frames, the carried frames first), the family's way."""
        def run():
            pipe = engine.base()
            embeds, negatives = self.prompt_embeddings(engine, pipe, clip.spec)
            count = self.frames_for(len(clip.frames), len(clip.previous))
            call = dict(self.call(engine, pipe, clip, count), prompt_embeds=embeds, negative_prompt_embeds=negatives,
                        height=clip.height, width=clip.width)
            with self.calling(pipe, clip, count):
                frames = engine.video(pipe, clip.spec, on_step, cancel_event, **call)
            return frames[:len(clip.frames)]
        return engine._with_oom_retry(run)

    def calling(self, pipe, clip, count):
        return contextlib.nullcontext()

    @staticmethod
    def guidance(spec, call):
        return {"guidance_scale": spec["guidance"]}

    @staticmethod
    def preview_latents(pipe, latents, call):
        """A latent frame from the middle of the clip, (batch, 16, h, w), for the preview."""
        return latents[:, :, latents.shape[2] // 2]


class WanVace(WanVideo):
    """Wan2.1-VACE: one control video (the pose, or depth) in the frames to make, the carried
    frames and the kept background as they are (mask black), reference pictures of the character
    in front of the clip (on white, as VACE was trained)."""

    name = "wan_vace"
    pipeline_class = "WanVACEPipeline"
    CAPABILITIES = ("animate", "pose_control", "depth_control", "identity", "inpaint")
    modules = ("transformer", "text_encoder", "vae")
    native_size = 480
    # 81 frames a pass (Wan2.1: 5 s at 16 fps); any first frames may be given (4k+1 fill whole latent frames)
    window, carries = FAMILY_WINDOWS[name]["window"], FAMILY_WINDOWS[name]["carries"]
    # bfloat16 GB: the transformer's 2.15 B parameters (its published config), the UMT5-XXL text
    # encoder (11.4 GB published), the VAE; activations and the decode at 832x480x81 as measured on
    # an H200 (BENCHMARKS.md: 8.7 GB peak with the text encoder on the CPU, less the weights)
    denoiser_gb, text_encoder_gb, other_gb, activations_gb = 4.3, 11.4, 0.3, 4.1

    def call(self, engine, pipe, clip, count):
        """The video (carried frames, then the control map where the characters are made, the
        painted set where it is kept), its mask, the references."""
        from PIL import Image
        video, masks = [], []
        black = Image.new("L", (clip.width, clip.height), 0)
        white = Image.new("L", (clip.width, clip.height), 255)
        for i, frame in enumerate(clip.frames):
            if i < len(clip.previous):
                video.append(clip.previous[i])
                masks.append(black)
                continue
            control = frame[clip.spec["control"]]
            if clip.spec["mode"] == "replace":
                mask = frame["mask"]
                video.append(Image.composite(control, frame["background"], mask))
                masks.append(mask)
            else:
                video.append(control)
                masks.append(white)
        # diffusers pads VACE's mask with one latent frame per reference picture cut from the
        # video's own latent frames: a short segment takes at most as many pictures as it has
        # latent frames (5 frames: 2), the best first, else the pass fails on a size mismatch
        tf = pipe.vae_scale_factor_temporal
        references = clip.references[:min(self.max_references, (count + tf - 1) // tf)]
        return {"video": padded(video, count), "mask": padded(masks, count),
                "reference_images": list(references) or None,
                "conditioning_scale": clip.spec["strength"], "num_frames": count}

    @staticmethod
    def decoder(pipe, call):
        """VACE's latents come back with the reference pictures' frames in front: dropped, then
        the Wan VAE's normalisation undone and the clip decoded (batch, 3, frames, h, w)."""
        import torch
        refs = len(call.get("reference_images") or ())

        def decode(latents, dtype):
            vae = pipe.vae
            latents = latents[:, :, refs:].to(dtype)
            mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
            std = torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
            return vae.decode(latents * std + mean, return_dict=False)[0]
        return decode


class WanAnimate(WanVideo):
    """Wan2.2-Animate: the character's picture animated by the pose video and the face video
    (crops around the rig's face), in replace mode into the painted set's video where the mask
    is white; a segment after the first conditioned on the previous one's last frames."""

    name = "wan_animate"
    pipeline_class = "WanAnimatePipeline"
    CAPABILITIES = ("animate", "pose_control", "identity", "inpaint")
    modules = ("transformer", "text_encoder", "vae", "image_encoder")
    native_size = 720
    # 77 frames a segment (its pipeline's segment_frame_length); prev_segment_conditioning_frames: 1 or 5
    window, carries = FAMILY_WINDOWS[name]["window"], FAMILY_WINDOWS[name]["carries"]
    max_references = 1  # one character picture
    needs_picture = True
    # bfloat16 GB: the transformer's 17.3 B parameters (69.1 GB published in float32), the
    # UMT5-XXL text encoder (11.4 GB), the CLIP image encoder (1.26 GB) and VAE; activations and
    # the decode at 1280x720x77, estimated from the VACE figure scaled by tokens and width
    denoiser_gb, text_encoder_gb, other_gb, activations_gb = 34.5, 11.4, 1.5, 12.0

    def window_problem(self, frames, carried):
        problem = super().window_problem(frames, carried)
        if problem is None and carried and carried not in self.carries:
            return (f"{carried} frames carried over: Wan-Animate carries 1 or 5", "carry 1 or 5 frames")
        return problem

    @staticmethod
    def frames_for(frames, carried):
        """Its pipeline splits a call into segments of `segment_frame_length` less the frames
        carried: one segment needs more than twice the frames carried (a short last segment is
        padded to that, the padding dropped)."""
        return max(model_frames(frames), model_frames(2 * carried + 1))

    def call(self, engine, pipe, clip, count):
        from PIL import Image
        if not clip.references:
            raise UserError("Wan-Animate animates a picture of the character: give the character's pictures "
                            "(the rig plays a character with an identity pack)")
        size = pipe.transformer.config.motion_encoder_size
        blank = Image.new("RGB", (size, size))
        call = {"image": clip.references[0], "mode": "animate",
                "pose_video": padded([f["openpose"] for f in clip.frames], count),
                "face_video": padded([f.get("face", blank) for f in clip.frames], count),
                "segment_frame_length": count, "prev_segment_conditioning_frames": len(clip.previous) or 1}
        if clip.spec["mode"] == "replace":
            call.update(mode="replace", background_video=padded([f["background"] for f in clip.frames], count),
                        mask_video=padded([f["mask"] for f in clip.frames], count))
        return call

    @contextlib.contextmanager
    def calling(self, pipe, clip, count):
        """A segment after the first: the previous segment's last frames go in as the model's own
        previous-segment conditioning (the pipeline does this between the segments of one call;
        across calls, this call's first segment is given them)."""
        if not clip.previous:
            yield
            return
        import numpy as np
        import torch
        carried = torch.from_numpy(np.stack([np.asarray(p, dtype=np.float32) for p in clip.previous]))
        carried = (carried / 127.5 - 1.0).permute(3, 0, 1, 2).unsqueeze(0)  # (1, 3, frames, h, w), -1..1
        original = pipe.prepare_prev_segment_cond_latents

        def with_previous(prev_segment_cond_video=None, *args, **kwargs):
            kwargs["start_frame"] = max(kwargs.get("start_frame", 0), 1)  # the mask marks them as given
            return original(carried.to(kwargs.get("device")), *args, **kwargs)

        own = "prepare_prev_segment_cond_latents" in vars(pipe)
        pipe.prepare_prev_segment_cond_latents = with_previous
        try:
            yield
        finally:
            if own:
                pipe.prepare_prev_segment_cond_latents = original
            else:
                del pipe.prepare_prev_segment_cond_latents

    @staticmethod
    def decoder(pipe, call):
        """Animate's latents hold the reference frame first: dropped, normalisation undone, decoded."""
        import torch

        def decode(latents, dtype):
            vae = pipe.vae
            latents = latents[:, :, 1:].to(dtype)
            mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
            std = torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(latents)
            return vae.decode(latents * std + mean, return_dict=False)[0]
        return decode
