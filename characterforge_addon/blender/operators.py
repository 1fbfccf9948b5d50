"""Operators: each checks what it needs, reports a clear error, and hands off to plain functions."""

import os

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..core.errors import UserError
from ..core.rig_mapping import auto_mapping
from . import backend_process, controls, generation, job_inputs, jobs, planes, posing, regenerate, rig, shots
from .operator_base import StartsJob
from .properties import POSE_ITEMS


def _active_rig(context):
    obj = context.active_object
    if obj is None or obj.type != "ARMATURE":
        return None
    return obj


class _RigOperator:
    @classmethod
    def poll(cls, context):
        return _active_rig(context) is not None


class CHARACTERFORGE_OT_add_rig(bpy.types.Operator):
    """Add a posable OpenPose rig (body, hands, face) with a proxy body at the 3D cursor"""
    bl_idname = "characterforge.add_rig"
    bl_label = "Add OpenPose Rig"
    bl_options = {"REGISTER", "UNDO"}

    name: StringProperty(name="Name", default="Character")

    def execute(self, context):
        settings = context.scene.characterforge
        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        obj = rig.add_rig(context, self.name, settings.new_rig_height, settings.new_rig_preset,
                          context.scene.cursor.location.copy())
        posing.apply_library_pose(context, obj, "A_POSE")
        for other in context.selected_objects:
            other.select_set(False)
        obj.select_set(True)
        context.view_layer.objects.active = obj
        return {"FINISHED"}


class CHARACTERFORGE_OT_apply_pose(_RigOperator, bpy.types.Operator):
    """Pose the active CharacterForge rig with a pose from the library"""
    bl_idname = "characterforge.apply_pose"
    bl_label = "Apply Pose"
    bl_options = {"REGISTER", "UNDO"}

    pose: EnumProperty(name="Pose", items=POSE_ITEMS)

    def invoke(self, context, event):
        self.pose = context.scene.characterforge.pose
        return self.execute(context)

    def execute(self, context):
        try:
            posing.apply_library_pose(context, _active_rig(context), self.pose)
        except UserError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}


class CHARACTERFORGE_OT_save_pose(_RigOperator, bpy.types.Operator, ExportHelper):
    """Save the active armature's pose as a JSON file"""
    bl_idname = "characterforge.save_pose"
    bl_label = "Save Pose"
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        try:
            posing.save_pose(_active_rig(context), self.filepath)
        except UserError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Pose saved to {self.filepath}")
        return {"FINISHED"}


class CHARACTERFORGE_OT_load_pose(_RigOperator, bpy.types.Operator, ImportHelper):
    """Load a pose saved as JSON onto the active armature"""
    bl_idname = "characterforge.load_pose"
    bl_label = "Load Pose"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context):
        try:
            skipped = posing.load_pose(context, _active_rig(context), self.filepath)
        except UserError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if skipped:
            self.report({"WARNING"}, f"{len(skipped)} bones of the pose are not in this rig: {', '.join(skipped[:5])}")
        return {"FINISHED"}


class CHARACTERFORGE_OT_use_own_rig(_RigOperator, bpy.types.Operator):
    """Use the active armature (Rigify, Mixamo or any rig) as an OpenPose character; joints are
    mapped automatically where the bone names are known, and can be overridden per joint"""
    bl_idname = "characterforge.use_own_rig"
    bl_label = "Use as OpenPose Rig"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        obj = _active_rig(context)
        convention, mapping = auto_mapping([b.name for b in obj.data.bones])
        obj.characterforge.is_rig = True
        if convention is None:
            self.report({"WARNING"}, f"'{obj.name}': bone names are neither Rigify nor Mixamo; map the joints by hand")
        else:
            self.report({"INFO"}, f"'{obj.name}': {convention.title()} rig, {len(mapping)} joints mapped")
        return {"FINISHED"}


class CHARACTERFORGE_OT_add_joint_override(_RigOperator, bpy.types.Operator):
    """Map one OpenPose joint to a bone of your own, by hand"""
    bl_idname = "characterforge.add_joint_override"
    bl_label = "Add Joint Mapping"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = _active_rig(context).characterforge
        settings.joint_overrides.add()
        settings.active_override = len(settings.joint_overrides) - 1
        return {"FINISHED"}


class CHARACTERFORGE_OT_remove_joint_override(_RigOperator, bpy.types.Operator):
    """Remove the selected manual joint mapping"""
    bl_idname = "characterforge.remove_joint_override"
    bl_label = "Remove Joint Mapping"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        settings = _active_rig(context).characterforge
        if 0 <= settings.active_override < len(settings.joint_overrides):
            settings.joint_overrides.remove(settings.active_override)
            settings.active_override = max(0, settings.active_override - 1)
        return {"FINISHED"}


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


class CHARACTERFORGE_OT_generate(StartsJob, bpy.types.Operator):
    """Render the control maps and generate the posed character with the backend (runs in the background)"""
    bl_idname = "characterforge.generate"
    bl_label = "Generate"

    def run(self, context):
        if not context.scene.characterforge.prompt.strip():
            raise UserError("Write a prompt first: what does the character look like?")
        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        generation.generate(context)


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


class CHARACTERFORGE_OT_stop_backend(bpy.types.Operator):
    """Stop the bundled backend (frees its GPU memory)"""
    bl_idname = "characterforge.stop_backend"
    bl_label = "Stop Backend"

    def execute(self, context):
        self.report({"INFO"}, "Backend stopped" if backend_process.stop() else "The backend was not running")
        return {"FINISHED"}


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


classes = (
    CHARACTERFORGE_OT_add_rig, CHARACTERFORGE_OT_apply_pose, CHARACTERFORGE_OT_save_pose,
    CHARACTERFORGE_OT_load_pose, CHARACTERFORGE_OT_use_own_rig, CHARACTERFORGE_OT_add_joint_override,
    CHARACTERFORGE_OT_remove_joint_override, CHARACTERFORGE_OT_render_controls, CHARACTERFORGE_OT_generate,
    CHARACTERFORGE_OT_cancel_job, CHARACTERFORGE_OT_regenerate, CHARACTERFORGE_OT_stop_backend,
    CHARACTERFORGE_OT_show_result, CHARACTERFORGE_OT_open_results, CHARACTERFORGE_OT_make_background,
    CHARACTERFORGE_OT_make_shot, CHARACTERFORGE_OT_make_expression,
)
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
