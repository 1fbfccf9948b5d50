"""The Pose section's Import Pose part: files, a picture, the people in them, the last import's
fit figure and a flip per limb."""

import json

import bpy

from ...core.rig.pose_solver import FLIPS, bone_label
from ..rig import pose_import


class CHARACTERFORGE_PT_pose_import(bpy.types.Panel):
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "CharacterForge"
    bl_parent_id = "CHARACTERFORGE_PT_pose"
    bl_label = "Import Pose"
    bl_idname = "CHARACTERFORGE_PT_pose_import"

    @classmethod
    def poll(cls, context):
        obj = context.active_object
        return obj is not None and obj.type == "ARMATURE" and obj.characterforge.is_rig

    def draw(self, context):
        layout = self.layout
        s = context.scene.characterforge.pose_import
        rig = context.active_object
        layout.operator("characterforge.import_pose", icon="IMPORT", text="Import Pose File(s)…")
        row = layout.row(align=True)
        row.prop(s, "picture", text="")
        row.operator("characterforge.pose_from_picture", icon="IMAGE_DATA", text="From Picture")
        col = layout.column(align=True)
        col.row(align=True).prop(s, "people", expand=True)
        if s.people == "ONE":
            col.prop(s, "person")
        row = col.row(align=True)
        row.prop(s, "keyframe", toggle=True)
        row.prop(s, "face", toggle=True)
        col.prop(s, "min_confidence", slider=True)
        if s.last_people:
            box = layout.box()
            box.label(text="People in the last file (largest first):", icon="COMMUNITY")
            for number, label in enumerate(s.last_people.split("|"), start=1):
                button = box.operator("characterforge.import_pose_person", text=label,
                                      depress=number == s.person and s.people == "ONE")
                button.number = number
        state = rig.characterforge.pose_import
        if not state.fit:
            return
        box = layout.box()
        box.label(text=f"Last import: {state.source}", icon="ARMATURE_DATA")
        for part in state.fit.split("; "):
            box.label(text=part, icon="CHECKMARK")
        for line in (state.left.split(" | ") if state.left else ()):
            box.label(text=line, icon="INFO")
        if pose_import.SOURCE not in rig:
            return
        choices = json.loads(state.choices or "{}")
        box.label(text="Depth of each limb (flip if it points the wrong way):")
        col = box.column(align=True)
        for bit, key in enumerate(FLIPS):
            flipped = bool(state.flips & (1 << bit))
            how = choices.get(key, "as the picture shows")
            button = col.operator("characterforge.flip_limb", text=f"{bone_label(key)}: {how}", depress=flipped,
                                  icon="ARROW_LEFTRIGHT")
            button.limb = key


classes = (CHARACTERFORGE_PT_pose_import,)
register, unregister = bpy.utils.register_classes_factory(classes)
