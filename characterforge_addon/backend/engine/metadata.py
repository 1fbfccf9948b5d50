"""What every output PNG carries: A1111-style `parameters` text and the full job as JSON."""

import json
import platform

from ...core.image_io import encode_png
from ...core.spec.training_spec import prompt_with_trigger


def versions():
    import diffusers
    import torch
    import transformers
    return {"characterforge": "0.1.0", "diffusers": diffusers.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": platform.python_version()}


def spec_without_images(spec):
    out = dict(spec)
    out["controls"] = {name: {k: v for k, v in c.items() if k != "image"} for name, c in spec.get("controls", {}).items()}
    if "identity" in spec:
        out["identity"] = _identity_summary(spec["identity"])
    if "background" in spec:
        out["background"] = "image"
    if "image" in spec:
        out["image"] = "the picture edited"
    if "mask" in spec:
        out["mask"] = "where the character is"
    if "light" in spec:  # a relight's light reference: its camera, white and keys, not its picture
        out["light"] = {k: v for k, v in spec["light"].items() if k not in ("image", "normal")}
    if spec.get("relight"):
        light = {k: v for k, v in spec["relight"]["light"].items() if k not in ("image", "normal")}
        out["relight"] = dict(spec["relight"], light=light)
    if "characters" in spec:
        out["characters"] = [{"name": c["name"], "prompt": c["prompt"],
                              **({"kind": c["kind"]} if c.get("kind", "humanoid") != "humanoid" else {}),
                              **({"identity": _identity_summary(c["identity"])} if "identity" in c else {})}
                             for c in spec["characters"]]
    return out


def _identity_summary(identity):
    out = {"references": len(identity.get("images", ())), "scale": identity.get("scale", 0.0),
           "embedding": "embedding" in identity}
    if "lora" in identity:
        out["lora"] = identity["lora"]
    if "appearance" in identity:
        out["appearance"] = {"scale": identity["appearance"]["scale"], "views": len(identity["appearance"]["views"])}
    return out


def _loras(spec):
    """Every character LoRA the job names: the spec's own and its characters'."""
    identities = [spec.get("identity")] + [c.get("identity") for c in spec.get("characters", ())]
    return [i["lora"] for i in identities if i and "lora" in i]


def a1111_parameters(spec, seed, profile, sampler):
    """A1111's `parameters` text; LoRAs as A1111 writes them: a <lora:name:weight> tag in the
    prompt (after the trigger word) and their hashes."""
    loras = _loras(spec)
    prompt = prompt_with_trigger(spec["prompt"], spec.get("identity", {}).get("lora"))
    lines = [" ".join([prompt] + [f"<lora:{lo['name']}:{lo['weight']}>" for lo in loras])]
    if spec.get("negative_prompt"):
        lines.append(f"Negative prompt: {spec['negative_prompt']}")
    controls = ", ".join(f"ControlNet {i}: \"Module: {n}, Weight: {c['strength']}, Guidance Start: {c['start']}, "
                         f"Guidance End: {c['end']}\"" for i, (n, c) in enumerate(spec["controls"].items()))
    lines.append(f"Steps: {spec['steps']}, Sampler: {sampler}, CFG scale: {spec['guidance']}, Seed: {seed}, "
                 f"Size: {spec['width']}x{spec['height']}, Model: {profile.models['base'].location}, "
                 f"Profile: {profile.name}" + (", Draft: yes" if spec.get("draft") else "")
                 + (", Lora hashes: \"" + ", ".join(f"{lo['name']}: {lo['sha256'][:12]}" for lo in loras) + "\""
                    if loras else "")
                 + (f", {controls}" if controls else ""))
    return "\n".join(lines)


def png_with_metadata(pixels, spec, seed, profile, sampler, extra=None):
    record = {"job": spec_without_images(spec), "seed": seed, "profile": profile.name,
              "models": {role: s.location for role, s in profile.models.items()},
              "produces_noise": profile.produces_noise, "versions": versions()}
    record.update(extra or {})
    text = {"parameters": a1111_parameters(spec, seed, profile, sampler), "characterforge": json.dumps(record)}
    return encode_png(pixels, text)
