"""The Stable Diffusion families (SDXL, SD 1.5): a diffusers text-to-image base, its img2img and
inpaint variants built on the same weights with `from_pipe`, ControlNets for pose and depth (or,
on SDXL, one ControlNet-Union for pose, depth, normal and line-art maps), IP-Adapter plus-face
and FaceID for identity, a plain IP-Adapter for appearance (an object's or creature's look)."""

from ...core.errors import UserError
from .draft import Draft

CAPABILITIES = ("draw", "txt2img", "img2img", "inpaint", "pose_control", "depth_control", "normal_control",
                "line_control", "identity", "draft", "lora", "train_lora", "relight")
_ROLES = {"pose_control": ("controlnet_openpose",), "depth_control": ("controlnet_depth",),
          "identity": ("image_encoder", "ip_adapter_plus_face"), "draft": ("draft_lora",)}
_PIPELINES = {"sdxl": "StableDiffusionXL{}", "sd15": "StableDiffusion{}"}
_MODES = {"txt2img": "Pipeline", "img2img": "Img2ImgPipeline", "inpaint": "InpaintPipeline"}
UNION = "controlnet_union"
# The control modes of xinsir's ControlNet-Union for SDXL (0 OpenPose, 1 depth, 2 thick line, 3
# thin line: canny and line art, 4 normal); hand depth is a second depth map, our line art thin.
UNION_MODES = {"openpose": 0, "depth": 1, "hand_depth": 1, "lineart": 3, "normal": 4}
UNION_ONLY = ("normal_control", "line_control")  # no separate SDXL or SD 1.5 ControlNet is named for these


