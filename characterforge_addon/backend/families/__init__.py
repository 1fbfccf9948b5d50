"""Model families, the backend's plug-in point. A family loads a profile's components once,
builds the variants its jobs use on shared weights, and declares what it can do as
capabilities; job kinds ask for capabilities (`core.spec.job_spec.needs`), never for a family's
classes, and a job whose profile cannot do what it asks is refused before it is queued.

Capabilities: draw (a new picture steered by the maps and references sent), txt2img (from a
prompt alone), img2img, inpaint (a picture redrawn, redrawn in a mask), pose_control,
depth_control, normal_control and line_control (OpenPose, depth, normal and line-art maps steer
it), identity (reference pictures or a face
embedding keep a character). How a family does each is its own: SDXL through ControlNets and
IP-Adapters, an edit model by taking the maps and references as input pictures. draft (a
few-step draft: `families.draft`), lora (a character's trained LoRA loaded into the denoiser),
train_lora (training one: `jobs.training`), relight (a picture relit by a light reference: `jobs.relight`).
The video families (`wan_video`) declare animate (a clip from control videos rendered from the
rig) and none of the picture capabilities.

May import engine (pictures, ControlNets, the device) and core; never jobs or serving.
"""

from ...core.spec.spec_fields import JobSpecError
from .flux2_klein import Flux2Klein
from .qwen_edit import QwenEdit
from .stable_diffusion import StableDiffusion
from .wan_video import WanAnimate, WanVace

FAMILIES = {"sdxl": StableDiffusion("sdxl", gpu_gb=16, offload_gb=8.8, denoiser_gb=5.1, controlnet_gb=2.5,
                                     native_size=1024,
                                     modules=("unet", "text_encoder", "text_encoder_2", "vae"),
                                     lora_size=(1_451_520, 401_408)),
            "sd15": StableDiffusion("sd15", gpu_gb=7, offload_gb=3.9, denoiser_gb=1.7, controlnet_gb=0.7,
                                    native_size=512,
                                    modules=("unet", "text_encoder", "vae"), lora_size=(199_296, 73_728)),
            "qwen_edit": QwenEdit(), "flux2_klein": Flux2Klein(),
            "wan_vace": WanVace(), "wan_animate": WanAnimate()}
CAPABILITY_TEXT = {"draw": "new pictures steered by maps and references", "txt2img": "pictures from a prompt alone",
                   "img2img": "redrawing a picture", "inpaint": "redrawing inside a mask",
                   "pose_control": "following the OpenPose map",
                   "depth_control": "following depth maps (depth, hand depth)",
                   "normal_control": "following normal maps", "line_control": "following line-art maps",
                   "identity": "keeping an identity from reference pictures or a face embedding",
                   "draft": "quick few-step drafts", "lora": "a character's trained LoRA",
                   "train_lora": "training a character LoRA",
                   "animate": "animating a character from control videos (a video model)",
                   "relight": "relighting a picture by a light reference rendered from the scene"}


def family_of(profile):
    return FAMILIES[profile.family]


def memory_need(family, weights="native", roles=()):
    """GB `family` takes with every model on the GPU, and at the peak of model offloading, with
    its denoiser's weights stored `weights` (fp8 halves them), for a profile naming `roles` (a
    ControlNet-Union instead of two ControlNets saves one). A video family says its own (three
    figures: see `wan_video.WanVideo.memory_need`)."""
    if hasattr(family, "memory_need"):
        return family.memory_need(weights)
    saved = (family.denoiser_gb / 2 if weights == "fp8" else 0) + family.saved_gb(roles)
    return round(family.gpu_gb - saved, 1), round(family.offload_gb - saved, 1)


def capabilities(profile):
    """What `profile` can do: its family's capabilities whose models the profile names."""
    family = family_of(profile)
    return {c for c in family.CAPABILITIES if all(r in profile.models for r in family.roles_for(c, profile.models))}


def refuse_unless_able(profile, wanted, other_profiles=list):
    """Raise JobSpecError (field `profile`) unless `profile` can do every capability in `wanted`,
    naming what it cannot and the profiles among `other_profiles()` that can (read only then)."""
    missing = sorted(set(wanted) - capabilities(profile))
    if not missing:
        return
    able = [p.name for p in other_profiles() if p.name != profile.name and set(wanted) <= capabilities(p)]
    what = "; ".join(f"{CAPABILITY_TEXT[c]} ({c})" for c in missing)
    roles = sorted({r for c in missing for r in family_of(profile).roles_for(c, profile.models)})
    fix = f"use profile {' or '.join(able)}" if able else f"add the models for it to the profile ({', '.join(roles)})"
    raise JobSpecError("profile", f"profile {profile.name} (family {profile.family}) cannot do {what}", fix)
