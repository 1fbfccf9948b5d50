"""Operators of the Characters section: new sheet, list, rename, zip import/export, LoRA dataset,
LoRA training, its weight and samples, a model painted from the sheet."""

import os

import bpy
from bpy.props import FloatProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ...core.characters import character_lora, identity_pack, lora_dataset
from ...core.errors import UserError
from ..generation import job_inputs
from ..operator_base import Reporting, StartsJob
from . import characters, model_paint


class CHARACTERFORGE_OT_make_sheet(StartsJob, bpy.types.Operator):
    """Render the rig's character sheet maps and generate the sheet, its upscale and fixed faces;
    the result becomes an identity pack"""
    bl_idname = "characterforge.make_sheet"
    bl_label = "Make Character Sheet"

    def run(self, context):
        s = context.scene.characterforge
        if not s.prompt.strip() and not s.reference_image:
            raise UserError("write a prompt or choose a reference picture: what does the character look like?")
        if context.mode != "OBJECT":
            bpy.ops.object.mode_set(mode="OBJECT")
        advice = characters.make_sheet(context)
        if advice:
            self.report({"WARNING"}, advice)
        return None


class CHARACTERFORGE_OT_refresh_characters(Reporting, bpy.types.Operator):
    """Read the characters folder again"""
    bl_idname = "characterforge.refresh_characters"
    bl_label = "Refresh Characters"

    def run(self, context):
        characters.refresh(context.scene)
        return None


class CHARACTERFORGE_OT_rename_character(Reporting, bpy.types.Operator):
    """Rename the selected character (its folder and its pack)"""
    bl_idname = "characterforge.rename_character"
    bl_label = "Rename Character"

    new_name: StringProperty(name="New name")

    def invoke(self, context, event):
        self.new_name = job_inputs.active_pack(context.scene).name
        return context.window_manager.invoke_props_dialog(self)

    def run(self, context):
        folder = identity_pack.rename_pack(job_inputs.active_pack(context.scene).folder, self.new_name)
        characters.refresh(context.scene)
        return f"Renamed to {os.path.basename(folder)}"


class CHARACTERFORGE_OT_toggle_identity_face(Reporting, bpy.types.Operator):
    """Use this face crop as an identity reference, or stop using it"""
    bl_idname = "characterforge.toggle_identity_face"
    bl_label = "Identity Face"
    bl_options = {"INTERNAL"}

    index: IntProperty()

    def run(self, context):
        characters.toggle_identity_face(context.scene, self.index)
        return None


class CHARACTERFORGE_OT_export_character(Reporting, bpy.types.Operator, ExportHelper):
    """Save the selected character as a zip, to share or back up"""
    bl_idname = "characterforge.export_character"
    bl_label = "Export Character"
    filename_ext = ".zip"
    filter_glob: StringProperty(default="*.zip", options={"HIDDEN"})

    def run(self, context):
        path = identity_pack.export_zip(job_inputs.active_pack(context.scene).folder, self.filepath)
        return f"Saved {path}"


class CHARACTERFORGE_OT_import_character(Reporting, bpy.types.Operator, ImportHelper):
    """Add a character from a zip exported by CharacterForge"""
    bl_idname = "characterforge.import_character"
    bl_label = "Import Character"
    filename_ext = ".zip"
    filter_glob: StringProperty(default="*.zip", options={"HIDDEN"})

    def run(self, context):
        folder = identity_pack.import_zip(self.filepath, characters.packs_root(context))
        characters.refresh(context.scene)
        return f"Imported {os.path.basename(folder)}"


class CHARACTERFORGE_OT_export_dataset(Reporting, bpy.types.Operator):
    """Write the selected character's views and faces with captions as a LoRA training set
    (kohya_ss and diffusers layouts)"""
    bl_idname = "characterforge.export_dataset"
    bl_label = "Export LoRA Dataset"

    directory: StringProperty(subtype="DIR_PATH")

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def run(self, context):
        s = context.scene.characterforge
        pack = job_inputs.active_pack(context.scene)
        trigger = s.dataset_trigger or character_lora.default_trigger(pack.name)
        summary = lora_dataset.export(pack.folder, bpy.path.abspath(self.directory), trigger,
                                      repeats=s.dataset_repeats, flip=s.dataset_flip)
        return (f"{summary['images']} images with captions ({summary['mirrored']} mirrored), smallest side "
                f"{summary['min_side']} px, in {self.directory}")


