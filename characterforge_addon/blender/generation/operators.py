"""Operators of generation and results: generate, cancel (Esc), regenerate, show a variant, open
the results folder."""

import os

import bpy
from bpy.props import BoolProperty, StringProperty

from ...core.errors import UserError
from ..operator_base import StartsJob
from . import generation, job_inputs, jobs, live, planes, regenerate


class CHARACTERFORGE_OT_generate(StartsJob, bpy.types.Operator):
    """Render the control maps and generate the posed character with the backend (runs in the background)"""
    bl_idname = "characterforge.generate"
    bl_label = "Generate"

    def run(self, context):
        if not context.scene.characterforge.prompt.strip():
            raise UserError("Write a prompt first: what does the character look like?")
        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        generation.generate(context, draft=live.generate_drafts(context))  # drafts while Live is on


class CHARACTERFORGE_OT_cancel_job(bpy.types.Operator):
    """Stop the running generation (within one denoising step)"""
    bl_idname = "characterforge.cancel_job"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):  # so Esc reaches the rest of Blender when no job runs
        return bool(jobs.active())

    def execute(self, context):
        if not jobs.cancel(context.scene.characterforge.job_key):
            self.report({"WARNING"}, "No job is running")
            return {"CANCELLED"}
        context.scene.characterforge.job_message = "Canceling…"
        return {"FINISHED"}


class CHARACTERFORGE_OT_regenerate(StartsJob, bpy.types.Operator):
    """Generate the selected result again, with its seed or a new one"""
    bl_idname = "characterforge.regenerate"
    bl_label = "Regenerate"

    new_seed: bpy.props.BoolProperty(name="New seed", default=True)
    final: bpy.props.BoolProperty(name="As final", default=False,
                                  description="A draft made again in full quality, same seed and pose")

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return super().poll(context) and obj is not None and "characterforge_job" in obj

    def run(self, context):
        regenerate.regenerate(context, context.active_object, self.new_seed, self.final)


class CHARACTERFORGE_OT_show_result(bpy.types.Operator):
    """Show this variant of its shot (hiding the others in viewport and render) and select it"""
    bl_idname = "characterforge.show_result"
    bl_label = "Show Result"
    bl_options = {"UNDO", "INTERNAL"}

    name: StringProperty()
    hide: BoolProperty(name="Hide", description="Hide it instead: with every variant hidden, the camera shows the "
                       "3D scene")

    @classmethod
    def description(cls, context, properties):
        return ("Hide this result: with every variant of every layer hidden, the camera shows the 3D scene"
                if properties.hide else cls.__doc__)

    def execute(self, context):
        obj = bpy.data.objects.get(self.name)
        if obj is None:
            self.report({"ERROR"}, f"result '{self.name}' is gone")
            return {"CANCELLED"}
        if self.hide:
            planes.hide_result(obj)
            return {"FINISHED"}
        planes.show_variant(obj)
        for selected in context.selected_objects:
            selected.select_set(False)
        obj.select_set(True)
        context.view_layer.objects.active = obj
        return {"FINISHED"}


class CHARACTERFORGE_OT_open_results(bpy.types.Operator):
    """Open the results folder in the file browser of the system"""
    bl_idname = "characterforge.open_results"
    bl_label = "Open Results Folder"

    def execute(self, context):
        folder = job_inputs.resolve_dir(context.scene.characterforge.results_dir)
        os.makedirs(folder, exist_ok=True)
        bpy.ops.wm.path_open(filepath=folder)
        return {"FINISHED"}


classes = (CHARACTERFORGE_OT_generate, CHARACTERFORGE_OT_cancel_job, CHARACTERFORGE_OT_regenerate,
           CHARACTERFORGE_OT_show_result, CHARACTERFORGE_OT_open_results)
_register, _unregister = bpy.utils.register_classes_factory(classes)
_keymap_items = []


def register():
    _register()
    keyconfig = bpy.context.window_manager.keyconfigs.addon
    if keyconfig is not None:  # None in background mode: no keyboard there
        keymap = keyconfig.keymaps.new(name="Window", space_type="EMPTY")
        _keymap_items.append((keymap, keymap.keymap_items.new("characterforge.cancel_job", "ESC", "PRESS")))


def unregister():
    for keymap, item in _keymap_items:
        keymap.keymap_items.remove(item)
    _keymap_items.clear()
    _unregister()
