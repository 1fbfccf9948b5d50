"""Tiny random-weight models made on this machine (no hub) for the `tiny*` test profiles: they run
the real pipeline code and produce noise. Import only core (the skeleton, for the tiny pose detector);
never engine, families, jobs or serving."""

import os

VERSION = 12  # bump when the shapes change: older folders are left alone, a new one is made
COMPONENTS = ("base", "controlnet_openpose", "controlnet_depth", "controlnet_union", "image_encoder",
              "ip_adapter_plus_face.safetensors", "ip_adapter_faceid.safetensors",
              "ip_adapter_appearance.safetensors", "insightface", "qwen_edit", "flux2_klein", "draft_lora_sdxl",
              "draft_lora_qwen_edit", "preview_decoder", "wan_vace", "wan_animate")  # one missing: made again whole


def make(folder):
    """Write every tiny component into `folder`."""
    from . import edit, faces, sdxl, video
    sdxl.make(folder)
    faces.make(os.path.join(folder, "insightface"))
    edit.make(folder)
    video.make(folder)
    with open(os.path.join(folder, "README.txt"), "w") as f:
        f.write("Tiny random-weight components made by CharacterForge for tests. They produce noise.\n")


def folder_in(models_dir):
    return os.path.join(models_dir, f"tiny-v{VERSION}")


def ensure(models_dir):
    """The tiny components' folder, made on first use; one process makes it while any other
    (engine replicas starting together) waits for it."""
    import shutil

    from filelock import FileLock
    folder = folder_in(models_dir)
    os.makedirs(models_dir, exist_ok=True)
    with FileLock(folder + ".lock"):
        if not all(os.path.exists(os.path.join(folder, c)) for c in COMPONENTS):
            tmp = folder + ".partial"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            make(tmp)
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
    return folder
