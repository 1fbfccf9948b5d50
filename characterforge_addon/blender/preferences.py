"""Add-on preferences: how to reach the backend (per machine, not per .blend)."""

import os
import sys
from types import SimpleNamespace

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from ..core.spec.speedups import ON_WHERE, SPEEDUPS

ADDON_ID = __package__.rpartition(".")[0]  # the add-on's root package, whatever Blender calls it


class CHARACTERFORGE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    mode: EnumProperty(name="Backend", items=[
        ("BUNDLED", "Start the bundled backend", "Run the backend in its own Python on this computer"),
        ("CONNECT", "Connect to a URL", "Use a backend that is already running")], default="BUNDLED")
    python: StringProperty(name="Backend Python", subtype="FILE_PATH", default="",
                           description="Python of the backend's environment (with torch and diffusers)")
    port: IntProperty(name="Port", default=7861, min=1024, max=65535)
    url: StringProperty(name="URL", default="http://127.0.0.1:7861")
    token: StringProperty(name="Token", subtype="PASSWORD", default="",
                          description="Only for Connect: the backend's token (the bundled one is read from its data folder)")
    data_dir: StringProperty(name="Data folder", subtype="DIR_PATH", default="",
                             description="Jobs, results, models and the token; empty: the add-on's user folder")
    characters_dir: StringProperty(name="Characters folder", subtype="DIR_PATH", default="",
                                   description="Where identity packs live, shared by every .blend; empty: the user folder")
    profile: StringProperty(name="Model profile", default="sdxl")
    auto_start: BoolProperty(name="Start the backend with Generate", default=True)
    memory: EnumProperty(name="GPU memory", default="auto", items=[
        ("auto", "Automatic", "Chosen from the free GPU memory when the backend starts"),
        ("gpu", "All on the GPU", "Fastest; SDXL needs about 16 GB"),
        ("model_offload", "Offload models", "Each model moves to the GPU while it runs (about 8-10 GB for SDXL)"),
        ("group_offload", "Stream layers", "Layers copied to the GPU as they run, the next while one computes: "
         "a few GB, much faster than offloading layers"),
        ("sequential_offload", "Offload layers", "Slowest, smallest (a few GB)")])
    weights: EnumProperty(name="Weights", default="native", items=[
        ("native", "As published", "The profile's dtype (bfloat16 or float16)"),
        ("fp8", "float8 storage", "The denoiser's weights kept in float8 and cast as each layer runs: half its "
         "memory (Qwen-Image-Edit 41 -> 20 GB), pictures slightly different; not on Apple Silicon")])
    speedups_off: EnumProperty(name="Speed-ups off", options={"ENUM_FLAG"}, default=set(),
                               items=[(n, n, what) for n, what in SPEEDUPS.items()],
                               description="Speed-ups of the fast path to turn off, if one gives you trouble "
                                           "(the backend starts with --without for each)")
    speedups_on: EnumProperty(name="Speed-ups on", options={"ENUM_FLAG"}, default=set(),
                              items=[(n, n, f"on by default only on {where}; turn it on here elsewhere")
                                     for n, where in ON_WHERE.items()],
                              description="Speed-ups that are on by default only where they pay, to turn on here")
    gpu: EnumProperty(name="GPU for set-up", default="AUTO", items=[
        ("AUTO", "Detect", "Ask nvidia-smi, rocminfo and the system which GPU this computer has"),
        ("nvidia", "NVIDIA (CUDA)", "PyTorch's CUDA build (Windows and Linux)"),
        ("amd", "AMD (ROCm)", "PyTorch's ROCm build (Linux only)"),
        ("intel", "Intel Arc (XPU)", "PyTorch's XPU build"),
        ("apple", "Apple Silicon (MPS)", "PyTorch's macOS build"),
        ("none", "None (CPU)", "PyTorch for the CPU: minutes per image")],
        description="Which PyTorch build Set Up Backend installs")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "mode")
        if self.mode == "BUNDLED":
            layout.prop(self, "python")
            layout.prop(self, "port")
            layout.prop(self, "auto_start")
            layout.prop(self, "memory")
            layout.prop(self, "weights")
            layout.prop(self, "speedups_off")
            layout.prop(self, "speedups_on")
            layout.prop(self, "gpu")
        else:
            layout.prop(self, "url")
            layout.prop(self, "token")
        layout.prop(self, "data_dir")
        layout.prop(self, "characters_dir")
        layout.prop(self, "profile")


def get(context=None):
    """The preferences, or their defaults when the add-on was registered without Blender's
    add-on system (headless scripts and tests)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    if addon is not None:
        return addon.preferences
    # The defaults; headless runs may set them through CHARACTERFORGE_* variables.
    env = os.environ.get
    return SimpleNamespace(mode="BUNDLED", url=env("CHARACTERFORGE_URL", "http://127.0.0.1:7861"),
                           token=env("CHARACTERFORGE_TOKEN", ""), auto_start=True,
                           python=env("CHARACTERFORGE_BACKEND_PYTHON", ""), data_dir=env("CHARACTERFORGE_DATA", ""),
                           characters_dir=env("CHARACTERFORGE_CHARACTERS", ""),
                           profile=env("CHARACTERFORGE_PROFILE", "sdxl"), port=int(env("CHARACTERFORGE_PORT", "7861")),
                           memory=env("CHARACTERFORGE_MEMORY", "auto"), weights=env("CHARACTERFORGE_WEIGHTS", "native"),
                           speedups_off=_names(env("CHARACTERFORGE_WITHOUT", "")),
                           speedups_on=_names(env("CHARACTERFORGE_WITH", "")), gpu=env("CHARACTERFORGE_GPU", "AUTO"))


def _names(text):
    return {n.strip() for n in text.split(",") if n.strip()}


def serve_options(prefs):
    """The bundled backend's options from the preferences: memory mode, weights, speed-ups."""
    options = ["--memory", prefs.memory, "--weights", prefs.weights]
    for flag, names in (("--without", prefs.speedups_off), ("--with", prefs.speedups_on)):
        for name in sorted(names):
            options += [flag, name]
    return options


def backend_python(prefs):
    return bpy.path.abspath(prefs.python) if prefs.python else sys.executable


BUILTIN_PROFILES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "backend", "models", "profiles")


def job_profile(context):
    """The profile jobs from this scene use: the scene's choice, else the preferences'."""
    return context.scene.characterforge.profile or get(context).profile


def profile_folders(prefs):
    """Where the backend looks for profiles: the data folder's own, then the built-in ones."""
    return [os.path.join(data_dir(prefs), "profiles"), BUILTIN_PROFILES]


def data_dir(prefs):
    if prefs.data_dir:
        return bpy.path.abspath(prefs.data_dir)
    try:
        return bpy.utils.extension_path_user(ADDON_ID, path="backend", create=True)
    except (ValueError, AttributeError):  # not running as an installed extension
        return os.path.join(bpy.utils.user_resource("DATAFILES", path="characterforge", create=True), "backend")


classes = (CHARACTERFORGE_AP_preferences,)
register, unregister = bpy.utils.register_classes_factory(classes)
