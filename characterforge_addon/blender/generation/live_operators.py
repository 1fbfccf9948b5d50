"""Operators of live mode: Live on and off (greyed, with the reason and what to install, on a
profile that cannot draft) and Keep (the live picture becomes a normal result)."""

import bpy

from ..operator_base import Reporting
from . import live, live_plane


class CHARACTERFORGE_OT_live(Reporting, bpy.types.Operator):
    """Live: the picture follows the pose, camera, characters and prompt (a draft a moment after each change, on one
    live plane); press again to stop"""
    bl_idname = "characterforge.live"
    bl_label = "Live"

    @classmethod
    def poll(cls, context):
        if live.session() is not None:
            return True  # always free to stop
        ok, why = live.draft_ready(context)
        if not ok:
            cls.poll_message_set(f"Live needs a profile with a draft setting: {why}")
        return ok

    def run(self, context):
        if live.session() is not None:
            live.stop(context)
            return "Live off"
        live.start(context)
        return "Live on: the picture follows your changes"


class CHARACTERFORGE_OT_live_keep(Reporting, bpy.types.Operator):
    """Keep the live picture as a result of the shot (a draft: Regenerate as Final makes the keeper); the next live
    picture gets a new live plane"""
    bl_idname = "characterforge.live_keep"
    bl_label = "Keep"

    @classmethod
    def poll(cls, context):
        return live_plane.live_plane(context.scene, context.scene.characterforge.shot or "Shot") is not None

    def run(self, context):
        obj = live_plane.keep(live_plane.live_plane(context.scene, context.scene.characterforge.shot or "Shot"))
        for selected in context.selected_objects:
            selected.select_set(False)
        obj.select_set(True)
        context.view_layer.objects.active = obj
        return f"Kept as '{obj.name}'"


classes = (CHARACTERFORGE_OT_live, CHARACTERFORGE_OT_live_keep)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()
    bpy.app.handlers.load_pre.append(live.on_load)


def unregister():
    live.stop()  # no timer, handler or worker outlives the add-on
    if live.on_load in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(live.on_load)
    _unregister()
