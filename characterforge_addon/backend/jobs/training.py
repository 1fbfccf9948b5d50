"""Training a character LoRA (`train_lora` jobs) on the profile's base model, with the recipe of
diffusers' SDXL LoRA script: PEFT adapters on the UNet's attention (and the text encoders' when
asked), frozen weights in the engine's dtype and trained ones in float32, gradient
checkpointing on GPUs, latents and text embeddings computed once, min-SNR loss weighting, AdamW (8-bit
where bitsandbytes is installed on CUDA), gradients clipped at 1.

It runs as a queued job: progress with the loss and time left, cancel between steps, a sample
picture every N steps (fixed prompt and seed; the job's preview), and a checkpoint every N steps.
Every step's pictures, noise and timesteps come from (seed, step) alone, so a backend stopped or
killed resumes from its last checkpoint and ends with the weights an uninterrupted run makes.
"""

import base64
import os
import shutil
import sys
import time

import numpy as np
import torch
from PIL import Image

from ...core.batch.fingerprint import digest
from ...core.errors import UserError
from ...core.spec.spec_fields import JobSpecError
from ..engine import device, metadata
from ..engine.pictures import decode_image_bytes
from ..engine.pipelines import Canceled, modules_of
from ..models import lora_files, model_identity

ADAPTER = "in_training"  # not "training": PEFT makes it an attribute, and nn.Module has that one
TARGETS = {"unet": ["to_k", "to_q", "to_v", "to_out.0"], "text": ["q_proj", "k_proj", "v_proj", "out_proj"]}
SNR_GAMMA = 5.0  # min-SNR weighting (Hang et al. 2023), as diffusers' scripts recommend
MAX_ENLARGE = 2.0  # a picture enlarged more than this to its bucket would teach blur
SAMPLE_STEPS = 20
EVAL_TIMESTEPS = [100, 300, 500, 700, 900]  # where the before/after loss is measured, on fixed noise
EVAL_SEED = 20260
CHECKPOINT = "checkpoint.pt"


class Stopped(Canceled):
    """The backend stops: the training was checkpointed and resumes at the next start."""


# ---------------------------------------------------------------------------------------------
# Settings and the checks made before a training is queued

def settings(spec, profile, family):
    """The spec's settings with the family's defaults for its zeros (what the LoRA records)."""
    defaults = family.train_defaults
    rank = spec["rank"] or defaults["rank"]
    return {"name": spec["name"], "trigger": spec["trigger"], "profile": profile.name, "family": profile.family,
            "base_model": profile.models["base"].location, "rank": rank, "alpha": spec["alpha"] or float(rank),
            "learning_rate": spec["learning_rate"] or defaults["learning_rate"],
            "steps": spec["steps"] or defaults["steps"], "batch": spec["batch"],
            "resolution": spec["resolution"] or profile.native_size, "buckets": spec["buckets"],
            "train_text_encoder": spec["train_text_encoder"], "seed": spec["seed"],
            "pictures": sum(1 + bool(p["mirror_caption"]) for p in spec["images"])}


def buckets(resolution, on):
    """(height, width) sizes near resolution² pixels, multiples of 64 (only the square when off)."""
    if not on:
        return [(resolution, resolution)]
    from diffusers.training_utils import generate_aspect_ratio_buckets
    return generate_aspect_ratio_buckets(resolution, divisibility=64)


def bucket_of(size, options):
    from diffusers.training_utils import find_nearest_bucket
    return options[find_nearest_bucket(size[1], size[0], options)]


def checkpoint_bytes(params):
    """Disk a training takes: checkpoints (float32 weights and Adam's two moments) written beside
    the last one, the LoRA in float16 twice (its result and the backend's copy)."""
    return params * (4 + 8) * 2 + params * 2 * 2