class CHARACTERFORGE_OT_train_lora(StartsJob, bpy.types.Operator):
    """Train a LoRA of the selected character from its views and faces, in the backend; it goes
    into the character's pack and every later job with the character uses it"""
    bl_idname = "characterforge.train_lora"
    bl_label = "Train LoRA"

    def run(self, context):
        characters.train_lora(context)
        return None


class CHARACTERFORGE_OT_set_lora_weight(Reporting, bpy.types.Operator):
    """How strongly the selected character's LoRA acts in its jobs (0: off); kept in its pack"""
    bl_idname = "characterforge.set_lora_weight"
    bl_label = "LoRA Weight"

    weight: FloatProperty(name="Weight", default=character_lora.DEFAULT_WEIGHT, min=0.0, max=2.0)

    def invoke(self, context, event):
        self.weight = job_inputs.active_pack(context.scene).lora_weight
        return context.window_manager.invoke_props_dialog(self)

    def run(self, context):
        pack = job_inputs.active_pack(context.scene)
        character_lora.set_weight(pack.folder, self.weight)
        pack.lora_weight = self.weight
        return f"{pack.name}'s LoRA acts at {self.weight:.2f}"


class CHARACTERFORGE_OT_show_lora_samples(Reporting, bpy.types.Operator):
    """Load the selected character's LoRA samples as images (the last one in the preview)"""
    bl_idname = "characterforge.show_lora_samples"
    bl_label = "Show LoRA Samples"

    def run(self, context):
        pack = job_inputs.active_pack(context.scene)
        names = characters.show_lora_samples(context.scene, pack.folder)
        return f"{len(names)} sample picture(s) of {pack.name}'s LoRA in the Image Editor"


class CHARACTERFORGE_OT_paint_model(StartsJob, bpy.types.Operator):
    """Paint the selected model (a mesh, or every mesh its rig drives) from the selected character's
    sheet: its views projected onto the model in the sheet's pose and baked into a texture in the
    character's pack; holes no view reached are filled as the Holes setting says"""
    bl_idname = "characterforge.paint_model"
    bl_label = "Paint Model from Sheet"

    def run(self, context):
        s = context.scene.characterforge
        pack = job_inputs.active_pack(context.scene)
        if pack.problem:
            raise UserError(f"character {pack.name!r} cannot be used: {pack.problem}")
        _, message = model_paint.paint(context, pack.folder, context.active_object, size=int(s.paint_texture_size),
                                       shading=s.paint_shading, fill=s.paint_fill, fill_size=s.paint_fill_size,
                                       max_fills=s.paint_max_fills)
        return message


class CHARACTERFORGE_OT_remove_model_paint(Reporting, bpy.types.Operator):
    """Give the selected painted model (or its rig's meshes) its own materials back; the paint
    material and a UV map made for it go, the texture stays in the pack"""
    bl_idname = "characterforge.remove_model_paint"
    bl_label = "Remove Model Paint"

    def run(self, context):
        names = model_paint.remove(context.scene, context.active_object)
        return f"{', '.join(names)}: own materials back"


classes = (CHARACTERFORGE_OT_make_sheet, CHARACTERFORGE_OT_refresh_characters, CHARACTERFORGE_OT_rename_character,
           CHARACTERFORGE_OT_toggle_identity_face, CHARACTERFORGE_OT_export_character,
           CHARACTERFORGE_OT_import_character, CHARACTERFORGE_OT_export_dataset, CHARACTERFORGE_OT_train_lora,
           CHARACTERFORGE_OT_set_lora_weight, CHARACTERFORGE_OT_show_lora_samples, CHARACTERFORGE_OT_paint_model,
           CHARACTERFORGE_OT_remove_model_paint)
register, unregister = bpy.utils.register_classes_factory(classes)
