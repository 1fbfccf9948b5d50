"""Character LoRA files. Written in the key layout kohya_ss, A1111 and ComfyUI load (diffusers'
`load_lora_weights` reads it too) with the metadata they show (kohya's `ss_*`, the SAI model
spec's `modelspec.*`) and our own record; kept by the backend under their SHA-256 so that a job
names a LoRA without sending it again."""

import json
import os
import tempfile
import time
from collections import Counter

from ...core.characters.character_lora import lora_record, RECORD_KEY, sha256_of
from ...core.errors import UserError
from ...core.spec.spec_fields import JobSpecError

# What kohya and the SAI model spec call each family's base model.
BASE_VERSION = {"sdxl": "sdxl_base_v1-0", "sd15": "sd_v1"}
ARCHITECTURE = {"sdxl": "stable-diffusion-xl-v1-base/lora", "sd15": "stable-diffusion-v1/lora"}
MAX_UPLOAD_BYTES = 2 * 2**30  # rank 128 on SDXL with both text encoders is about 0.9 GB in fp16


def kohya_state_dict(layers, alpha):
    """{prefix ("unet", "text_encoder", "text_encoder_2"): PEFT state dict} -> one dict in kohya's
    layout (lora_unet_*, lora_te1_*, lora_te2_*; lora_down / lora_up / alpha), weights in fp16."""
    import torch
    from diffusers.utils import convert_state_dict_to_kohya
    joined = {f"{prefix}.{key}": value for prefix, state in layers.items() for key, value in state.items()}
    out = {}
    for key, value in convert_state_dict_to_kohya(joined).items():
        # diffusers writes alpha = rank; ours may differ (alpha / rank scales the LoRA)
        out[key] = torch.tensor(float(alpha)) if key.endswith(".alpha") else value.detach().to("cpu", torch.float16)
    return {k: v.contiguous() for k, v in out.items()}


def tag_frequency(captions, trigger):
    """kohya's ss_tag_frequency: {"1_<trigger>": {tag: count}} over the comma-separated captions."""
    return {f"1_{trigger}": dict(Counter(t.strip() for c in captions for t in c.split(",") if t.strip()))}


def metadata(record, captions):
    """The file's metadata (all text, as safetensors keeps it) from the training `record`."""
    family, res = record["family"], record["resolution"]
    now = time.time()
    return {
        "ss_network_module": "networks.lora", "ss_network_dim": str(record["rank"]),
        "ss_network_alpha": str(record["alpha"]), "ss_base_model_version": BASE_VERSION[family],
        "ss_sd_model_name": record["base_model"], "ss_output_name": record["name"],
        "ss_max_train_steps": str(record["steps"]), "ss_steps": str(record["steps"]),
        "ss_learning_rate": str(record["learning_rate"]), "ss_resolution": f"({res}, {res})",
        "ss_seed": str(record["seed"]), "ss_num_train_images": str(record["pictures"]),
        "ss_batch_size_per_device": str(record["batch"]),
        "ss_text_encoder_lr": str(record["learning_rate"] if record["train_text_encoder"] else 0),
        "ss_network_train_unet_only": str(not record["train_text_encoder"]),
        "ss_training_finished_at": str(now),
        "ss_tag_frequency": json.dumps(tag_frequency(captions, record["trigger"])),
        "modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": ARCHITECTURE[family],
        "modelspec.implementation": "diffusers", "modelspec.title": record["name"],
        "modelspec.trigger_phrase": record["trigger"], "modelspec.resolution": f"{res}x{res}",
        "modelspec.date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)),
        RECORD_KEY: json.dumps(record),
    }


def save(path, tensors, meta):
    """Write the LoRA atomically; returns its SHA-256."""
    from safetensors.torch import save_file
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=os.path.dirname(path))
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        digest = sha256_of(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return digest


class LoraStore:
    """<data>/loras/<sha256>.safetensors: the LoRAs this backend trained or was sent."""

    def __init__(self, data_dir):
        self.folder = os.path.join(data_dir, "loras")
        os.makedirs(self.folder, exist_ok=True)

    def path(self, sha256):
        return os.path.join(self.folder, f"{sha256}.safetensors")

    def has(self, sha256):
        return os.path.isfile(self.path(sha256))

    def keep(self, tmp_path, sha256=None):
        """Move a finished file in (checked and hashed); returns its SHA-256. UserError when it
        is no LoRA or not the file `sha256` names."""
        actual = sha256_of(tmp_path)
        if sha256 is not None and actual != sha256:
            raise UserError(f"its SHA-256 is {actual}, not {sha256}: the upload was damaged or is another file")
        lora_record(tmp_path)
        os.replace(tmp_path, self.path(actual))
        return actual

    def check(self, lora, profile, field):
        """Refuse (JobSpecError on `field`) a LoRA this backend lacks or one trained for another
        family than `profile`'s."""
        if not self.has(lora["sha256"]):
            raise JobSpecError(f"{field}.sha256", f"this backend has no LoRA {lora['name']!r} ({lora['sha256'][:12]}…)",
                               "send the file first (PUT /loras/SHA256); the add-on does this itself")
        record, meta = lora_record(self.path(lora["sha256"]))
        base = record.get("family") or {v: k for k, v in BASE_VERSION.items()}.get(meta.get("ss_base_model_version"))
        if base and base != profile.family:
            raise JobSpecError(f"{field}.name", f"LoRA {lora['name']!r} was trained on a {base} model; profile "
                                                f"{profile.name} is {profile.family}",
                               f"use a {base} profile, or train the character's LoRA on this one")