def check(job, profile, family, weights, work_root, sizes):
    """Refuse before queueing what would fail later: pictures too small for the training size
    (`sizes`: (width, height) of each picture), weights stored in float8, too little disk."""
    s = settings(job, profile, family)
    if weights == "fp8":
        raise JobSpecError("profile", "training needs the UNet in its compute dtype; this backend stores it in float8",
                           "start the backend with --weights native to train")
    options = buckets(s["resolution"], s["buckets"])
    for i, (w, h) in enumerate(sizes):
        bh, bw = _fit(options, (w, h), s["buckets"])
        enlarge = max(bw / w, bh / h) if s["buckets"] else max(bw, bh) / max(w, h)
        if enlarge > MAX_ENLARGE:
            fits = max(64, int(s["resolution"] * MAX_ENLARGE / enlarge) // 64 * 64)
            raise JobSpecError(f"images[{i}].image", f"is {w}x{h}: training at {s['resolution']} enlarges it "
                                                     f"{enlarge:.1f}x to {bw}x{bh}, which teaches blur",
                               f"train at resolution {fits} or less, or make the sheet larger (Upscale) so every "
                               "view and face is bigger")
    params = family.lora_params_per_rank(s["train_text_encoder"]) * s["rank"]
    need = checkpoint_bytes(params)
    os.makedirs(work_root, exist_ok=True)
    free = shutil.disk_usage(work_root).free
    if free < need * 1.5:
        raise JobSpecError("rank", f"training this LoRA needs about {need / 2**20:.0f} MB of disk for its checkpoints "
                                   f"and file; {free / 2**20:.0f} MB are free in {work_root}",
                           "free disk space there, or train a lower rank")


def _fit(options, size, with_buckets):
    return bucket_of(size, options) if with_buckets else options[0]


# ---------------------------------------------------------------------------------------------
# The pictures: fitted to their buckets, mirrored where asked, encoded once

def _fitted(picture, bucket, crop):
    """`picture` (PIL RGB) scaled to cover `bucket` (h, w) and cropped to its centre (`crop`), or
    scaled to fit inside it and padded with its border colour (so no head or foot is cut off).
    Returns (pixels in -1..1 as CHW float32, crop's top-left)."""
    bh, bw = bucket
    w, h = picture.size
    scale = max(bw / w, bh / h) if crop else min(bw / w, bh / h)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    scaled = np.asarray(picture.resize((sw, sh), Image.LANCZOS), dtype=np.float32)
    if crop:
        top, left = (sh - bh) // 2, (sw - bw) // 2
        out = scaled[top:top + bh, left:left + bw]
    else:
        array = np.asarray(picture, dtype=np.float32)
        border = np.concatenate([array[0], array[-1], array[:, 0], array[:, -1]])
        out = np.empty((bh, bw, 3), np.float32)
        out[:] = np.median(border, axis=0)
        top, left = (bh - sh) // 2, (bw - sw) // 2
        out[top:top + sh, left:left + sw] = scaled
        top = left = 0
    return torch.from_numpy(out / 127.5 - 1.0).permute(2, 0, 1).contiguous(), (top, left)


def _items(spec, s):
    """[(PIL picture, mirrored, caption)] for every picture and mirrored copy."""
    out = []
    for i, entry in enumerate(spec["images"]):
        picture = decode_image_bytes(base64.b64decode(entry["image"]), f"images[{i}].image").convert("RGB")
        out.append((picture, False, entry["caption"]))
        if entry["mirror_caption"]:
            out.append((picture.transpose(Image.FLIP_LEFT_RIGHT), True, entry["mirror_caption"]))
    return out


def _schedule(buckets_of_items, batch, steps, seed):
    """The pictures of every step: epochs in a seeded order, each batch from one bucket."""
    out, epoch = [], 0
    while len(out) < steps:
        rng = np.random.default_rng([seed, epoch])
        groups = {}
        for i in rng.permutation(len(buckets_of_items)):
            groups.setdefault(buckets_of_items[i], []).append(int(i))
        batches = [g[k:k + batch] for g in groups.values() for k in range(0, len(g), batch)]
        out += [batches[j] for j in rng.permutation(len(batches))]
        epoch += 1
    return out[:steps]


class TextEncoding:
    """Captions to the UNet's text conditioning, as diffusers' training scripts encode them: SDXL's
    two encoders' penultimate hidden states side by side and the second's pooled output; SD 1.5's
    last hidden state."""

    def __init__(self, pipe):
        self.pairs = [(t, e) for t, e in ((pipe.tokenizer, pipe.text_encoder),
                                          (getattr(pipe, "tokenizer_2", None), getattr(pipe, "text_encoder_2", None)))
                      if e is not None]
        self.xl = len(self.pairs) == 2

    def __call__(self, captions, where):
        states, pooled = [], None
        for tokenizer, encoder in self.pairs:
            ids = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                            return_tensors="pt").input_ids.to(where)
            out = encoder(ids, output_hidden_states=True)
            if self.xl:
                pooled = out[0]
                states.append(out.hidden_states[-2])
            else:
                states.append(out[0])
        return torch.cat(states, dim=-1), pooled

    def encoders(self):
        return [e for _, e in self.pairs]


