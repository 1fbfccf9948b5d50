"""Operators of the Shot section: the background, the characters composited into it, expressions."""

import bpy

from ..generation import generation
from ..operator_base import StartsJob
from . import shots


class CHARACTERFORGE_OT_make_background(StartsJob, bpy.types.Operator):
    """Generate the shot's background (following the set's depth if asked), or place your own
    picture, as a plane at the far end of the camera's view"""
    bl_idname = "characterforge.make_background"
    bl_label = "Make Background"

    def run(self, context):
        generation.make_background(context)


class CHARACTERFORGE_OT_make_shot(StartsJob, bpy.types.Operator):
    """Generate the shot's characters into its background (in place, or cut out and harmonized),
    each rig with its character's identity and prompt, hands fixed from the hand depth"""
    bl_idname = "characterforge.make_shot"
    bl_label = "Composite Characters"

    def run(self, context):
        shots.make_shot(context)


class CHARACTERFORGE_OT_make_expression(StartsJob, bpy.types.Operator):
    """Redraw the face of the selected result with the chosen expression, keeping the
    character's identity; the original stays as a variant"""
    bl_idname = "characterforge.make_expression"
    bl_label = "Change Expression"

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return super().poll(context) and obj is not None and "characterforge_files" in obj

    def run(self, context):
        shots.make_expression(context, context.active_object)


classes = (CHARACTERFORGE_OT_make_background, CHARACTERFORGE_OT_make_shot, CHARACTERFORGE_OT_make_expression)
register, unregister = bpy.utils.register_classes_factory(classes)
