"""Run in a fresh process (bpy reads BLENDER_USER_RESOURCES at import): install the built zip
as a user extension, enable, use, disable, and check nothing is left behind; enable twice.

  python tests/blender/extension_check.py ZIP
Prints one JSON line with what it saw; exits non-zero on the first failure.
"""

import importlib
import json
import os
import sys
import tempfile

zip_path = os.path.abspath(sys.argv[1])
os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="cf-user-")

import bpy  # noqa: E402  (must come first: it puts Blender's own modules on the path)
import addon_utils  # noqa: E402

MODULE = "bl_ext.user_default.characterforge"


def snapshot():
    return {
        "classes": sorted(c.__name__ for c in bpy.types.Operator.__subclasses__() + bpy.types.Panel.__subclasses__()
                          + bpy.types.PropertyGroup.__subclasses__() + bpy.types.UIList.__subclasses__()
                          if c.__name__.startswith("CHARACTERFORGE") and getattr(c, "is_registered", False)),
        "scene_prop": hasattr(bpy.types.Scene, "characterforge"),
        "object_prop": hasattr(bpy.types.Object, "characterforge"),
        "operators": hasattr(bpy.ops, "characterforge") and bool(dir(bpy.ops.characterforge)),
        "handlers": sum(len(h) for h in (bpy.app.handlers.load_post, bpy.app.handlers.depsgraph_update_post,
                                         bpy.app.handlers.frame_change_post, bpy.app.handlers.save_pre)),
    }


before = snapshot()
result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
assert result == {"FINISHED"}, result
enabled = snapshot()
assert enabled["scene_prop"] and enabled["object_prop"] and enabled["classes"], enabled

bpy.ops.wm.read_homefile(use_empty=True)
scene = bpy.context.scene
cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
scene.collection.objects.link(cam)
scene.camera = cam
cam.location = (0, -5, 0.9)
cam.rotation_euler = (1.5708, 0, 0)
scene.render.resolution_x = scene.render.resolution_y = 128
out = tempfile.mkdtemp(prefix="cf-out-")
scene.characterforge.output_dir = out
assert bpy.ops.characterforge.add_rig() == {"FINISHED"}
assert bpy.ops.characterforge.render_controls() == {"FINISHED"}
used = sorted(os.listdir(out))
# the real preferences (registered, not the headless defaults) give the backend's options
prefs = bpy.context.preferences.addons[MODULE].preferences
prefs.speedups_off, prefs.speedups_on = {"batched_hands", "channels_last"}, {"compile"}
options = importlib.import_module(f"{MODULE}.blender.preferences").serve_options(prefs)
assert options == ["--memory", "auto", "--weights", "native", "--without", "batched_hands", "--without",
                   "channels_last", "--with", "compile"], options

addon_utils.disable(MODULE, default_set=True)
disabled = snapshot()
assert disabled["classes"] == [] and not disabled["scene_prop"] and not disabled["object_prop"], disabled
assert disabled["handlers"] == before["handlers"], (before, disabled)

addon_utils.enable(MODULE, default_set=True)
addon_utils.disable(MODULE, default_set=True)
addon_utils.enable(MODULE, default_set=True)
again = snapshot()
assert again["classes"] == enabled["classes"] and again["scene_prop"], again
addon_utils.disable(MODULE, default_set=True)  # the bpy 4.2 module segfaults at exit with operators registered
print(json.dumps({"enabled": enabled, "disabled": disabled, "again": again, "files": used}))