# ---------------------------------------------------------------------------------------------
# The job

def run(engine, spec, job_id, progress, cancel, stopping, work_root, loras, emit):
    """Train, then keep the LoRA in the LoRA store and hand it, like the samples before it, to
    `emit(result name, bytes)`. Returns the LoRA's record. A canceled or failed training leaves
    nothing but its results so far; a stopped one keeps its checkpoint for the next start."""
    s = settings(spec, engine.profile, engine.family)
    work = os.path.join(work_root, job_id)
    os.makedirs(work, exist_ok=True)
    progress.stage("loading models")
    trainer, finished = None, False
    try:
        trainer = _Trainer(engine, engine.base(), spec, s, progress, cancel, stopping, work, emit)
        record = trainer.train()
        tensors = lora_files.kohya_state_dict(trainer.layers(), s["alpha"])
        path = os.path.join(work, f"{s['name']}.safetensors")
        sha = lora_files.save(path, tensors, lora_files.metadata(record, [c for _, _, c in trainer.items]))
        kept = loras.path(sha)
        shutil.copyfile(path, kept + ".tmp")
        os.replace(kept + ".tmp", kept)
        with open(path, "rb") as f:
            emit(f"{s['name']}.safetensors", f.read())
        finished = True
        return dict(record, sha256=sha)
    except Stopped:
        raise
    except BaseException:
        finished = True
        raise
    finally:
        if trainer is not None:
            trainer.close()
        if finished:
            shutil.rmtree(work, ignore_errors=True)


