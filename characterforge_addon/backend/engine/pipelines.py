"""Load a profile's components once and run jobs on them.

One dtype for every module of a pipeline (so "expected query, key and value to have the
same dtype" cannot happen); ControlNet variants built with `from_pipe` (weights shared);
decoding checked for NaN and all-black output, retried with an upcast VAE, never returned
black; out-of-memory retried once with a lighter memory mode.
"""

import contextlib
import inspect
import math
import os
import time

import numpy as np
import torch
from PIL import Image

from ...core.errors import UserError
from ...core.spec.job_spec import CONTROL_CAPABILITY, CONTROL_KINDS, extra_maps
from ...core.spec.training_spec import prompt_with_trigger
from ..families import capabilities, family_of, memory_need
from ..models import models
from . import device
from .adapters import Adapters
from .appearance import Appearance
from .character_loras import CharacterLoras
from .offload import offload_in_groups, offload_sequentially, remove_offload, store_in_fp8
from .pictures import decode_image_bytes
from .preview import decoded_preview, latent_preview
from .preview import FACTORS as PREVIEW_FACTORS
from .speedups import chosen


RELIGHT_CALL = "relight_call"  # set in the spec a family's relight hands the engine: its relight LoRA acts


class GenerationError(UserError):
    """A job that cannot produce a usable image; the message says why and what to change."""


class Canceled(Exception):
    pass


def modules_of(pipe):
    return {name: c for name, c in pipe.components.items() if isinstance(c, torch.nn.Module)}


_STORAGE_DTYPES = (torch.float8_e4m3fn,)  # float8 storage: cast to the compute dtype layer by layer


def check_one_dtype(pipe):
    """Raise unless every parameter of every module has the same dtype."""
    dtypes = {}
    for name, module in modules_of(pipe).items():
        for p in module.parameters():
            if p.dtype not in _STORAGE_DTYPES:
                dtypes.setdefault(p.dtype, name)
    if len(dtypes) > 1:
        raise GenerationError(f"pipeline mixes dtypes {', '.join(f'{d} ({n})' for d, n in dtypes.items())}")


