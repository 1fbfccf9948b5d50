"""Run twice in fresh processes sharing one user folder: `set` installs the extension zip,
changes its preferences and saves them as Blender does; `get` prints them as the next Blender
session sees them (one JSON line).

  python tests/blender/prefs_check.py set|get ZIP USER_FOLDER
"""

import json
import os
import sys

mode, zip_path, user = sys.argv[1], os.path.abspath(sys.argv[2]), sys.argv[3]
os.environ["BLENDER_USER_RESOURCES"] = user

import bpy  # noqa: E402  (reads BLENDER_USER_RESOURCES at import)
import addon_utils  # noqa: E402

MODULE = "bl_ext.user_default.characterforge"
VALUES = {"mode": "CONNECT", "url": "http://127.0.0.1:9999", "port": 9001, "profile": "tiny",
          "characters_dir": "/tmp/cf-characters", "auto_start": False, "python": "/opt/cf/bin/python", "memory": "model_offload"}

if mode == "set":
    assert bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default",
                                                    enable_on_install=True) == {"FINISHED"}
    prefs = bpy.context.preferences.addons[MODULE].preferences
    for key, value in VALUES.items():
        setattr(prefs, key, value)
    bpy.context.preferences.is_dirty = True
    assert bpy.ops.wm.save_userpref() == {"FINISHED"}
    addon_utils.disable(MODULE)  # the bpy 4.2 module segfaults at exit with operators registered
    print(json.dumps({"saved": True}))
else:
    # The bpy module starts from factory settings; a Blender binary reads userpref.blend itself.
    bpy.ops.wm.read_userpref()
    addon = bpy.context.preferences.addons.get(MODULE)
    prefs = addon.preferences if addon else None
    print(json.dumps({"enabled": addon is not None,
                      "values": {k: getattr(prefs, k) for k in VALUES} if prefs else None}))
    if addon:
        addon_utils.disable(MODULE)