class _Trainer:
    def __init__(self, engine, pipe, spec, s, progress, cancel, stopping, work, emit):
        self.engine, self.pipe, self.spec, self.s = engine, pipe, spec, s
        # what makes this training's weights: a checkpoint made otherwise is never resumed
        self.made_by = digest({"spec": spec, "settings": s, "weights": str(engine.weights),
                               "models": model_identity.models_of(engine.profile, engine.models_dir)})
        self.progress, self.cancel, self.stopping, self.work, self.emit = progress, cancel, stopping, work, emit
        self.unet = pipe.unet
        self.text = TextEncoding(pipe)
        self.items = _items(spec, s)
        self.where = torch.device(engine.device)
        self.samples = []
        self.losses = []  # [step, mean loss of the steps since the last entry]
        self.loss_before = None
        self.resumed_at = []  # the steps a stopped or killed training went on from
        self._adapted = []

    # -- setting up ----------------------------------------------------------------------

    def _cache(self):
        """Latents (VAE mode, scaled) and, unless the text encoders train, text conditioning of
        every picture, computed once with each model on the device only while it works."""
        s, vae = self.s, self.pipe.vae
        options = buckets(s["resolution"], s["buckets"])
        self.buckets = [_fit(options, p.size, s["buckets"]) for p, _, _ in self.items]
        self.latents, self.time_ids = [], []
        self.progress.stage("encoding pictures")
        vae.to(self.where)
        with torch.no_grad():
            for (picture, _, _), bucket in zip(self.items, self.buckets):
                pixels, (top, left) = _fitted(picture, bucket, s["buckets"])
                latent = vae.encode(pixels[None].to(self.where, vae.dtype)).latent_dist.mode()
                self.latents.append((latent * vae.config.scaling_factor).float().cpu()[0])
                self.time_ids.append([picture.size[1], picture.size[0], top, left, *bucket])
        self.engine.rest([vae])
        self.embeds = None
        if not s["train_text_encoder"]:
            self.progress.stage("encoding captions")
            for e in self.text.encoders():
                e.to(self.where)
            with torch.no_grad():
                self.embeds = [tuple(t.cpu() if t is not None else None for t in self.text([c], self.where))
                               for _, _, c in self.items]
            self.engine.rest(self.text.encoders())

    def _adapters(self):
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig
        s = self.s
        modules = [self.unet] + (self.text.encoders() if s["train_text_encoder"] else [])
        for module in modules:
            module.requires_grad_(False)
            targets = TARGETS["unet" if module is self.unet else "text"]
            config = LoraConfig(r=s["rank"], lora_alpha=s["alpha"], init_lora_weights="gaussian", target_modules=targets)
            with torch.random.fork_rng(devices=[]):  # the first weights from the seed too
                torch.manual_seed(s["seed"])
                module.add_adapter(config, adapter_name=ADAPTER)
            self._adapted.append(module)
            for name, param in module.named_parameters():
                param.requires_grad = f".{ADAPTER}." in name
            module.to(self.where)
            module.train()
            if not device.gradient_checkpointing(self.engine.device):
                continue
            if module is self.unet:
                module.enable_gradient_checkpointing()
            else:
                module.gradient_checkpointing_enable()
        cast_training_params(modules, dtype=torch.float32)
        self.modules = modules
        self.params = [p for m in modules for p in m.parameters() if p.requires_grad]

    def layers(self):
        """{prefix: the trained adapter's PEFT state dict} per trained module."""
        from peft.utils import get_peft_model_state_dict
        names = {id(self.unet): "unet", id(self.pipe.text_encoder): "text_encoder",
                 id(getattr(self.pipe, "text_encoder_2", None)): "text_encoder_2"}
        return {names[id(m)]: get_peft_model_state_dict(m, adapter_name=ADAPTER) for m in self.modules}

    # -- checkpoints ---------------------------------------------------------------------

    def _save(self, step, optimizer, scaler):
        state = {"step": step, "weights": [p.detach().cpu().clone() for p in self.params],
                 "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                 "losses": self.losses, "samples": self.samples, "settings": self.s, "loss_before": self.loss_before,
                 "resumed_at": self.resumed_at, "made_by": self.made_by}
        tmp = os.path.join(self.work, CHECKPOINT + ".tmp")
        try:
            torch.save(state, tmp)
            os.replace(tmp, os.path.join(self.work, CHECKPOINT))
        except OSError as exc:
            raise UserError(f"could not write the training checkpoint in {self.work} ({exc.strerror or exc}): free "
                            "disk space there and train again") from None

    def _resume(self, optimizer, scaler):
        """The step to go on from: the last checkpoint's, or 0."""
        path = os.path.join(self.work, CHECKPOINT)
        if not os.path.isfile(path):
            return 0
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("made_by") != self.made_by:  # another spec, pictures or models (or from before fingerprints)
            print(f"training: the checkpoint in {self.work} (step {state.get('step')}) was made by another training "
                  "spec or other models: starting from step 0", file=sys.stderr, flush=True)
            return 0
        with torch.no_grad():
            for param, saved in zip(self.params, state["weights"]):
                param.copy_(saved)
        optimizer.load_state_dict(state["optimizer"])
        if scaler and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        self.losses, self.samples, self.loss_before = state["losses"], state["samples"], state["loss_before"]
        self.resumed_at = state["resumed_at"] + [state["step"]]
        return state["step"]

    # -- the loop ------------------------------------------------------------------------

    def train(self):
        s = self.s
        self.engine.hold_for_training([self.unet])
        self._cache()
        self._adapters()
        optimizer_class = device.adam_8bit(self.engine.device) or torch.optim.AdamW
        optimizer = optimizer_class(self.params, lr=s["learning_rate"], betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
        scaler = device.grad_scaler(self.engine.device, self.unet.dtype)
        from diffusers import DDPMScheduler
        noise_scheduler = DDPMScheduler.from_config(self.pipe.scheduler.config)
        schedule = _schedule(self.buckets, s["batch"], s["steps"], s["seed"])
        start = self._resume(optimizer, scaler)
        if start == 0:
            self.progress.stage("measuring the loss before training")
            self.loss_before = self._evaluate(noise_scheduler)
        self.progress.stage("training")
        every = self.spec["checkpoint_every"]
        began, window = time.perf_counter(), []
        for step in range(start, s["steps"]):
            if self.cancel.is_set():
                if self.stopping():
                    self._save(step, optimizer, scaler)
                    raise Stopped()
                raise Canceled()
            window.append(self._step(step, schedule[step], noise_scheduler, optimizer, scaler))
            done = step + 1
            elapsed = time.perf_counter() - began
            self.progress.step(done, s["steps"], elapsed * done / (done - start),
                               f"loss {np.mean(window[-20:]):.4f}")
            if done % max(1, min(every, 50)) == 0 or done == s["steps"]:
                self.losses.append([done, round(float(np.mean(window)), 6)])
                window = []
            if self.spec["sample_every"] and done % self.spec["sample_every"] == 0 and done < s["steps"]:
                self._sample(done)
            if done % every == 0 and done < s["steps"]:
                self._save(done, optimizer, scaler)
        seconds = time.perf_counter() - began
        self.progress.stage("measuring the loss after training")
        for module in self.modules:
            module.eval()
        loss_after = self._evaluate(noise_scheduler)
        self._sample(s["steps"])
        return dict(s, losses=self.losses, loss_before=self.loss_before, loss_after=loss_after,
                    resumed_at=self.resumed_at, samples=self.samples, optimizer=optimizer_class.__name__,
                    mixed_precision=str(self.unet.dtype), device=self.engine.device,
                    seconds_per_100_steps=round(100 * seconds / max(1, s["steps"] - start), 2))

    def _step(self, step, batch, noise_scheduler, optimizer, scaler):
        generator = torch.Generator("cpu").manual_seed(self.s["seed"] * 1_000_003 + step)
        latents = torch.stack([self.latents[i] for i in batch])
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(batch),), generator=generator)
        loss = self._loss(batch, latents, noise, timesteps, noise_scheduler)
        if not torch.isfinite(loss):
            raise UserError(f"the training loss became {loss.item()} at step {step + 1}: lower the learning rate "
                            f"({self.s['learning_rate']}) and train again")
        optimizer.zero_grad(set_to_none=True)
        if scaler:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        return float(loss.detach())

    def _evaluate(self, noise_scheduler):
        """The loss on fixed noise at fixed timesteps over (up to 8 of) the pictures: unlike a
        step's loss, which swings with its random timestep, it shows what the LoRA learned."""
        generator = torch.Generator("cpu").manual_seed(EVAL_SEED)
        total, count = 0.0, 0
        with torch.no_grad():
            for i in range(min(8, len(self.items))):
                latents = self.latents[i][None].expand(len(EVAL_TIMESTEPS), *self.latents[i].shape)
                noise = torch.randn(latents.shape, generator=generator)
                timesteps = torch.tensor(EVAL_TIMESTEPS)
                total += float(self._loss([i] * len(EVAL_TIMESTEPS), latents, noise, timesteps, noise_scheduler))
                count += 1
        return round(total / count, 6)

    def _loss(self, batch, latents, noise, timesteps, noise_scheduler):
        """The min-SNR weighted denoising loss of pictures `batch` (indices) at `timesteps`."""
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        target = noise if noise_scheduler.config.prediction_type == "epsilon" else \
            noise_scheduler.get_velocity(latents, noise, timesteps)
        captions = [self.items[i][2] for i in batch]
        if self.embeds is None:
            states, pooled = self.text(captions, self.where)
        else:
            states = torch.cat([self.embeds[i][0] for i in batch]).to(self.where)
            pooled = torch.cat([self.embeds[i][1] for i in batch]).to(self.where) if self.text.xl else None
        dtype = self.unet.dtype
        extra = {}
        if self.text.xl:
            time_ids = torch.tensor([self.time_ids[i] for i in batch], dtype=dtype, device=self.where)
            extra["added_cond_kwargs"] = {"text_embeds": pooled.to(dtype), "time_ids": time_ids}
        prediction = self.unet(noisy.to(self.where, dtype), timesteps.to(self.where),
                               encoder_hidden_states=states.to(dtype), return_dict=False, **extra)[0]
        loss = torch.nn.functional.mse_loss(prediction.float(), target.to(self.where), reduction="none")
        loss = loss.mean(dim=list(range(1, loss.ndim))) * self._snr_weights(noise_scheduler, timesteps).to(self.where)
        return loss.mean()

    @staticmethod
    def _snr_weights(noise_scheduler, timesteps):
        from diffusers.training_utils import compute_snr
        snr = compute_snr(noise_scheduler, timesteps)
        weights = torch.clamp(snr, max=SNR_GAMMA) / snr
        return weights if noise_scheduler.config.prediction_type == "epsilon" else weights * snr / (snr + 1)

    # -- samples -------------------------------------------------------------------------

    def _sample(self, step):
        """A picture with the LoRA as it is now (fixed prompt and seed): the job's preview and a
        result `sample_<step>`; every model placed as the memory mode wants while it draws."""
        s = self.s
        self.progress.stage(f"sample at step {step}")
        prompt = self.spec["sample_prompt"].strip() or f"{s['trigger']}, full body, front view, standing, simple background"
        side = s["resolution"]
        job = {"prompt": prompt, "negative_prompt": "blurry, lowres", "seed": s["seed"], "steps": SAMPLE_STEPS,
               "guidance": 6.0, "batch": 1, "width": side, "height": side, "draft": False, "controls": {},
               "name": f"sample_{step:05d}"}
        for module in self.modules:
            module.eval()
        self.engine.hold_for_training(list(modules_of(self.pipe).values()))
        try:
            with self.engine.trained_adapter(ADAPTER):
                pixels = self.engine.txt2img(job, lambda *a: None, self.cancel)[0]
        finally:
            self.engine.hold_for_training(self.modules)
            for module in self.modules:
                module.train()
        name = f"sample_{step:05d}"
        png = metadata.png_with_metadata(pixels, job, s["seed"], self.engine.profile, "Euler",
                                         {"layer": "lora_sample", "lora": {"name": s["name"], "step": step,
                                                                           "trigger": s["trigger"]}})
        self.emit(name, png)
        self.progress.show(png)
        self.samples.append(name)
        self.progress.stage("training")

    def close(self):
        """The trained adapter out of the shared modules and every model placed for pictures again."""
        for module in self._adapted:
            if ADAPTER in (module.peft_config or {}):
                module.delete_adapters(ADAPTER) if hasattr(module, "delete_adapters") else module.delete_adapter(ADAPTER)
            module.requires_grad_(False)
            module.eval()
        if self.unet.is_gradient_checkpointing:
            self.unet.disable_gradient_checkpointing()
        for encoder in self.text.encoders():
            if getattr(encoder, "is_activation_checkpointing", False):
                encoder.gradient_checkpointing_disable()
        self.engine.place_again()

