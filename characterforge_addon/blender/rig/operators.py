"""Operators of the Pose section: add a rig, pose it, save and load poses, use your own rig."""

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ...core.errors import UserError
from ...core.rig.rig_mapping import auto_mapping
from ..properties import POSE_ITEMS
from . import posing, rig


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


classes = (CHARACTERFORGE_OT_add_rig, CHARACTERFORGE_OT_apply_pose, CHARACTERFORGE_OT_save_pose,
           CHARACTERFORGE_OT_load_pose, CHARACTERFORGE_OT_use_own_rig, CHARACTERFORGE_OT_add_joint_override,
           CHARACTERFORGE_OT_remove_joint_override)
register, unregister = bpy.utils.register_classes_factory(classes)
