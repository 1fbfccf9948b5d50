"""Find, check and load the weights a profile names; `doctor` reports on every role.

Weights load from safetensors only: a pickle file (.bin, .ckpt, .pt, .pth) can run code when
loaded, so it is refused with the `convert` command that turns it into safetensors once.
"""

import os
import shlex
import sys

from ...core.errors import UserError
from .. import tiny
from . import profiles

PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth")


class ModelMissing(UserError):
    def __init__(self, role, message, looked_in, fix):
        self.role, self.looked_in, self.fix = role, looked_in, fix
        super().__init__(f"{role}: {message} (looked in {looked_in}); fix: {fix}")


def hf_cache_dir():
    from huggingface_hub import constants
    return constants.HF_HUB_CACHE


def convert_command(path):
    return f"{shlex.quote(sys.executable)} -m {__package__} convert {shlex.quote(path)}"


def _snapshot(repo):
    """The newest local snapshot folder of a cached repo, or None."""
    folder = os.path.join(hf_cache_dir(), "models--" + repo.replace("/", "--"), "snapshots")
    if not os.path.isdir(folder):
        return None
    snaps = sorted((os.path.join(folder, s) for s in os.listdir(folder)), key=os.path.getmtime)
    return snaps[-1] if snaps else None


def _weights_in(folder):
    found = []
    for root, _, files in os.walk(folder):
        found += [os.path.join(root, f) for f in files if f.endswith((".safetensors",) + PICKLE_SUFFIXES)]
    return found


def download_fix(source):
    """How to get a hub role's files: the panel's button, or the exact `hf download` line."""
    return (f"Backend > Download Models, or: {source.files.hf_command()}  "
            "(or start the backend with --allow-download)")


def check(source, models_dir):
    """Where a role's model is, or ModelMissing saying what, where it looked and the fix."""
    role = source.role
    if source.kind == "tiny":
        return os.path.join(tiny.folder_in(models_dir), source.location)  # made on demand, never missing
    if source.kind == "file":
        path = source.location
        if path.endswith(PICKLE_SUFFIXES):
            raise ModelMissing(role, f"{os.path.basename(path)} is a pickle file, which can run code when loaded",
                               path, f"convert it once: {convert_command(path)}, then point the profile at the "
                               ".safetensors file")
        if not path.endswith(".safetensors"):
            raise ModelMissing(role, f"{os.path.basename(path)} is not a .safetensors file", path,
                               "use a .safetensors checkpoint")
        if not os.path.isfile(path):
            raise ModelMissing(role, f"file {os.path.basename(path)} not found", os.path.dirname(path) or ".",
                               "download it there or correct the path in the profile")
        return path
    if source.kind == "folder":
        folder = os.path.normpath(os.path.join(source.location, source.subfolder))
        looked = folder
        if role == "insightface":
            if not os.path.isdir(folder) or not any(f.endswith(".onnx") for f in os.listdir(folder)):
                raise ModelMissing(role, "no insightface .onnx models", folder,
                                   "unpack insightface's buffalo_l pack there (non-commercial licence)")
            return folder
    else:
        snap = _snapshot(source.location)
        looked = os.path.join(hf_cache_dir(), "models--" + source.location.replace("/", "--"))
        if snap is None:
            raise ModelMissing(role, f"{source.location} is not in the Hugging Face cache", looked, download_fix(source))
        folder = os.path.normpath(os.path.join(snap, source.subfolder))
    if source.weight:
        path = os.path.join(folder, source.weight)
        converted = os.path.splitext(path)[0] + ".safetensors"
        if path.endswith(PICKLE_SUFFIXES) and os.path.isfile(converted):
            return converted  # converted once when it was downloaded
        if not os.path.isfile(path):
            fix = download_fix(source) if source.kind == "repo" else "download it there or correct the profile"
            raise ModelMissing(role, f"{source.weight} not found", folder, fix)
        if path.endswith(PICKLE_SUFFIXES):
            raise ModelMissing(role, f"{source.weight} is a pickle file, which can run code when loaded", folder,
                               f"convert it once: {convert_command(path)}, then set weight = "
                               f"\"{os.path.splitext(source.weight)[0]}.safetensors\" in the profile")
        return path
    index = "model_index.json" if role == "base" else "config.json"
    if not os.path.isfile(os.path.join(folder, index)):
        raise ModelMissing(role, f"{index} not found: not a diffusers folder", folder,
                           "point the profile at a diffusers folder (with model_index.json or config.json)")
    weights = _weights_in(folder)
    if not weights:
        raise ModelMissing(role, "no weight files", folder, "download the model's .safetensors files")
    if not any(w.endswith(".safetensors") for w in weights):
        pickles = [w for w in weights if w.endswith(PICKLE_SUFFIXES)]
        raise ModelMissing(role, f"only pickle weights ({os.path.basename(pickles[0])})", folder,
                           f"convert each once: {convert_command(pickles[0])}")
    return folder


