"""The sidebar (N-panel) tab: characters, posing, control maps, generation."""

import bpy

import json

from ..characters.subjects import marked_collections
from ..generation import jobs, planes, profile_chooser, view_colours
from ..rig.rig import is_characterforge_rig, rigs_in_scene
from ..sets import set_projection
from ..shots import light_rig
from . import live_panel


class CHARACTERFORGE_UL_joint_overrides(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.prop(item, "joint", text="")
        row.prop_search(item, "bone", data.id_data.data, "bones", text="")
        row.prop(item, "end", text="")


class CHARACTERFORGE_UL_characters(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        layout.label(text=item.name, icon="ERROR" if item.problem else _KIND_ICONS.get(item.kind, "USER"))


_KIND_ICONS = {"humanoid": "USER", "creature": "OUTLINER_OB_ARMATURE", "object": "OUTLINER_OB_MESH"}


class CHARACTERFORGE_UL_faces(bpy.types.UIList):
    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        button = layout.operator("characterforge.toggle_identity_face", text=item.name, emboss=False,
                                 icon="CHECKBOX_HLT" if item.use else "CHECKBOX_DEHLT")
        button.index = index


def _creature_or_object(context):
    """What can be marked as a creature or object character here: the active armature (not an
    OpenPose rig) or mesh (not one of ours), and the active collection (not the scene's)."""
    out = []
    obj = context.active_object
    if obj is not None and obj.type in ("ARMATURE", "MESH") and not obj.characterforge.is_rig and \
            not obj.get("characterforge_role"):
        out.append(obj)
    collection = context.collection
    if collection is not None and collection != context.scene.collection and not collection.name.startswith(
            ("CharacterForge", "Character sheets")):
        out.append(collection)
    return out


class _Sidebar:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "CharacterForge"


class CHARACTERFORGE_PT_pose(_Sidebar, bpy.types.Panel):
    bl_label = "Pose"
    bl_idname = "CHARACTERFORGE_PT_pose"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.characterforge
        col = layout.column(align=True)
        col.prop(settings, "new_rig_preset")
        col.prop(settings, "new_rig_height")
        col.operator("characterforge.add_rig", icon="ARMATURE_DATA")

        obj = context.active_object
        if obj is None or obj.type != "ARMATURE":
            layout.label(text="Select a rig to pose it", icon="INFO")
            return
        box = layout.box()
        box.label(text=obj.name, icon="OUTLINER_OB_ARMATURE")
        if not obj.characterforge.is_rig:
            box.operator("characterforge.use_own_rig", icon="CON_ARMATURE")
            return
        own_rig = not is_characterforge_rig(obj)
        if not own_rig:
            row = box.row(align=True)
            row.prop(settings, "pose", text="")
            row.operator("characterforge.apply_pose", text="Apply")
        row = box.row(align=True)
        row.operator("characterforge.save_pose", icon="EXPORT")
        row.operator("characterforge.load_pose", icon="IMPORT")
        if own_rig:
            box.label(text="Own rig mapping (overrides):")
            row = box.row()
            row.template_list("CHARACTERFORGE_UL_joint_overrides", "", obj.characterforge, "joint_overrides",
                              obj.characterforge, "active_override", rows=3)
            col = row.column(align=True)
            col.operator("characterforge.add_joint_override", icon="ADD", text="")
            col.operator("characterforge.remove_joint_override", icon="REMOVE", text="")


def draw_lora(layout, s, character):
    """The character's LoRA (weight, samples) and how to train one or export its dataset."""
    box = layout.box()
    box.label(text="LoRA", icon="OUTLINER_COLLECTION")
    if character.lora:
        box.label(text=f"{character.lora}: trigger '{character.lora_trigger}'", icon="CHECKMARK")
        box.label(text=character.lora_info)
        row = box.row(align=True)
        row.operator("characterforge.set_lora_weight", text=f"Weight {character.lora_weight:.2f}")
        row.operator("characterforge.show_lora_samples", icon="IMAGE_DATA", text="Samples")
    box.prop(s, "dataset_trigger")
    row = box.row(align=True)
    row.prop(s, "train_steps")
    row.prop(s, "train_rank")
    row = box.row(align=True)
    row.prop(s, "train_resolution")
    row.prop(s, "dataset_flip", text="Mirror")
    box.prop(s, "train_text_encoder")
    box.operator("characterforge.train_lora", icon="PLAY", text="Train LoRA again" if character.lora else "Train LoRA")
    row = box.row(align=True)
    row.prop(s, "dataset_repeats")
    row.operator("characterforge.export_dataset", icon="EXPORT", text="Export dataset")


def draw_paint(layout, context, s, character):
    """Paint the selected model from the character's sheet, and take the paint off again."""
    box = layout.box()
    box.label(text="Paint a model from the sheet", icon="BRUSH_DATA")
    obj = context.active_object
    if obj is None or obj.type not in ("MESH", "ARMATURE"):
        box.label(text="Select the model (a mesh) or its rig", icon="INFO")
    else:
        box.label(text=f"{obj.name}: {'every mesh it drives' if obj.type == 'ARMATURE' else 'this mesh'}",
                  icon="ARMATURE_DATA" if obj.type == "ARMATURE" else "MESH_DATA")
    row = box.row(align=True)
    row.prop(s, "paint_texture_size", text="")
    row.prop(s, "paint_shading", text="")
    row = box.row(align=True)
    row.prop(s, "paint_fill")
    if s.paint_fill == "GENERATE":
        row = box.row(align=True)
        row.prop(s, "paint_fill_size")
        row.prop(s, "paint_max_fills")
    row = box.row(align=True)
    row.operator("characterforge.paint_model", icon="TEXTURE")
    row.operator("characterforge.remove_model_paint", icon="X", text="")


class CHARACTERFORGE_PT_characters(_Sidebar, bpy.types.Panel):
    bl_label = "Characters"
    bl_idname = "CHARACTERFORGE_PT_characters"

    def draw(self, context):
        layout = self.layout
        s = context.scene.characterforge
        profile_chooser.draw(layout, context)
        row = layout.row()
        row.template_list("CHARACTERFORGE_UL_characters", "", s, "characters", s, "active_character", rows=3)
        col = row.column(align=True)
        col.operator("characterforge.refresh_characters", icon="FILE_REFRESH", text="")
        col.operator("characterforge.import_character", icon="IMPORT", text="")
        col.operator("characterforge.export_character", icon="EXPORT", text="")
        col.operator("characterforge.rename_character", icon="GREASEPENCIL", text="")
        if 0 <= s.active_character < len(s.characters):
            character = s.characters[s.active_character]
            if character.problem:
                layout.label(text=character.problem, icon="ERROR")
            elif character.kind != "humanoid":  # no face: its views and its appearance keep it
                layout.label(text=f"A {character.kind}: kept by its look (its views' appearance)",
                             icon=_KIND_ICONS[character.kind])
                draw_lora(layout, s, character)
            else:
                layout.label(text="Identity faces:")
                layout.template_list("CHARACTERFORGE_UL_faces", "", character, "faces", character, "active_face",
                                     rows=2)
                draw_lora(layout, s, character)
                draw_paint(layout, context, s, character)

        box = layout.box()
        box.label(text="New character sheet", icon="IMAGE_DATA")
        box.prop(s, "character_name")
        box.prop(s, "prompt")
        box.prop(s, "sheet_style")
        box.prop(s, "reference_image")
        box.prop(s, "sheet_subject", icon="OBJECT_DATA")
        target = bpy.data.objects.get(s.sheet_subject) if s.sheet_subject else context.active_object
        humanoid = s.sheet_subject not in bpy.data.collections and (
            target is None or (target.type == "ARMATURE" and target.characterforge.is_rig) or (
                target.type not in ("ARMATURE", "MESH")) or target.get("characterforge_role", "").startswith("proxy"))
        col = box.column(align=True)
        if humanoid:
            col.prop(s, "sheet_body_views")
            col.prop(s, "sheet_face_views")
            box.prop(s, "sheet_pose")
        else:  # a creature or an object: shape maps, detail close-ups
            col.prop(s, "sheet_object_views")
            col.prop(s, "sheet_detail_views")
            col.prop(s, "sheet_detail_part")
            row = box.row(align=True)
            row.prop(s, "shape_depth_strength")
            row.prop(s, "normal_strength")
            row.prop(s, "lineart_strength")
        row = box.row(align=True)
        row.prop(s, "sheet_width")
        row.prop(s, "sheet_height")
        row = box.row(align=True)
        row.prop(s, "sheet_spacing")
        row.prop(s, "sheet_use_depth")
        row = box.row(align=True)
        row.prop(s, "sheet_upscale")
        row.prop(s, "sheet_upscale_strength")
        if humanoid:
            row = box.row(align=True)
            row.prop(s, "sheet_face_detail")
            row.prop(s, "sheet_face_strength")
        box.operator("characterforge.make_sheet", icon="RENDER_STILL")


class CHARACTERFORGE_PT_controls(_Sidebar, bpy.types.Panel):
    bl_label = "Control Maps"
    bl_idname = "CHARACTERFORGE_PT_controls"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.characterforge
        layout.prop(settings, "output_dir")
        layout.prop(settings, "drop_occluded")
        layout.prop(settings, "normals")
        camera = context.scene.camera
        layout.label(text=f"Camera: {camera.name}" if camera else "No scene camera", icon="CAMERA_DATA")
        layout.operator("characterforge.render_controls", icon="RENDER_STILL")


class CHARACTERFORGE_PT_generate(_Sidebar, bpy.types.Panel):
    bl_label = "Shot"
    bl_idname = "CHARACTERFORGE_PT_generate"

    def draw(self, context):
        layout = self.layout
        s = context.scene.characterforge
        profile_chooser.draw(layout, context)
        live_panel.draw(layout, context)
        layout.prop(s, "prompt")
        layout.prop(s, "negative_prompt")
        row = layout.row(align=True)
        row.prop(s, "seed")
        row.prop(s, "random_seed", text="", icon="FILE_REFRESH")
        row = layout.row(align=True)
        row.prop(s, "draft", toggle=True, icon="SHADERFX")
        sub = row.row(align=True)
        sub.enabled = not s.draft  # a draft takes the profile's few-step settings
        sub.prop(s, "steps")
        sub.prop(s, "guidance")
        col = layout.column(align=True)
        col.prop(s, "openpose_strength")
        row = col.row(align=True)
        row.prop(s, "use_depth")
        row.prop(s, "depth_strength", text="")
        row = col.row(align=True)
        row.prop(s, "use_hand_depth")
        row.prop(s, "hand_depth_strength", text="")
        row = layout.row(align=True)
        row.prop(s, "use_character")
        if 0 <= s.active_character < len(s.characters):
            row.label(text=s.characters[s.active_character].name, icon="USER")
        row = layout.row(align=True)
        row.prop(s, "reference_image")
        if s.reference_image or s.use_character:
            row.prop(s, "identity_scale", text="")
        layout.prop(s, "shot")
        layout.prop(s, "results_dir")
        box = layout.box()
        box.prop(s, "background_prompt")
        row = box.row(align=True)
        row.prop(s, "background_use_set_depth")
        row.prop(s, "background_sharp")
        box.prop(s, "background_image")
        box.operator("characterforge.make_background", icon="WORLD")
        box = layout.box()
        layers = set_projection.layers(context.scene)
        box.label(text=f"Set: {len(layers)} projection(s)" if layers else "Set: one background for every camera",
                  icon="SCENE_DATA")
        row = box.row(align=True)
        row.operator("characterforge.add_set_dome", icon="MESH_UVSPHERE")
        row.operator("characterforge.project_background", icon="MOD_UVPROJECT")
        row = box.row(align=True)
        row.operator("characterforge.fill_set", icon="BRUSH_DATA")
        row.operator("characterforge.remove_set_projection", icon="X", text="")
        box = layout.box()
        box.label(text="Characters in the shot", icon="COMMUNITY")
        for rig in rigs_in_scene(context.scene):
            col = box.column(align=True)
            col.label(text=rig.name, icon="ARMATURE_DATA")
            col.prop_search(rig.characterforge, "character", s, "characters", icon="USER")
            col.prop(rig.characterforge, "prompt")
        # a creature or an object plays a character too: the selected armature or mesh, the active collection
        for thing in _creature_or_object(context):
            col = box.column(align=True)
            col.prop(thing.characterforge, "is_character", text=f"{thing.name} is a character",
                     icon="OUTLINER_COLLECTION" if isinstance(thing, bpy.types.Collection) else "OBJECT_DATA")
            if thing.characterforge.is_character:
                col.prop_search(thing.characterforge, "character", s, "characters", icon="USER")
                col.prop(thing.characterforge, "prompt")
        row = box.row(align=True)
        row.prop(s, "appearance_scale")
        row.prop(s, "normal_strength")
        row.prop(s, "lineart_strength")
        box.prop(s, "composite_mode", expand=True)
        row = box.row(align=True)
        row.prop(s, "composite_grow")
        row.prop(s, "composite_feather")
        row = box.row(align=True)
        row.prop(s, "character_strength")
        if s.composite_mode == "CUTOUT":
            row.prop(s, "harmonize")
        row = box.row(align=True)
        row.prop(s, "fix_hands")
        sub = row.row(align=True)
        sub.enabled = s.fix_hands
        sub.prop(s, "hand_fix_strength", text="")
        row = box.row(align=True)
        row.prop(s, "relight_composite", icon="LIGHT_SUN")
        row.operator("characterforge.make_shot", icon="IMAGE_RGB_ALPHA")
        box = layout.box()
        box.label(text=f"Animate frames {context.scene.frame_start}-{context.scene.frame_end}", icon="RENDER_ANIMATION")
        box.prop(s, "video_profile")
        row = box.row(align=True)
        row.prop(s, "animation_mode", expand=True)
        row = box.row(align=True)
        row.prop(s, "animation_control", text="")
        row.prop(s, "animation_strength")
        row = box.row(align=True)
        row.prop(s, "animation_height")
        row.prop(s, "animation_segment")
        row.prop(s, "animation_carry")
        row = box.row(align=True)
        row.prop(s, "animation_video")
        row.operator("characterforge.animate_shot", icon="RENDER_ANIMATION")
        box = layout.box()
        box.label(text="Expression of the selected result", icon="MONKEY")
        box.prop(s, "expression")
        if s.expression == "CUSTOM":
            box.prop(s, "expression_custom")
        row = box.row(align=True)
        row.prop_search(s, "expression_rig", context.scene, "objects")
        row.prop(s, "expression_strength")
        box.operator("characterforge.make_expression", icon="MONKEY")
        draw_relight(layout, context, s)
        if s.job_state in ("starting", "pending", "running"):
            layout.progress(factor=s.job_progress, type="BAR", text=s.job_message)
            preview = bpy.data.images.get(jobs.PREVIEW_IMAGE)
            if preview is not None:
                layout.template_icon(icon_value=preview.preview_ensure().icon_id, scale=6)
            layout.operator("characterforge.cancel_job", icon="CANCEL")
        else:
            layout.operator("characterforge.generate", icon="RENDER_STILL")
            if s.job_message:
                icon = "ERROR" if s.job_state == "failed" else "INFO"
                layout.label(text=s.job_message, icon=icon)
        row = layout.row(align=True)
        row.prop(s, "retry")
        sub = row.row(align=True)
        sub.enabled = s.retry
        sub.prop(s, "min_identity", text="")
        sub.prop(s, "max_tries")
        obj = context.active_object
        if obj is not None and "characterforge_job" in obj:
            for line in planes.score_lines(obj):
                layout.label(text=line, icon="CHECKMARK" if "unavailable" not in line else "INFO")
            if "characterforge_relight" in obj:
                relit = json.loads(obj["characterforge_relight"])
                layout.label(text=light_rig.summary(relit) or "Relit", icon="LIGHT_SUN")
            row = layout.row(align=True)
            row.operator("characterforge.regenerate", icon="FILE_REFRESH")
            if obj.get(planes.DRAFT):
                layout.label(text="A draft: quick and rough", icon="SHADERFX")
                final = row.operator("characterforge.regenerate", text="Regenerate as Final", icon="CHECKMARK")
                final.new_seed, final.final = False, True
        layout.operator("characterforge.stop_backend", icon="QUIT")


def draw_relight(layout, context, s):
    """Relighting with the scene's own lights: what is relit, how much, the light reference."""
    box = layout.box()
    box.label(text="Relight with the scene's lights", icon="LIGHT_SUN")
    box.prop(s, "relight_target", expand=True)
    if s.relight_target == "CHARACTER":
        # any name goes: a collection character is not among the scene's objects (a search
        # callback would list it, but Blender 4.2 crashes at exit once one is registered)
        box.prop_search(s, "relight_rig", context.scene, "objects", results_are_suggestions=True)
        collections = [c.name for c in marked_collections(context.scene)]
        if collections:
            box.label(text=f"Collections: {', '.join(collections)} (type the name, or select a part)",
                      icon="OUTLINER_COLLECTION")
    row = box.row(align=True)
    row.prop(s, "relight_strength")
    row.prop(s, "relight_shading")
    box.prop(s, "relight_margin")
    box.prop(s, "relight_prompt")
    row = box.row(align=True)
    row.prop(s, "light_samples")
    row.prop(s, "light_scale")
    row = box.row(align=True)
    row.operator("characterforge.render_light", icon="LIGHT")
    row.operator("characterforge.relight", icon="LIGHT_SUN")


class CHARACTERFORGE_PT_results(_Sidebar, bpy.types.Panel):
    bl_label = "Results"
    bl_idname = "CHARACTERFORGE_PT_results"

    def draw(self, context):
        layout = self.layout
        shots = bpy.data.collections.get(planes.SHOTS_COLLECTION)
        if shots is None or not shots.children:
            layout.label(text="Results appear here after Generate", icon="INFO")
        for shot in (shots.children if shots else ()):
            box = layout.box()
            box.label(text=shot.name, icon="OUTLINER_COLLECTION")
            for obj in shot.objects:
                row = box.row(align=True)
                shown = not obj.hide_render
                button = row.operator("characterforge.show_result", text=obj.name,
                                      icon="HIDE_OFF" if shown else "HIDE_ON", depress=obj == context.active_object)
                button.name = obj.name
                if shown:
                    hide = row.operator("characterforge.show_result", text="", icon="HIDE_ON")
                    hide.name, hide.hide = obj.name, True
                scores = planes.score_lines(obj)
                row.label(text=scores[0] if scores else "")
        _, off = view_colours.picture_space(context.scene)
        if off:  # the view transform (or a look) changes what the camera shows of the pictures
            layout.label(text=f"Colours: {off}", icon="INFO")
        layout.operator("characterforge.open_results", icon="FILE_FOLDER")


def status_bar(self, context):
    """The running job in Blender's status bar, wherever the sidebar is."""
    s = context.scene.characterforge
    if s.job_state in ("starting", "pending", "running"):
        self.layout.label(text=f"CharacterForge: {s.job_message}", icon="RENDER_STILL")


classes = (CHARACTERFORGE_UL_joint_overrides, CHARACTERFORGE_UL_characters, CHARACTERFORGE_UL_faces,
           CHARACTERFORGE_PT_characters, CHARACTERFORGE_PT_pose, CHARACTERFORGE_PT_controls, CHARACTERFORGE_PT_generate,
           CHARACTERFORGE_PT_results)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()
    bpy.types.STATUSBAR_HT_header.append(status_bar)


def unregister():
    bpy.types.STATUSBAR_HT_header.remove(status_bar)
    _unregister()