class Engine:
    """A profile's components, loaded once, and the pipelines built on them."""

    def __init__(self, profile, models_dir, memory="auto", allow_download=False, probe=None, weights="native",
                 speedups=None, lora_store=None):
        self.profile = profile
        self.models_dir = models_dir
        self.allow_download = allow_download
        self.hardware = device.choose(probe or device.probe(), profile.gpu_dtype)
        self.device, self.dtype = self.hardware.kind, self.hardware.torch_dtype
        self.family = family_of(profile)
        self.weights = device.weight_storage(weights, self.hardware)
        self.speedups = chosen() if speedups is None else speedups
        need = memory_need(self.family, self.weights, profile.models)
        self.text_encoder_place = "device"  # a video family's text encoder may encode on the CPU instead
        if getattr(self.family, "decodes_video", False):
            self.memory, self.text_encoder_place = device.video_memory(memory, self.hardware, need)
            self.vae_tiling = device.video_vae_tiling(self.memory)
        else:
            self.memory = device.memory_mode(memory, self.hardware, need)
            self.vae_tiling = False
        self._base = None
        self._controlnets = {}
        self._variants = {}
        self.adapters = Adapters(self)
        self.appearance = Appearance(self)  # the image encoder's embeddings: appearance scores and packs
        self._faces = None
        self._draft_lora = False  # the profile's draft LoRA is in the denoiser (adapter "draft")
        self._relight_lora = False  # the profile's relight LoRA is in the denoiser (adapter "relight")
        self.loras = CharacterLoras(self, lora_store)  # characters' trained LoRAs, loaded as jobs name them
        self._trained_adapter = None  # a LoRA being trained: on in its sample pictures
        self._preview_decoder = None  # the profile's tiny autoencoder, loaded at the first preview
        self.preview_note = ""  # why previews fall back to the linear map, when they do

    # -- loading ---------------------------------------------------------------------------

    def load(self, cls, role, **extra):
        """A component of `role` as `cls`, in the engine's dtype (families call this)."""
        source = self.profile.models[role]
        where, kwargs = models.resolve_for_loading(source, self.models_dir, self.allow_download)
        kwargs = dict(kwargs, **extra)
        kwargs.setdefault("local_files_only", True)
        if source.variant:  # the files the downloader fetched, whatever dtype they are loaded in
            kwargs["variant"] = source.variant
        try:
            if source.kind == "file":
                # A checkpoint as model sites publish it; the configs come from `config` (a
                # diffusers folder or cached repo), or diffusers' default for the model type.
                extra = {"config": source.config} if source.config else {}
                return cls.from_single_file(where, dtype=self.dtype, local_files_only=kwargs["local_files_only"],
                                            **extra, **{k: v for k, v in kwargs.items() if k not in (
                                                "local_files_only", "variant")})
            return cls.from_pretrained(where, dtype=self.dtype, use_safetensors=True, **kwargs)
        except (OSError, ValueError, EnvironmentError) as exc:
            raise models.ModelMissing(role, f"could not load {source.location}: {str(exc).splitlines()[0]}",
                                      where, "run doctor for the exact files and commands") from None

    def base(self):
        if self._base is None:
            pipe = self.family.load_base(self)
            pipe.set_progress_bar_config(disable=True)
            self._base = self._place(pipe)
        return self._base

    def controlnet(self, role):
        """The ControlNet of `role`, loaded once as the family's class for it."""
        if role not in self._controlnets:
            self._controlnets[role] = self.load(self.family.controlnet_class(role), role).to(self.dtype)
        return self._controlnets[role]

    def _place(self, pipe):
        stored_in_fp8 = getattr(pipe, self.family.denoiser) if self.weights == "fp8" else None
        for module in modules_of(pipe).values():
            if module is stored_in_fp8:
                store_in_fp8(module, self.dtype)  # each layer in float8 or the compute dtype, by its own rule
            elif any(p.dtype != self.dtype for p in module.parameters()):
                module.to(self.dtype)
            if "channels_last" in self.speedups:
                to_channels_last(module)
            if "compile" in self.speedups and self.memory in ("gpu", "cpu"):
                compile_blocks(module)  # offload hooks move weights under compiled code: not there
        if self.memory in ("gpu", "cpu"):
            for name, module in modules_of(pipe).items():  # the memory plan may keep the text encoder on the CPU
                module.to("cpu" if name == "text_encoder" and self.text_encoder_place == "cpu" else self.device)
        elif self.memory == "model_offload":
            pipe.enable_model_cpu_offload()
        elif self.memory == "group_offload":
            offload_in_groups(pipe, torch.device(self.device), device.side_streams(self.device))
        elif self.memory == "sequential_offload":
            offload_sequentially(pipe, torch.device(self.device))
        if self.vae_tiling:
            pipe.vae.enable_tiling()
        if self.hardware.attention_slicing or (self.vae_tiling and self.device == "mps"):
            pipe.enable_attention_slicing()  # the lighter step where memory is shared (Apple Silicon)
        check_one_dtype(pipe)
        return pipe

    @contextlib.contextmanager
    def changing_weights(self):
        """Around loading into the shared modules (adapters, LoRAs): the offload hooks come off
        while it runs, and every pipeline is placed again after (new layers onto the device,
        float8 storage again)."""
        if self.memory in ("group_offload", "sequential_offload"):
            remove_offload(self._pipes())
        yield
        self.place_again()

    def _pipes(self):
        return [p for p in (self._base, *self._variants.values()) if p is not None]

    def hold_for_training(self, on_device):
        """Training places the models itself: every offload hook off, the modules `on_device` on
        the device, the base's others on the CPU (all on the device in the "gpu" memory mode).
        The identity adapters come out of the UNet (they would take the captions' last tokens for
        a picture's); they load again at the next job that wants them."""
        pipes = self._pipes()
        remove_offload(pipes)
        if self.adapters.loaded:
            self._base.unload_ip_adapter()
            self.adapters = Adapters(self)
        for module in modules_of(self._base).values():
            keep = self.memory in ("gpu", "cpu") or any(module is m for m in on_device)
            module.to(self.device if keep else "cpu")

    def rest(self, modules):
        """Modules a training no longer needs off the device (unless every model stays there)."""
        if self.memory not in ("gpu", "cpu"):
            for module in modules:
                module.to("cpu")
            device.empty_cache(self.device)

    def place_again(self):
        """Every pipeline placed as the memory mode wants (after loading into them, or a training)."""
        for pipe in self._pipes():
            self._place(pipe)

    @contextlib.contextmanager
    def trained_adapter(self, name):
        """While it is open, pictures are made with adapter `name` (a LoRA in training) on."""
        self._trained_adapter = name
        try:
            yield
        finally:
            self._trained_adapter = None

    def as_run(self, spec, sampler):
        """(the spec as it runs, its sampler's name): a draft's steps and guidance are the
        family's few-step settings; a final's, the job's own with `sampler`."""
        if not spec.get("draft"):
            return spec, sampler
        draft = self.family.draft(self.profile)
        return dict(spec, steps=draft.steps, guidance=draft.guidance), draft.sampler

    def _load_draft_lora(self):
        """The profile's draft LoRA into the denoiser, once (families that need none have no role)."""
        if not self._draft_lora and "draft_lora" in self.profile.models:
            self._draft_lora = self._load_lora_role("draft_lora", "draft", "draft")

    def _load_relight_lora(self):
        """The profile's relight LoRA (an optional role) into the denoiser, once."""
        if not self._relight_lora and "relight_lora" in self.profile.models:
            self._relight_lora = self._load_lora_role("relight_lora", "relight", "relight")

    def _load_lora_role(self, role, adapter, what):
        """The LoRA file of profile role `role` loaded into the shared denoiser as `adapter`."""
        source = self.profile.models[role]
        where, kwargs = models.resolve_for_loading(source, self.models_dir, self.allow_download)
        base = self.base()
        try:
            with self.changing_weights():
                if os.path.isfile(where):
                    base.load_lora_weights(where, adapter_name=adapter)
                else:  # a repo to download (--allow-download)
                    base.load_lora_weights(where, weight_name=source.weight, adapter_name=adapter, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise models.ModelMissing(role, f"could not load the {what} LoRA {source.location}: "
                                      f"{str(exc).splitlines()[0]}", where,
                                      f"check that it is a {what} LoRA for this profile's base model") from None
        return True

    @staticmethod
    def relighting(spec):
        """`spec` as a relight's own model call takes it (families call this): the profile's relight
        LoRA, where it names one, acts in that call only."""
        return dict(spec, **{RELIGHT_CALL: True})

    def _lora_adapters(self, spec):
        """{adapter: weight} a call runs with: the draft LoRA for a draft, the character LoRA of
        the spec's identity (unless its weight is 0), the LoRA in training while it samples."""
        active = {}
        if spec.get("draft"):
            self._load_draft_lora()
            if self._draft_lora:
                active["draft"] = 1.0
        if spec.get(RELIGHT_CALL):  # a relight's own model call: the profile's relight LoRA, where it has one
            self._load_relight_lora()
            if self._relight_lora:
                active["relight"] = 1.0
        lora = spec.get("identity", {}).get("lora")
        if lora and lora["weight"] > 0:
            active[self.loras.adapter(lora)] = lora["weight"]
        if self._trained_adapter:
            active[self._trained_adapter] = 1.0
        return active

    @contextlib.contextmanager
    def _sampling(self, pipe, spec):
        """(the spec as it runs, extra pipeline arguments): the LoRAs the call needs on and every
        other one off, the plain attentions fused; a final runs the job's own steps and guidance;
        a draft, the family's few-step settings with its scheduler swapped in for the call."""
        active = self._lora_adapters(spec)
        if active:
            pipe.enable_lora()
            pipe.set_adapters(list(active), list(active.values()))
        elif self._draft_lora or self._relight_lora or self.loras.loaded:
            pipe.disable_lora()
        with self._fused_attention(pipe):
            if not spec.get("draft"):
                yield spec, {}
                return
            draft = self.family.draft(self.profile)
            saved = pipe.scheduler
            pipe.scheduler = draft.make_scheduler(saved)
            try:
                yield self.as_run(spec, "")[0], dict(draft.call)
            finally:
                pipe.scheduler = saved

    def _fused_attention(self, pipe):
        """Fused QKV projections for one call, where the speed-up is on and the weights never
        move (the fused layer shares their storage: see fused_attention)."""
        if "fused_qkv" not in self.speedups or self.memory not in ("gpu", "cpu") or self.weights != "native":
            return contextlib.nullcontext()
        from .fused_attention import fused_attention
        return fused_attention([m for m in (getattr(pipe, self.family.denoiser), getattr(pipe, "controlnet", None))
                                if m is not None])

    def tiny_autoencoder(self):
        """The profile's tiny autoencoder (TAESD), loaded once; None without one, or when it is
        missing (said once, in `preview_note`)."""
        if not self.family.taesd_latents or "preview_decoder" not in self.profile.models or self.preview_note:
            return None
        if self._preview_decoder is None:
            from diffusers import AutoencoderTiny
            try:  # small (about 10 MB): always whole on the device, whatever the memory mode
                self._preview_decoder = self.load(AutoencoderTiny, "preview_decoder").to(self.device)
            except models.ModelMissing as exc:
                self.preview_note = f"previews use the linear map and drafts the VAE: {exc}"
                print(self.preview_note, flush=True)
        return self._preview_decoder

    def preview_png(self, latents):
        """A preview of the first image of `latents` (PNG bytes): decoded by the profile's tiny
        autoencoder when it has one, else the family's linear map; None for a family with neither."""
        if latents is None:
            return None
        tiny = self.tiny_autoencoder()
        if tiny is not None:
            return decoded_preview(tiny, latents)
        if self.profile.family in PREVIEW_FACTORS:
            return latent_preview(latents, self.profile.family)
        return None

    def _draft_decode(self, pipe, latents):
        """A draft's pictures decoded by the tiny autoencoder (a second, not several, on a CPU),
        or None to decode with the VAE (no tiny autoencoder, or it decoded NaN)."""
        tiny = self.tiny_autoencoder()
        if tiny is None:
            return None
        with torch.no_grad():
            images = tiny.decode(latents.to(tiny.device, tiny.dtype), return_dict=False)[0]
        if _bad(images):
            return None
        array = pipe.image_processor.postprocess(images.float(), output_type="np")
        return [np.clip(np.rint(a * 255), 0, 255).astype(np.uint8) for a in array]

    def ip_adapter(self):
        """Load the identity adapters (plus-face, and FaceID when the profile has it) once."""
        self.adapters.load()

    def face_tools(self):
        """insightface's detector and recogniser from the profile, or None when it has none."""
        if "insightface" not in self.profile.models:
            return None
        if self._faces is None:
            from .faces import FaceTools
            self._faces = FaceTools(self.profile.models["insightface"], self.models_dir)
        return self._faces

    def pipeline(self, mode="txt2img", roles=()):
        """The pipeline for `mode` (txt2img, img2img, inpaint) with these ControlNet roles, built
        by the profile's family on the base's weights."""
        key = (mode, tuple(roles))
        if key == ("txt2img", ()):
            return self.base()
        if key not in self._variants:
            pipe = self.family.variant(self, mode, list(roles))
            pipe.set_progress_bar_config(disable=True)
            self._variants[key] = self._place(pipe)
        return self._variants[key]

    def controlnet_pipeline(self, roles):
        return self.pipeline("txt2img", roles)

    # -- running ---------------------------------------------------------------------------

    def controlnet_images(self, spec, pngs, references, on_step, cancel_event):
        """Images (list of HxWx3 uint8 arrays) from a spec's control maps (`pngs`: PNG bytes by
        control name) and reference pictures (PIL images, identity via IP-Adapter)."""
        controls = spec["controls"]
        # hand depth uses the depth ControlNet a second time, on the hands only
        names = self.steering(spec)[0]
        missing = [r for r in (self.family.control_role(self.profile.models, n) for n in names)
                   if r not in self.profile.models]
        if missing:
            raise GenerationError(f"profile {self.profile.name} has no {missing[0]}: drop that control or add "
                                  f"[models.{missing[0]}] to the profile")
        images = [decode_image_bytes(pngs[n], f"controls.{n}.image") for n in names]
        images = [im.resize((spec["width"], spec["height"])) if im.size != (spec["width"], spec["height"]) else im
                  for im in images]
        roles, control = self.family.control_call(self.profile.models, "txt2img", names, images, controls)

        def run():
            pipe = self.pipeline("txt2img", roles)
            return self._generate(pipe, spec, spec["seed"], spec["batch"], on_step, cancel_event,
                                  **self._prompts(spec), **self._identity_kwargs(pipe, spec, references),
                                  width=spec["width"], height=spec["height"], **control)
        return self._with_oom_retry(run)

    def steering(self, spec):
        """(the maps of `spec` this profile follows, in order; {map: why not} for the normal and
        line-art maps beside a depth map that it cannot follow: the depth map steers alone)."""
        able = capabilities(self.profile)
        skipped = {n: f"profile {self.profile.name} has no ControlNet for {n} maps (a ControlNet-Union profile "
                      "such as sdxl-union follows them): the depth map steered" for n in extra_maps(spec)
                   if CONTROL_CAPABILITY[n] not in able}
        return [n for n in CONTROL_KINDS if n in spec["controls"] and n not in skipped], skipped

    def txt2img(self, spec, on_step, cancel_event):
        """Images from the prompt alone (the base pipeline, no ControlNet)."""
        def run():
            pipe = self.pipeline("txt2img")
            return self._generate(pipe, spec, spec["seed"], spec["batch"], on_step, cancel_event,
                                  **self._prompts(spec), **self._identity_kwargs(pipe, spec, []),
                                  width=spec["width"], height=spec["height"])
        return self._with_oom_retry(run)

    def posed_character(self, spec, pngs, on_step, cancel_event):
        references = [decode_image_bytes(png, f"identity.images[{i}]") for i, png in enumerate(pngs.get("identity", []))]
        return self.draw(spec, pngs, references, on_step, cancel_event)

    def draw(self, spec, pngs, references, on_step, cancel_event):
        """New images from the spec's prompt, steered by its maps (`pngs`) and reference
        pictures, the way the profile's family does it."""
        return self.family.draw(self, spec, pngs, references, on_step, cancel_event)

    def img2img(self, spec, pixels, strength, references, seed, on_step, cancel_event, suffix=""):
        """`pixels` (HxWx3 uint8, sides multiples of 8) redrawn at `strength`."""
        def run():
            pipe = self.pipeline("img2img")
            return self._generate(pipe, spec, seed, 1, on_step, cancel_event, strength=strength,
                                  image=Image.fromarray(pixels), **self._prompts(spec, suffix),
                                  **self._identity_kwargs(pipe, spec, references))[0]
        return self._with_oom_retry(run)

    def inpaint(self, spec, pixels, mask, strength, references, seed, suffix, on_step, cancel_event, controls=(),
                identity=None):
        """`pixels` redrawn where `mask` (a PIL "L" image, 255 = redraw) is set, the family's way;
        `controls`: [(control name, PIL image the size of pixels)]; `identity`: identity arguments
        made by the caller (regional adapters) for families that use adapters."""
        return self.family.inpaint(self, spec, pixels, mask, strength, references, seed, suffix, on_step,
                                   cancel_event, controls, identity)

    def inpaint_with_controlnets(self, spec, pixels, mask, strength, references, seed, suffix, on_step, cancel_event,
                                 controls=(), identity=None):
        """Stable Diffusion's inpainting at `strength`, the controls steering it with the spec's
        strengths, identity through the adapters (`identity`, else from `references`)."""
        models = self.profile.models
        kept = [(n, im) for n, im in controls if self.family.control_role(models, n) in models]
        roles, extra = self.family.control_call(models, "inpaint", *zip(*kept), spec["controls"]) if kept else ([], {})

        def run():
            pipe = self.pipeline("inpaint", roles)
            h, w = pixels.shape[:2]
            kwargs = identity(pipe) if identity is not None else self._identity_kwargs(pipe, spec, references)
            return self._generate(pipe, spec, seed, 1, on_step, cancel_event, strength=strength,
                                  image=Image.fromarray(pixels), mask_image=mask, width=w, height=h,
                                  **self._prompts(spec, suffix), **kwargs, **extra)[0]
        return self._with_oom_retry(run)

    def inpaint_batch(self, spec, pictures, masks, strength, seeds, suffix, on_step, cancel_event, controls, names):
        """Regions of one size inpainted in one batch (Stable Diffusion): picture i with mask i,
        seed i and controls[i] (its maps, one per name in `names`), the same prompt; no identity."""
        models = self.profile.models
        kept = [i for i, n in enumerate(names) if self.family.control_role(models, n) in models]
        # one batch per map, as a tensor: diffusers takes no nested lists of pictures
        batches = [torch.stack([torch.from_numpy(np.asarray(maps[i], dtype=np.float32) / 255).permute(2, 0, 1)
                                for maps in controls]) for i in kept]
        roles, extra = self.family.control_call(models, "inpaint", [names[i] for i in kept], batches,
                                                spec["controls"]) if kept else ([], {})

        def run():
            pipe = self.pipeline("inpaint", roles)
            h, w = pictures[0].shape[:2]
            prompts = self._prompts(spec, suffix)
            return self._generate(pipe, spec, list(seeds), 1, on_step, cancel_event, strength=strength,
                                  image=[Image.fromarray(p) for p in pictures], mask_image=list(masks), width=w,
                                  height=h, prompt=[prompts["prompt"]] * len(pictures),
                                  negative_prompt=[prompts["negative_prompt"] or ""] * len(pictures),
                                  **self._identity_kwargs(pipe, spec, []), **extra)
        return self._with_oom_retry(run)

    @staticmethod
    def _prompts(spec, suffix=""):
        """The prompt with the style, and the trigger word of a character LoRA that acts in front
        (unless the user wrote it already)."""
        prompt = ", ".join(p for p in (spec["prompt"].strip(), spec.get("style", "").strip()) if p)
        prompt = prompt_with_trigger(prompt, spec.get("identity", {}).get("lora"))
        return {"prompt": prompt + suffix, "negative_prompt": spec["negative_prompt"] or None}

    def _identity_kwargs(self, pipe, spec, references):
        """IP-Adapter arguments; FaceID gets the job's embedding, or one found in the references."""
        embedding = None
        if references:
            self.adapters.load()
            if self.adapters.faceid:
                embedding = self.identity_embedding(spec, references)
        return self.adapters.kwargs(pipe, spec, references, embedding)

    def identity_embedding(self, spec, references):
        given = spec.get("identity", {}).get("embedding")
        if given is not None:
            return given
        try:
            tools = self.face_tools()
        except models.ModelMissing:
            return None
        if tools is None or not tools.has_recogniser:
            return None
        found = [tools.embed(np.asarray(r)) for r in references]
        found = [f for f in found if f is not None]
        if not found:
            return None
        mean = np.mean(found, axis=0)
        return mean / (np.linalg.norm(mean) or 1.0)

    def _generate(self, pipe, spec, seed, batch, on_step, cancel_event, strength=1.0, **kwargs):
        """Run `pipe` to latents with progress and cancel (a draft with its own settings), then
        decode them checked."""
        with self._sampling(pipe, spec) as (spec, extra):
            return self._run_pipeline(pipe, spec, seed, batch, on_step, cancel_event, strength, **extra, **kwargs)

    def _run_pipeline(self, pipe, spec, seed, batch, on_step, cancel_event, strength, **kwargs):
        steps = spec["steps"]
        if 0 < strength < 1:  # img2img runs int(steps * strength) steps: keep at least one
            steps = max(steps, math.ceil(1 / strength))
        total = max(1, int(steps * strength))  # img2img and inpaint run only the last `strength` of the steps
        started = time.perf_counter()

        def callback(p, i, t, step_kwargs):
            if cancel_event.is_set():
                p._interrupt = True
            on_step(i + 1, total, time.perf_counter() - started)
            preview = getattr(on_step, "preview", None)  # the job's progress may keep previews
            if preview is not None and "latents" in step_kwargs:
                preview(lambda: self.preview_png(self.family.preview_latents(p, step_kwargs["latents"], kwargs)))
            return step_kwargs

        if "strength" in inspect.signature(pipe.__call__).parameters and "image" in kwargs:
            kwargs["strength"] = strength  # always said: the inpaint pipeline's default (0.9999) leaves 1 step none
        # `seed`: the first of `batch` consecutive ones, or one per prompt of a batch of prompts
        generators = device.generators(seed, batch) if isinstance(seed, int) else [
            g for s in seed for g in device.generators(s, 1)]
        out = pipe(num_inference_steps=steps, num_images_per_prompt=batch, generator=generators,
                   output_type="latent", callback_on_step_end=callback, **self.family.guidance(spec, kwargs),
                   **kwargs)
        if cancel_event.is_set():
            raise Canceled()
        quick = self._draft_decode(pipe, out.images) if spec.get("draft") else None
        return quick if quick is not None else decode_checked(pipe, out.images, self.family.decoder(pipe, kwargs))

    def video(self, pipe, spec, on_step, cancel_event, **call):
        """A video family's clip: `pipe` run to latents with the engine's progress, cancel and
        previews, decoded by the family's decoder through the NaN guard. Returns its frames
        (H x W x 3 uint8 arrays)."""
        total, started = spec["steps"], time.perf_counter()

        def callback(p, i, t, step_kwargs):
            if cancel_event.is_set():
                p._interrupt = True
            on_step(i + 1, total, time.perf_counter() - started)
            preview = getattr(on_step, "preview", None)
            if preview is not None and "latents" in step_kwargs:
                preview(lambda: self.preview_png(self.family.preview_latents(p, step_kwargs["latents"], call)))
            return step_kwargs

        out = pipe(num_inference_steps=spec["steps"], generator=device.generators(spec["seed"], 1)[0],
                   output_type="latent", callback_on_step_end=callback, **self.family.guidance(spec, call), **call)
        if cancel_event.is_set():
            raise Canceled()
        videos = checked(pipe, out.frames, self.family.decoder(pipe, call))
        array = pipe.video_processor.postprocess_video(videos.float(), output_type="np")[0]  # (frames, h, w, 3)
        return [np.clip(np.rint(a * 255), 0, 255).astype(np.uint8) for a in array]

    def _with_oom_retry(self, run):
        try:
            return run()
        except Exception as exc:
            if not device.is_out_of_memory(exc):
                raise
        before = self.memory
        self._lighten()
        try:
            return run()
        except Exception as exc:
            if not device.is_out_of_memory(exc):
                raise
            free, total = device.free_memory(self.device)
            lightest = device.MODES[self.device][-1]
            fix = (f"start the backend with --memory {lightest}" if lightest != self.memory
                   else "close other programs using the GPU")
            raise GenerationError(
                f"out of {self.device.upper()} memory twice (first in memory mode {before}, then {self.memory} with "
                f"VAE tiling; {free / 2**30:.1f} of {total / 2**30:.1f} GB free): lower width/height or batch, or "
                f"{fix}") from None

    def _lighten(self):
        """After an out-of-memory error: free what we can and step down one memory mode."""
        device.empty_cache(self.device)
        self.memory = device.lighter(self.memory, self.device)
        self.vae_tiling = True
        pipes = list(self._variants.values()) + ([self._base] if self._base else [])
        self._variants.clear()
        remove_offload(pipes)
        for pipe in pipes:
            pipe.to("cpu")
        self._base = None
        self.adapters = Adapters(self)  # the base is loaded again: its identity adapters and LoRAs too
        self._draft_lora = self._relight_lora = False
        self.loras = CharacterLoras(self, self.loras.store)
        device.empty_cache(self.device)


def to_channels_last(module):
    """`module`'s 4-d weights (convolutions) in channels-last order, once (a module already
    placed, offload hooks and all, is left as it is); no-op for a model without convolutions."""
    weights = [p for p in module.parameters() if p.dim() == 4]
    if weights and not weights[0].is_contiguous(memory_format=torch.channels_last):
        module.to(memory_format=torch.channels_last)


# Regions compiled where a model names no `_repeated_blocks`: a UNet's or ControlNet's
# transformer blocks (most of their work), and a VAE decoder's up blocks (most of a decode: the
# last ones run at the picture's full size).
BLOCKS = ("BasicTransformerBlock", "UpDecoderBlock2D")


def compile_blocks(module):
    """Regional compilation: each of `module`'s repeated blocks (the diffusers model's
    `_repeated_blocks`, else BLOCKS) compiled once; torch.compile makes the code at the first
    call, in TORCHINDUCTOR_CACHE_DIR. A block torch cannot compile runs as it is
    (suppress_errors): a compiler problem on a user's machine costs speed, not the job."""
    import torch._dynamo
    torch._dynamo.config.suppress_errors = True
    kinds = set(getattr(module, "_repeated_blocks", None) or BLOCKS)
    for block in module.modules():
        if type(block).__name__ in kinds and block._compiled_call_impl is None:
            block.compile()


def _bad(images):
    """Why decoded images are unusable, or None: NaN/inf, or every pixel black."""
    if not torch.isfinite(images).all():
        return "NaN or infinite values"
    if (images <= -1.0).all():
        return "an all-black image"
    return None


def decode_checked(pipe, latents, decode):
    """Decode latents with `decode(latents, dtype)` (the family's: images in -1..1), checked (see
    `checked`), as H x W x 3 uint8 arrays."""
    images = checked(pipe, latents, decode)
    array = pipe.image_processor.postprocess(images.float(), output_type="np")
    return [np.clip(np.rint(a * 255), 0, 255).astype(np.uint8) for a in array]


def checked(pipe, latents, decode):
    """`decode(latents, dtype)` (pictures or clips in -1..1); on NaN or all-black output decoded
    again with the VAE in float32 (fp16 VAEs overflow); if that fails too, raise."""
    vae = pipe.vae
    with torch.no_grad():
        images = decode(latents, vae.dtype)
        problem = _bad(images)
        if problem and vae.dtype != torch.float32:
            original = vae.dtype
            vae.to(torch.float32)
            try:
                images = decode(latents, torch.float32)
            finally:
                vae.to(original)
            problem = _bad(images)
        if problem:
            raise GenerationError(
                f"the VAE decoded {problem} (also in float32): the latents are broken, usually by a VAE that "
                "does not fit the base model or by weights loaded in a dtype they were not made for; set "
                "[models.vae] to madebyollin/sdxl-vae-fp16-fix for SDXL, or gpu_dtype = \"float32\" in the profile")
    return images
