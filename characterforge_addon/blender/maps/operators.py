"""Operators of the Control Maps section."""

import os

import bpy

from ...core.errors import UserError
from . import controls


class CHARACTERFORGE_OT_render_controls(bpy.types.Operator):
    """Render the OpenPose skeleton, depth, hand depth, normals and character masks for the scene camera"""
    bl_idname = "characterforge.render_controls"
    bl_label = "Render Control Maps"

    def execute(self, context):
        settings = context.scene.characterforge
        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        try:
            manifest = controls.render_controls(context, settings.output_dir, drop_occluded=settings.drop_occluded,
                                               normals=settings.normals)
        except UserError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        folder = bpy.path.abspath(settings.output_dir)
        self.report({"INFO"}, f"{len(manifest['files'])} control maps written to {os.path.normpath(folder)}")
        return {"FINISHED"}


classes = (CHARACTERFORGE_OT_render_controls,)
register, unregister = bpy.utils.register_classes_factory(classes)