class StableDiffusion:
    CAPABILITIES = CAPABILITIES
    region_strength = True  # inpainting redraws a region as strongly as asked
    batched_inpaint = True  # several regions of one size inpainted in one batch
    taesd_latents = True  # a tiny autoencoder (TAESD) decodes its latents: previews, drafts

    denoiser = "unet"

    def __init__(self, name, gpu_gb, offload_gb, denoiser_gb, controlnet_gb, native_size, modules, lora_size):
        self.name = name
        self.gpu_gb = gpu_gb  # free GPU memory that holds every model at once ("gpu" memory mode)
        self.offload_gb = offload_gb  # ... the UNet, ControlNets and adapters at once (model offload)
        self.denoiser_gb = denoiser_gb  # the UNet's weights
        self.controlnet_gb = controlnet_gb  # one ControlNet's weights (the sizes above hold two)
        self.native_size = native_size  # the side the model was trained at
        self.modules = modules  # the base repo's folders the pipeline loads (the downloader fetches them)
        # numbers a LoRA of rank 1 on the attention projections holds: (UNet, text encoders)
        self.lora_size = lora_size
        # a character LoRA's training defaults: the rank and learning rate of diffusers' and
        # kohya's character recipes; 1000 steps is about 50 passes over a sheet's pictures
        self.train_defaults = {"rank": 16, "learning_rate": 1e-4, "steps": 1000}

    def lora_params_per_rank(self, text_encoders):
        """Numbers a rank-1 LoRA holds (for the disk a training needs before it loads anything)."""
        return self.lora_size[0] + (self.lora_size[1] if text_encoders else 0)

    def roles_for(self, capability, models=()):
        """The profile roles a capability needs beyond the base model, in a profile naming the
        roles `models` (pose and depth come from its ControlNet-Union when it has one)."""
        if (UNION in models and capability in ("pose_control", "depth_control")) or capability in UNION_ONLY:
            return (UNION,)
        return _ROLES.get(capability, ())

    def saved_gb(self, roles):
        """GB a profile naming `roles` takes less than the sizes above: one ControlNet-Union
        in place of the pose and depth ControlNets."""
        return self.controlnet_gb if UNION in roles else 0

    def check_roles(self, models, where):
        """Raise UserError unless a profile naming the roles `models` can run this family."""
        if UNION in models and self.name != "sdxl":
            raise UserError(f"{where}: [models.{UNION}] is for SDXL profiles (diffusers has no ControlNet-Union "
                            f"pipelines for {self.name}): use controlnet_openpose and controlnet_depth")
        for role in ("base", "controlnet_openpose" if UNION not in models else UNION):
            if role not in models:
                raise UserError(f"{where}: no model for {role}: add [models.{role}] with repo, folder or file "
                                f"(SDXL profiles may name one [models.{UNION}] instead of the pose and depth ones)")

    @staticmethod
    def controlnet_class(role):
        """The diffusers class a ControlNet role loads as."""
        import diffusers
        return diffusers.ControlNetUnionModel if role == UNION else diffusers.ControlNetModel

    @staticmethod
    def control_role(models, name):
        """The ControlNet role that reads map `name` (openpose, depth, hand_depth) in a profile
        naming the roles `models`."""
        if UNION in models or name in ("normal", "lineart"):
            return UNION
        if name == "normal":  # only the ControlNet-Union reads normal maps here: none, so it is left out
            return None
        return "controlnet_openpose" if name == "openpose" else "controlnet_depth"

    def control_call(self, models, mode, names, images, controls):
        """(the ControlNet roles of the pipeline, its call arguments) for the maps `names` with
        `images` (one per name: pictures, or a batch as a tensor), steered by the spec's
        `controls`: a ControlNet per map, or the one ControlNet-Union taking every map with its
        control mode and each map's strength and start-end range."""
        roles = [self.control_role(models, n) for n in names]
        union = UNION in roles
        call = {"image" if mode == "txt2img" and not union else "control_image": list(images),
                "controlnet_conditioning_scale": [controls[n]["strength"] for n in names],
                "control_guidance_start": [controls[n]["start"] for n in names],
                "control_guidance_end": [controls[n]["end"] for n in names]}
        if union:
            roles = [UNION]
            call["control_mode"] = [UNION_MODES[n] for n in names]
        return roles, call

    def load_base(self, engine):
        """The text-to-image pipeline, with the profile's own VAE when it names one."""
        import diffusers
        extra = {}
        if "vae" in engine.profile.models:
            extra["vae"] = engine.load(diffusers.AutoencoderKL, "vae")
        if self.name == "sd15":
            extra.update(safety_checker=None, requires_safety_checker=False)
        return engine.load(getattr(diffusers, _PIPELINES[self.name].format(_MODES["txt2img"])), "base", **extra)

    def variant(self, engine, mode, roles):
        """`mode` (txt2img, img2img, inpaint) with these ControlNet roles (or the one Union), on
        the base's weights (`from_pipe` is told the dtype: it casts to float32 otherwise)."""
        import diffusers

        from ..engine.controlnets import IdleSkippingControlNets
        union = roles == [UNION]
        name = _PIPELINES[self.name].format(("ControlNetUnion" if union else "ControlNet" if roles else "") +
                                            _MODES[mode])
        nets = IdleSkippingControlNets if "skip_idle_controlnets" in engine.speedups else diffusers.MultiControlNetModel
        extra = {"controlnet": engine.controlnet(UNION) if union else nets([engine.controlnet(r) for r in roles])
                 } if roles else {}
        return getattr(diffusers, name).from_pipe(engine.base(), dtype=engine.dtype, **extra)

    @staticmethod
    def guidance(spec, call):
        return {"guidance_scale": spec["guidance"]}

    @staticmethod
    def draft(profile):
        """TCD (its LoRA in the profile's `draft_lora`): keeps ControlNet and IP-Adapter working;
        the authors' settings: its own scheduler, no classifier-free guidance, eta 0.3."""
        return Draft(profile.draft_steps or 6, 1.0, "TCD", "TCDScheduler", call={"eta": 0.3})

    @staticmethod
    def preview_latents(pipe, latents, call):
        """The latents as previews take them: (batch, 4, h, w), as they are."""
        return latents

    @staticmethod
    def decoder(pipe, call):
        """latents -> images in -1..1, with the VAE in `dtype`."""
        def decode(latents, dtype):
            return pipe.vae.decode((latents / pipe.vae.config.scaling_factor).to(dtype), return_dict=False)[0]
        return decode

    @staticmethod
    def draw(engine, spec, pngs, references, on_step, cancel_event):
        """The prompt through the ControlNets of the maps sent (none: the base pipeline), the
        references through the identity adapters."""
        if spec["controls"]:
            return engine.controlnet_images(spec, pngs, references, on_step, cancel_event)
        return engine.txt2img(spec, on_step, cancel_event)

    @staticmethod
    def inpaint(engine, spec, pixels, mask, strength, references, seed, suffix, on_step, cancel_event, controls,
                identity):
        return engine.inpaint_with_controlnets(spec, pixels, mask, strength, references, seed, suffix, on_step,
                                               cancel_event, controls, identity)

    @classmethod
    def relight(cls, engine, spec, picture, start, light, mask, strength, references, seed, words, on_step,
                cancel_event, controls, identity):
        """(picture, notes): `start` (the picture re-shaded by the light reference) redrawn at a low
        `strength` inside `mask`, the maps in `controls` the profile has ControlNets for holding the
        geometry, the identities through the adapters (`identity`), the light named in the prompt."""
        models = engine.profile.models
        kept = [(n, im) for n, im in controls if cls.control_role(models, n) in models]
        image = engine.inpaint_with_controlnets(engine.relighting(spec), start, mask, strength, references, seed,
                                                f", {words['light']}", on_step, cancel_event, kept, identity)
        return image, {"method": "re-shaded by the light reference, then redrawn at a strength",
                       "steered_by": [n for n, _ in kept], "strength": strength}
