"""Model profiles: which model plays each role, read from TOML (built-in or the user's)."""

import os
import tomllib
from dataclasses import dataclass, field

from ...core.errors import UserError
from ..families import FAMILIES
from .model_files import repo_files

BUILTIN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles")
# role -> what the jobs use it for (the doctor says so next to a missing model). Every role
# here is read by some job: tests/backend/test_roles.py runs one and checks.
ROLES = {
    "base": "every job", "vae": "every job (decoding without fp16 overflow)",
    "controlnet_openpose": "the pose of posed characters, sheets and shots",
    "controlnet_depth": "depth and hand-depth control (posed characters, backgrounds, shots)",
    "controlnet_union": "pose, depth, hand depth, normal and line-art maps in one ControlNet (SDXL; instead of the "
                        "two above)",
    "image_encoder": "identity from reference images (IP-Adapters) and appearance embeddings and scores",
    "ip_adapter_plus_face": "identity from reference images (IP-Adapter plus-face)",
    "ip_adapter_faceid": "identity from a face embedding (IP-Adapter FaceID)",
    "ip_adapter_appearance": "keeping the look of a creature, an object or a costume (IP-Adapter, not plus-face)",
    "insightface": "finding faces (the sheet's face pass, expressions) and identity embeddings and scores",
    "draft_lora": "draft mode (a few-step LoRA: TCD for SDXL, Lightning for Qwen-Image-Edit)",
    "relight_lora": "relighting (a relight LoRA of the base model, on in relights only; optional)",
    "preview_decoder": "previews while a job denoises (a tiny autoencoder: TAESD)",
}
# What a posed character needs: the profile is ready when these (those it names) are present.
CORE_ROLES = ("base", "vae", "controlnet_openpose", "controlnet_depth", "controlnet_union")
SOURCE_KINDS = ("repo", "folder", "file", "tiny")




@dataclass
class Source:
    role: str
    kind: str            # repo | folder | file | tiny
    location: str        # repo id, path, or tiny component name
    subfolder: str = ""
    variant: str = ""
    size: str = ""
    licence: str = ""
    weight: str = ""     # one file inside a repo or folder (IP-Adapter weights)
    config: str = ""     # single files: a diffusers folder or repo id with the configs (offline)
    files: object = None  # model_files.RepoFiles: what a repo source's loader reads (None: not a repo)


@dataclass
class Profile:
    name: str
    family: str
    description: str
    gpu_dtype: str = "float16"
    produces_noise: bool = False
    models: dict = field(default_factory=dict)  # role -> Source
    path: str = ""
    native_size: int = 0  # the side the model was trained at (face redraws use it); 0: the family's
    reference_pixels: int = 1024 * 1024  # edit families: the size input pictures are brought to for the VAE
    condition_pixels: int = 384 * 384    # ... and for the text encoder's vision tower
    text_layers: tuple = ()  # FLUX.2: the text encoder layers that condition it (empty: the model's own)
    face_refine: str = ""  # a profile whose identity adapters redraw the faces of this one's pictures, kept if better
    draft_steps: int = 0  # steps of a draft (0: the family's, e.g. 4 for a 4-step Lightning LoRA)


def _source(role, table, where):
    if not isinstance(table, dict):
        raise UserError(f"{where}: [models.{role}] must be a table with one of {', '.join(SOURCE_KINDS)}")
    kinds = [k for k in SOURCE_KINDS if k in table]
    if len(kinds) != 1:
        raise UserError(f"{where}: [models.{role}] needs exactly one of {', '.join(SOURCE_KINDS)}, found {kinds or 'none'}")
    kind = kinds[0]
    location = str(table[kind])
    if kind in ("folder", "file"):
        location = os.path.expanduser(location)
        if not os.path.isabs(location):
            location = os.path.join(os.path.dirname(where), location)
    return Source(role, kind, location, str(table.get("subfolder", "")), str(table.get("variant", "")),
                  str(table.get("size", "")), str(table.get("licence", "")), str(table.get("weight", "")),
                  os.path.expanduser(str(table.get("config", ""))))


