"""Choosing the model profile a scene's jobs use: a menu of the profiles the backend offers
(read from their files, the family beside each name) and the operator that picks one."""

import os

import bpy
from bpy.props import StringProperty

from ...core.setup.profile_list import read_profiles
from .. import preferences

_cache = {}


def offered(prefs):
    """[(name, family, description)], read again only when a profile folder changes."""
    folders = preferences.profile_folders(prefs)
    key = tuple((f, os.stat(f).st_mtime_ns if os.path.isdir(f) else 0) for f in folders)
    if key not in _cache:
        _cache.clear()
        _cache[key] = read_profiles(folders)
    return _cache[key]


def draw(layout, context):
    """The scene's profile and its family, with the menu to choose another."""
    s = context.scene.characterforge
    current = preferences.job_profile(context)
    family = next((f for n, f, _ in offered(preferences.get(context)) if n == current), None)
    row = layout.row(align=True)
    row.label(text="Profile", icon="NODE_COMPOSITING")
    row.menu("CHARACTERFORGE_MT_profiles", text=f"{current} ({family or 'not found'})")
    if s.profile:
        row.operator("characterforge.use_profile", text="", icon="X").name = ""
    if family is None:
        layout.label(text=f"No profile named {current}: choose one, or add it to the data folder's profiles",
                     icon="ERROR")


class CHARACTERFORGE_MT_profiles(bpy.types.Menu):
    bl_label = "Model Profiles"
    bl_idname = "CHARACTERFORGE_MT_profiles"

    def draw(self, context):
        current = preferences.job_profile(context)
        for name, family, description in offered(preferences.get(context)):
            self.layout.operator("characterforge.use_profile", text=f"{name} ({family})",
                                 icon="CHECKMARK" if name == current else "NONE").name = name


class CHARACTERFORGE_OT_use_profile(bpy.types.Operator):
    """Use this model profile for the scene's sheets, posed characters, backgrounds and shots"""
    bl_idname = "characterforge.use_profile"
    bl_label = "Use Profile"
    bl_options = {"REGISTER", "UNDO"}

    name: StringProperty(description="The profile's name; empty: the preferences' profile")

    def execute(self, context):
        context.scene.characterforge.profile = self.name
        return {"FINISHED"}


classes = (CHARACTERFORGE_MT_profiles, CHARACTERFORGE_OT_use_profile)
register, unregister = bpy.utils.register_classes_factory(classes)