def device_report(gpu_dtype="float16", probe=None):
    """The device the backend would run on, its torch build, and what is wrong with them."""
    from ..engine import device
    probe = probe or device.probe()
    report = device.choose(probe, gpu_dtype).report()
    report.update(torch=probe.torch_version, gpus=[g.name for g in probe.gpus], findings=device.findings(probe))
    return report


def doctor(profile, models_dir):
    """Every role of `profile`: present or missing, where, the fix; what it can do; the device."""
    from .. import families
    from ..engine import device
    roles = []
    for role, source in profile.models.items():
        entry = {"role": role, "source": source.kind, "name": source.location, "size": source.size,
                 "licence": source.licence, "needed_for": profiles.ROLES[role], "core": role in profiles.CORE_ROLES}
        try:
            entry.update(status="present", path=check(source, models_dir))
        except ModelMissing as exc:
            entry.update(status="missing", message=str(exc), looked_in=exc.looked_in, fix=exc.fix)
        entry["safetensors"] = entry["status"] == "present"
        roles.append(entry)
    hardware = device_report(profile.gpu_dtype)
    ready = (all(r["status"] == "present" for r in roles if r["core"])
             and not any(f["level"] == "MISSING" for f in hardware["findings"]))
    family = families.family_of(profile)
    video = getattr(family, "decodes_video", False)
    cards = {weights: (device.video_card_modes(families.memory_need(family, weights), profile.gpu_dtype,
                                               family.cards_gb) if video else
                       device.card_modes(families.memory_need(family, weights, profile.models), profile.gpu_dtype))
             for weights in device.WEIGHTS}
    report = {"profile": profile.name, "description": profile.description, "produces_noise": profile.produces_noise,
              "family": profile.family, "capabilities": sorted(families.capabilities(profile)), "ready": ready,
              "roles": roles, "device": hardware, "cards": cards}
    if video:  # what the add-on plans a shot's segments by
        report["animation"] = {"window": family.window, "carries": list(family.carries),
                               "native_size": profile.native_size, "needs_picture": family.needs_picture}
    return report


MODE_WORDS = {"gpu": "all on the GPU", "model_offload": "models offloaded one at a time",
              "group_offload": "layers streamed to the GPU", "sequential_offload": "layer by layer (slow)",
              "gpu_text_encoder_cpu": "all on the GPU but the text encoder (it encodes on the CPU, once a shot)"}


def format_doctor(report):
    lines = [f"profile {report['profile']}: {report['description']}"]
    if report["produces_noise"]:
        lines.append("  NOTE: this profile has tiny random weights and produces noise")
    d = report["device"]
    lines.append(f"  device: {d['device']} {d['name']}, torch {d['torch']} ({d['torch_build']}), {d['dtype']}, "
                 f"{d['free_gb']} of {d['total_gb']} GB free")
    lines.append(f"  can do: {', '.join(report['capabilities'])}")
    if report.get("cards"):
        fp8 = report["cards"]["fp8"]
        lines.append(f"  family {report['family']}: " + "; ".join(
            f"{card} card: {MODE_WORDS[mode]}" + (f" (with --weights fp8: {MODE_WORDS[fp8[card]]})"
                                                   if fp8[card] != mode else "")
            for card, mode in report["cards"]["native"].items()))
    for finding in d["findings"]:
        lines.append(f"  {finding['level']:<8} {finding['message']}" + (f"; fix: {finding['fix']}" if finding["fix"] else ""))
    for r in report["roles"]:
        extra = f" [{r['size']}, {r['licence']}]" if r["size"] else ""
        if r["status"] == "present":
            lines.append(f"  ok       {r['role']}: {r['name']}{extra}")
        elif r["core"]:
            lines.append(f"  MISSING  {r['message']}")
        else:
            lines.append(f"  missing  (optional, for {r['needed_for']}) {r['message']}")
    lines.append("ready" if report["ready"] else "not ready: fix the MISSING lines above")
    return "\n".join(lines)


def resolve_for_loading(source, models_dir, allow_download):
    """(what to pass to from_pretrained / from_single_file, kwargs) for one role."""
    if source.kind == "tiny":
        return os.path.join(tiny.ensure(models_dir), source.location), {}
    if source.kind == "repo" and allow_download:
        kwargs = {"subfolder": source.subfolder} if source.subfolder else {}
        return source.location, dict(kwargs, local_files_only=False)
    path = check(source, models_dir)
    return path, {}


def convert(path, out=None):
    """Turn a pickle checkpoint into safetensors (the one time a pickle is opened, by request)."""
    import torch
    from safetensors.torch import save_file

    out = out or os.path.splitext(path)[0] + ".safetensors"
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    tensors = {}

    def flatten(prefix, value):
        if isinstance(value, torch.Tensor):
            tensors[prefix] = value.contiguous()
        elif isinstance(value, dict):
            for k, v in value.items():
                flatten(f"{prefix}.{k}" if prefix else str(k), v)

    flatten("", state)
    if not tensors:
        raise UserError(f"{path} holds no tensors to convert")
    save_file(tensors, out)
    return out, len(tensors)
