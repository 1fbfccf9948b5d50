"""Which files of a Hugging Face repo each model role's loader reads, as the glob patterns
`huggingface_hub` and `hf download --include` take: the downloader fetches exactly these and
the doctor's fixes print them, never a whole repository (SDXL base's repo holds fp32, fp16,
ONNX and OpenVINO copies: tens of GB where the fp16 files are about 7)."""

import shlex
from dataclasses import dataclass

from ..families import FAMILIES

# A pipeline's small non-weight files; its weight folders are the family's `modules` (the VAE
# skipped when the profile names its own, the safety checker never loaded).
PIPELINE_FILES = ("model_index.json", "scheduler/*.json", "tokenizer/*", "tokenizer_2/*", "feature_extractor/*.json",
                  "processor/*", "image_processor/*.json")


@dataclass(frozen=True)
class RepoFiles:
    role: str
    repo: str
    include: tuple
    exclude: tuple
    licence: str
    size: str

    @property
    def non_commercial(self):
        return "non-commercial" in self.licence.lower()

    def hf_command(self):
        """The `hf download` line that fetches just these files into the Hugging Face cache."""
        parts = ["hf", "download", self.repo]
        for pattern in self.include:
            parts += ["--include", pattern]
        for pattern in self.exclude:
            parts += ["--exclude", pattern]
        return shlex.join(parts)


def module_patterns(folder, variant):
    """A diffusers or transformers model folder: its configs and its safetensors weights, in
    the variant diffusers reads (`diffusion_pytorch_model.fp16.safetensors`) or plain."""
    p = f"{folder.strip('/')}/" if folder.strip("/") else ""
    configs = (f"{p}config.json", f"{p}preprocessor_config.json")
    if variant:
        return configs + (f"{p}diffusion_pytorch_model.{variant}.safetensors", f"{p}model.{variant}.safetensors",
                          f"{p}*.safetensors.index.{variant}.json", f"{p}*.{variant}-*-of-*.safetensors",
                          f"{p}*-of-*.{variant}.safetensors")
    return configs + (f"{p}diffusion_pytorch_model.safetensors", f"{p}model.safetensors",
                      f"{p}*.safetensors.index.json", f"{p}*-of-*.safetensors")


def _plain_only(include, variants=("fp16", "bf16")):
    """Excludes that keep a plain-weights pattern from also taking the variant copies."""
    return tuple(f"*.{v}{sep}*" for v in variants for sep in (".", "-")) if include else ()


def repo_files(source, family, profile_has_vae=False):
    """RepoFiles for a role whose model comes from a hub repo; None for local files, folders and
    the tiny components (nothing to download)."""
    if source.kind != "repo":
        return None
    sub = source.subfolder.strip("/")
    if source.weight:  # one adapter file
        include = (f"{sub}/{source.weight}" if sub else source.weight,)
        exclude = ()
    elif source.role == "base":
        modules = [m for m in FAMILIES[family].modules if not (m == "vae" and profile_has_vae)]
        include = tuple(f"{sub}/{f}" if sub else f for f in PIPELINE_FILES)
        for module in modules:
            include += module_patterns(f"{sub}/{module}" if sub else module, source.variant)
        exclude = () if source.variant else _plain_only(include)
    else:
        include = module_patterns(sub, source.variant)
        exclude = () if source.variant else _plain_only(include)
    return RepoFiles(source.role, source.location, include, exclude, source.licence, source.size)


def for_profile(profile):
    """RepoFiles for every role of `profile` that comes from the hub, in the profile's order."""
    found = (repo_files(s, profile.family, "vae" in profile.models) for s in profile.models.values())
    return [f for f in found if f is not None]
