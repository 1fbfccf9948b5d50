"""Operators of the Shot section: the background, the characters composited into it, expressions,
relighting with the scene's own lights."""

import os

import bpy

from ..generation import generation, job_inputs
from ..maps import controls
from ..operator_base import Reporting, StartsJob
from ..rig import joints
from . import light_rig, relight, shots


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


class CHARACTERFORGE_OT_relight(StartsJob, bpy.types.Operator):
    """Relight the selected result (or the shot's picture) with the scene's own lights as they are
    now: the characters, one character or the whole shot; the original stays as a variant"""
    bl_idname = "characterforge.relight"
    bl_label = "Relight"

    def run(self, context):
        obj = context.active_object
        relight.relight(context, obj if obj is not None and "characterforge_files" in obj else None)


class CHARACTERFORGE_OT_render_light(Reporting, bpy.types.Operator):
    """Render the light reference for the scene camera: the scene's lights on grey clay, as a
    relight sees them (shown as the image 'CF light')"""
    bl_idname = "characterforge.render_light"
    bl_label = "Light Reference"

    def run(self, context):
        s = context.scene.characterforge
        camera = joints.find_camera(context.scene)
        folder = os.path.join(job_inputs.resolve_dir(s.results_dir), s.shot or "Shot", light_rig.LIGHT_DIR)
        manifest = light_rig.render(context, camera, folder)
        controls.show_image("CF light", os.path.join(folder, "light.png"))
        return (f"Light reference in {manifest['render_s']:.1f} s: key light {manifest['key_light']} "
                f"{manifest['words']}")


classes = (CHARACTERFORGE_OT_make_background, CHARACTERFORGE_OT_make_shot, CHARACTERFORGE_OT_make_expression,
           CHARACTERFORGE_OT_relight, CHARACTERFORGE_OT_render_light)
register, unregister = bpy.utils.register_classes_factory(classes)