def parse_profile(text, where="profile"):
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where} is not valid TOML: {exc}") from None
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise UserError(f"{where}: missing name = \"...\"")
    family = doc.get("family", "sdxl")
    if family not in FAMILIES:
        raise UserError(f"{where}: family {family!r} is not supported; use {' or '.join(sorted(FAMILIES))}")
    dtype = doc.get("gpu_dtype", "float16")
    if dtype not in ("float16", "bfloat16", "float32"):
        raise UserError(f"{where}: gpu_dtype {dtype!r} must be float16, bfloat16 or float32")
    models = doc.get("models", {})
    unknown = sorted(set(models) - set(ROLES))
    if unknown:
        raise UserError(f"{where}: unknown role(s) {', '.join(unknown)}; roles are {', '.join(ROLES)}")
    FAMILIES[family].check_roles(models, where)
    native = doc.get("native_size", FAMILIES[family].native_size)
    if isinstance(native, bool) or not isinstance(native, int) or native % 8 or not 64 <= native <= 2048:
        raise UserError(f"{where}: native_size {native!r} must be a multiple of 8 from 64 to 2048")
    sources = {role: _source(role, table, where) for role, table in models.items()}
    for source in sources.values():
        source.files = repo_files(source, family, "vae" in sources)
    pixels = {}
    for key, default in (("reference_pixels", 1024 * 1024), ("condition_pixels", 384 * 384)):
        pixels[key] = doc.get(key, default)
        if isinstance(pixels[key], bool) or not isinstance(pixels[key], int) or not 32 * 32 <= pixels[key] <= 4096 ** 2:
            raise UserError(f"{where}: {key} {pixels[key]!r} must be a whole number of pixels from 1024 to 16777216")
    layers = doc.get("text_layers", [])
    if not isinstance(layers, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                                               for x in layers):
        raise UserError(f"{where}: text_layers must be a list of layer numbers, e.g. [9, 18, 27]")
    refine = doc.get("face_refine", "")
    if not isinstance(refine, str):
        raise UserError(f"{where}: face_refine must be a profile name")
    draft_steps = doc.get("draft_steps", 0)
    if isinstance(draft_steps, bool) or not isinstance(draft_steps, int) or not 0 <= draft_steps <= 50:
        raise UserError(f"{where}: draft_steps {draft_steps!r} must be a whole number from 1 to 50 (0: the family's)")
    return Profile(name, family, str(doc.get("description", "")), dtype, bool(doc.get("produces_noise", False)),
                   sources, where, native, **pixels, text_layers=tuple(layers), face_refine=refine,
                   draft_steps=draft_steps)


def load_profile(name_or_path, extra_dirs=()):
    """A profile by built-in name, by name in `extra_dirs`, or by path to a .toml file."""
    if name_or_path.endswith(".toml") or os.sep in name_or_path:
        path = os.path.expanduser(name_or_path)
    else:
        candidates = [os.path.join(d, f"{name_or_path}.toml") for d in (*extra_dirs, BUILTIN_DIR)]
        path = next((p for p in candidates if os.path.isfile(p)), None)
        if path is None:
            names = sorted({f[:-5] for d in (*extra_dirs, BUILTIN_DIR) if os.path.isdir(d)
                            for f in os.listdir(d) if f.endswith(".toml")})
            raise UserError(f"no model profile named {name_or_path!r}; known profiles: {', '.join(names)}")
    try:
        with open(path, encoding="utf-8") as f:
            return parse_profile(f.read(), where=os.path.abspath(path))
    except OSError as exc:
        raise UserError(f"cannot read profile {path}: {exc.strerror or exc}") from None


def all_profiles(extra_dirs=()):
    """Every profile that loads, the user's before the built-in ones of the same name."""
    found = {}
    for folder in (*extra_dirs, BUILTIN_DIR):
        names = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".toml")) if os.path.isdir(folder) else []
        for name in names:
            if name not in found:
                try:
                    found[name] = load_profile(os.path.join(folder, name + ".toml"))
                except UserError:
                    continue  # a broken profile is the doctor's to report
    return list(found.values())
