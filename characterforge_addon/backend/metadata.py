"""What every output PNG carries: A1111-style `parameters` text and the full job as JSON."""

import json
import platform

from ..core.image_io import encode_png


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
    if "characters" in spec:
        out["characters"] = [{"name": c["name"], "prompt": c["prompt"],
                              **({"identity": _identity_summary(c["identity"])} if "identity" in c else {})}
                             for c in spec["characters"]]
    return out


def _identity_summary(identity):
    return {"references": len(identity["images"]), "scale": identity["scale"],
            "embedding": "embedding" in identity}


def a1111_parameters(spec, seed, profile, sampler):
    lines = [spec["prompt"]]
    if spec.get("negative_prompt"):
        lines.append(f"Negative prompt: {spec['negative_prompt']}")
    controls = ", ".join(f"ControlNet {i}: \"Module: {n}, Weight: {c['strength']}, Guidance Start: {c['start']}, "
                         f"Guidance End: {c['end']}\"" for i, (n, c) in enumerate(spec["controls"].items()))
    lines.append(f"Steps: {spec['steps']}, Sampler: {sampler}, CFG scale: {spec['guidance']}, Seed: {seed}, "
                 f"Size: {spec['width']}x{spec['height']}, Model: {profile.models['base'].location}, "
                 f"Profile: {profile.name}" + (", Draft: yes" if spec.get("draft") else "")
                 + (f", {controls}" if controls else ""))
    return "\n".join(lines)


def png_with_metadata(pixels, spec, seed, profile, sampler, extra=None):
    record = {"job": spec_without_images(spec), "seed": seed, "profile": profile.name,
              "models": {role: s.location for role, s in profile.models.items()},
              "produces_noise": profile.produces_noise, "versions": versions()}
    record.update(extra or {})
    text = {"parameters": a1111_parameters(spec, seed, profile, sampler), "characterforge": json.dumps(record)}
    return encode_png(pixels, text)
