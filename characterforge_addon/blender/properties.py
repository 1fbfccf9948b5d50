"""All add-on settings: one PropertyGroup on the Scene, one on each Object (rigs, creatures,
objects) and one on each Collection (a collection playing a character)."""

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..core.characters import model_paint, sheet_layout
from ..core.rig import poses, rig_layout
from ..core.rig.rig_mapping import joint_keys
from .rig.pose_import_settings import CHARACTERFORGE_PG_pose_import, CHARACTERFORGE_PG_rig_pose
from .rig.pose_import_settings import classes as pose_import_classes

PRESET_ITEMS = [(key, label, f"{label} proportions") for key, label in rig_layout.PRESET_NAMES.items()]
POSE_ITEMS = [(key, label, desc) for key, (label, desc) in poses.LIBRARY.items()]
JOINT_ITEMS = [(key, key, "") for key in joint_keys()]


class CHARACTERFORGE_PG_joint_map(bpy.types.PropertyGroup):
    # Static items: bpy 4.2 crashes at exit when a dynamic-items enum was registered.
    joint: EnumProperty(name="Joint", items=JOINT_ITEMS, description="OpenPose joint")
    bone: StringProperty(name="Bone", description="Bone of this armature carrying the joint; empty to leave it out")
    end: EnumProperty(name="End", items=[("head", "Head", "The bone's head"), ("tail", "Tail", "The bone's tail")])


class CHARACTERFORGE_PG_rig(bpy.types.PropertyGroup):
    is_rig: BoolProperty(name="OpenPose rig", description="This armature is a character for control maps")
    preset: EnumProperty(name="Proportions", items=PRESET_ITEMS, default="ADULT")
    height: FloatProperty(name="Height", default=1.75, min=0.05, soft_max=3.0, unit="LENGTH")
    joint_overrides: CollectionProperty(type=CHARACTERFORGE_PG_joint_map)
    active_override: bpy.props.IntProperty()
    # In shots: who this rig is (an identity pack by name) and what it wears
    character: StringProperty(name="Character", description="The identity pack this rig plays in shots; empty: "
                              "none (the selected character when 'Selected character' is on and it is the only rig)")
    prompt: StringProperty(name="Prompt", description="What this character looks like in shots; empty: the "
                           "Shot's prompt")
    pose_import: PointerProperty(type=CHARACTERFORGE_PG_rig_pose)  # its last imported pose: fit, flips
    # A creature (an armature that is no OpenPose rig) or an object (a mesh) playing a character
    is_character: BoolProperty(name="Character", description="This creature or object is a character in shots: "
                               "its own mask, depth, normal and line-art maps, identity and prompt")


class CHARACTERFORGE_PG_collection(bpy.types.PropertyGroup):
    """A collection of meshes playing one character (a prop, a vehicle) in shots."""
    is_character: BoolProperty(name="Character", description="This collection is one character in shots (a prop, "
                               "a vehicle): its own mask, maps, identity and prompt")
    character: StringProperty(name="Character", description="The identity pack it plays in shots; empty: none")
    prompt: StringProperty(name="Prompt", description="What it looks like in shots; empty: the Shot's prompt")


# No update callbacks here: with any Python property callback registered, the bpy 4.2 module
# crashes at exit. Changes are written by operators instead.
class CHARACTERFORGE_PG_face(bpy.types.PropertyGroup):
    use: BoolProperty(name="Identity", default=True,
                      description="Use this face crop as an identity reference in later shots")


class CHARACTERFORGE_PG_character(bpy.types.PropertyGroup):
    # name: the pack's folder name
    folder: StringProperty(name="Folder", subtype="DIR_PATH")
    problem: StringProperty(name="Problem", description="Why the pack cannot be used, if it cannot")
    kind: StringProperty(name="Kind", default="humanoid", description="humanoid, creature or object")
    faces: CollectionProperty(type=CHARACTERFORGE_PG_face)
    active_face: IntProperty()
    # its trained LoRA, as the pack records it (changed by operators, written into the pack)
    lora: StringProperty(name="LoRA", description="The character's trained LoRA; empty: none yet")
    lora_trigger: StringProperty(name="Trigger word")
    lora_weight: FloatProperty(name="LoRA weight", min=0.0, max=2.0)
    lora_info: StringProperty(name="LoRA", description="How it was trained")


class CHARACTERFORGE_PG_scene(bpy.types.PropertyGroup):
    profile: StringProperty(name="Profile", description="The model profile this .blend's sheets, posed characters, "
                            "backgrounds and shots use; empty: the preferences' profile")
    new_rig_preset: EnumProperty(name="Proportions", items=PRESET_ITEMS, default="ADULT")
    new_rig_height: FloatProperty(name="Height", default=1.75, min=0.05, soft_max=3.0, unit="LENGTH",
                                  description="Height of a new rig, crown to floor")
    pose: EnumProperty(name="Pose", items=POSE_ITEMS, default="A_POSE")
    output_dir: StringProperty(name="Output", subtype="DIR_PATH", default="//characterforge/controls",
                               description="Folder for control maps (// is the .blend file's folder)")
    normals: BoolProperty(name="Normal map", default=False,
                          description="Also write normal.png, derived from the depth render (about 0.1 s at 1024²)")
    drop_occluded: BoolProperty(name="Drop hidden joints", default=False,
                                description="Leave out joints hidden behind the body, so ControlNet keeps depth order")
    pose_import: PointerProperty(type=CHARACTERFORGE_PG_pose_import)  # Import Pose and Pose from Picture

    # Generation
    results_dir: StringProperty(name="Results", subtype="DIR_PATH", default="//characterforge/results",
                                description="Folder for generated images (// is the .blend file's folder)")
    shot: StringProperty(name="Shot", default="Shot", description="Results go into a collection of this name")
    prompt: StringProperty(name="Prompt", default="", description="What the character looks like")
    negative_prompt: StringProperty(name="Negative", default="blurry, deformed hands, extra fingers, lowres")
    seed: IntProperty(name="Seed", default=0, min=0)
    random_seed: BoolProperty(name="New seed each time", default=True)
    steps: IntProperty(name="Steps", default=30, min=1, max=150)
    guidance: FloatProperty(name="Guidance", default=6.0, min=0.0, max=30.0)
    draft: BoolProperty(name="Draft", default=False,
                        description="A quick few-step draft to pose against (the profile's draft LoRA and settings "
                        "replace Steps and Guidance): labelled '(draft)'; Regenerate as Final makes the keeper")
    openpose_strength: FloatProperty(name="Pose", default=1.0, min=0.0, max=2.0)
    use_depth: BoolProperty(name="Depth", default=True, description="Also condition on the scene depth")
    depth_strength: FloatProperty(name="Depth strength", default=0.4, min=0.0, max=2.0)
    use_hand_depth: BoolProperty(name="Hand depth", default=True, description="Condition the hands on their depth")
    hand_depth_strength: FloatProperty(name="Hand strength", default=0.6, min=0.0, max=2.0)
    reference_image: StringProperty(name="Reference", subtype="FILE_PATH", default="",
                                    description="A picture of the character to keep (IP-Adapter plus-face); empty: none")
    use_character: BoolProperty(name="Selected character", default=False,
                                description="Keep the identity of the character selected in Characters (its "
                                "identity face crops through IP-Adapter plus-face; its embedding for the score)")
    identity_scale: FloatProperty(name="Likeness", default=0.6, min=0.0, max=1.5,
                                  description="How strongly the reference picture steers the result")

    retry: BoolProperty(name="Retry below", default=False,
                        description="Generate again with a new seed while the identity score is below the minimum")
    min_identity: FloatProperty(name="Minimum identity", default=0.5, min=0.0, max=1.0)
    max_tries: IntProperty(name="Tries", default=3, min=1, max=5)

    background_prompt: StringProperty(name="Background", default="",
                                      description="What the set looks like (the characters are not part of it)")
    background_use_set_depth: BoolProperty(name="Follow the set", default=True,
                                           description="Guide the background by the depth of the scene's own "
                                           "geometry (characters left out), so it matches the 3D layout and camera")
    background_sharp: BoolProperty(name="Sharp", default=True,
                                   description="Avoid a blurry background: prompts against shallow depth of "
                                   "field, and a detail pass")
    background_image: StringProperty(name="Background picture", subtype="FILE_PATH", default="",
                                     description="Your own background instead of a generated one, fitted to the "
                                     "camera frame")

    # Compositing the characters into the background, expressions
    composite_mode: EnumProperty(name="Composite", default="INPAINT", items=[
        ("INPAINT", "In place", "Generate the characters inside the background (their masks, grown): light and "
         "colour match"),
        ("CUTOUT", "Cut-out", "Generate the characters apart, cut them out by their masks, paste them and "
         "harmonize; also gives a cut-out plane at the rig's depth")])
    composite_grow: IntProperty(name="Grow", default=24, min=0, max=256, subtype="PIXEL",
                                description="How far around the rig's silhouette the character may be drawn")
    composite_feather: IntProperty(name="Feather", default=12, min=0, max=128, subtype="PIXEL")
    character_strength: FloatProperty(name="Own prompts", default=0.5, min=0.0, max=1.0,
                                      description="With several characters: how strongly each is redrawn with "
                                      "its own prompt and identity in its own mask (0: not)")
    harmonize: FloatProperty(name="Harmonize", default=0.3, min=0.0, max=1.0,
                             description="Cut-out: how much the pasted characters are redrawn to match the light")
    fix_hands: BoolProperty(name="Fix hands", default=True,
                            description="Redraw each hand at full resolution from the hand depth map")
    hand_fix_strength: FloatProperty(name="Hand fix", default=0.45, min=0.0, max=1.0)
    expression: EnumProperty(name="Expression", default="HAPPY", items=[
        ("HAPPY", "Happy", ""), ("SAD", "Sad", ""), ("ANGRY", "Angry", ""), ("SURPRISED", "Surprised", ""),
        ("SCARED", "Scared", ""), ("CUSTOM", "Custom", "Your own words")])
    expression_custom: StringProperty(name="Words", default="", description="The expression in your words, e.g. "
                                      "'smirking, one eyebrow raised'")
    expression_strength: FloatProperty(name="Strength", default=0.6, min=0.05, max=1.0)
    expression_rig: StringProperty(name="Whose face", default="",
                                   description="The rig whose face changes; empty: the first rig showing its face")

    # Animated shots: a video model driven by the rig (the scene's frame range, segment by segment)
    video_profile: StringProperty(name="Video profile", default="wan-vace",
                                  description="The video model profile Animate Shot uses (wan-vace, wan-animate, "
                                  "or your own)")
    animation_height: IntProperty(name="Height", default=480, min=64, max=1280, step=16, subtype="PIXEL",
                                  description="The clip's height in pixels (a multiple of 16; the width follows the "
                                  "camera's aspect): 480 for Wan2.1-VACE 1.3B, 720 for Wan2.2-Animate")
    animation_segment: IntProperty(name="Segment", default=0, min=0, max=129,
                                   description="Frames a segment holds (0: the model's window, 81 or 77); a "
                                   "longer shot is made in overlapping segments")
    animation_carry: IntProperty(name="Carry over", default=0, min=0, max=32,
                                 description="Frames each segment takes over from the one before, so there is no "
                                 "seam (0: the model's default, 5; Wan-Animate carries 1 or 5)")
    animation_mode: EnumProperty(name="Set", default="REPLACE", items=[
        ("REPLACE", "Keep the set", "The painted set's video (as the moving camera sees it) is kept outside the "
         "characters' masks; the characters are drawn in"),
        ("ANIMATE", "Draw all", "The model draws the whole frame (the set from the prompt)")])
    animation_control: EnumProperty(name="Motion from", default="OPENPOSE", items=[
        ("OPENPOSE", "Pose", "The rig's OpenPose video (body, hands, face) steers the motion"),
        ("DEPTH", "Depth", "The rig's depth video steers it (Wan2.1-VACE only)")])
    animation_strength: FloatProperty(name="Control", default=1.0, min=0.0, max=2.0,
                                      description="How strongly the control video steers the clip")
    animation_video: BoolProperty(name="MP4", default=True, description="Also write sequence.mp4 (H.264)")
    # Relighting with the scene's own lights (the light reference: maps.light)
    relight_target: EnumProperty(name="Relight", default="CHARACTERS", items=[
        ("CHARACTERS", "Characters", "Relight inside every character's mask (grown by Grow); the rest stays as it is"),
        ("CHARACTER", "Selected character", "Relight inside one character's mask (Whose light)"),
        ("WHOLE", "Whole shot", "Relight the whole picture: set and characters")])
    relight_rig: StringProperty(name="Whose light", default="",
                                description="The character (rig, creature, object or collection) relit with Selected "
                                "character; empty: the active one")
    relight_strength: FloatProperty(name="Redraw", default=0.35, min=0.05, max=1.0,
                                    description="How much the re-shaded picture is redrawn (SDXL; an edit model "
                                    "decides for itself)")
    relight_shading: FloatProperty(name="Shading", default=1.0, min=0.0, max=1.0,
                                   description="How far the picture's own shading is replaced by the scene's light "
                                   "before the redraw")
    relight_margin: FloatProperty(name="Identity margin", default=0.1, min=0.0, max=1.0,
                                  description="Say so when a character's identity score falls by more than this")
    relight_prompt: StringProperty(name="Light words", default="",
                                   description="Words about the light added to the prompt, e.g. 'warm evening light'")
    relight_composite: BoolProperty(name="Relight", default=False,
                                    description="Composite Characters also relights the composite with the scene's "
                                    "lights (the composite before relighting is kept as a variant)")
    light_samples: IntProperty(name="Light samples", default=4, min=1, max=256,
                               description="Cycles samples of the light reference (more: less noise, slower)")
    light_scale: FloatProperty(name="Light size", default=0.5, min=0.1, max=1.0, subtype="FACTOR",
                               description="The light reference's size as a share of the render resolution "
                               "(light is smooth: half size is four times faster)")

    # Characters: sheets and identity packs
    character_name: StringProperty(name="Name", default="Character",
                                   description="The new character's name (letters, digits, '_', '-', '.')")
    sheet_style: StringProperty(name="Style", default="character sheet, turnaround, same character in every view, "
                                "plain white background, full body, concept art",
                                description="Added to the prompt for the sheet")
    sheet_width: IntProperty(name="Width", default=1536, min=256, max=2048, step=64)
    sheet_height: IntProperty(name="Height", default=1024, min=256, max=2048, step=64)
    sheet_body_views: StringProperty(name="Body views", default=", ".join(sheet_layout.BODY_VIEWS),
                                     description="Full-body views left to right: front, three_quarter, side, "
                                     "three_quarter_back, back, or name=degrees")
    sheet_face_views: StringProperty(name="Face views", default=", ".join(sheet_layout.FACE_VIEWS),
                                     description="Face close-ups left to right (head turns); empty for none")
    sheet_pose: EnumProperty(name="Sheet pose", default="relaxed", items=[
        ("relaxed", "Relaxed", "Standing, arms a little away from the body: fills the cells, silhouette readable"),
        ("a_pose", "A-pose", "Arms 45° down: wider, so the figures come out smaller"),
        ("t_pose", "T-pose", "Arms straight out: widest, smallest figures"),
        ("current", "Rig's pose", "The rig's current pose")],
        description="The pose the character takes on the sheet (your rig itself is never re-posed)")
    sheet_spacing: IntProperty(name="Spacing", default=16, min=0, max=256, subtype="PIXEL")
    sheet_use_depth: BoolProperty(name="Depth", default=True, description="Also condition the sheet on the rig's depth")
    sheet_upscale: FloatProperty(name="Upscale", default=2.0, min=1.0, max=2.0,
                                 description="Upscale the sheet by this factor, tile by tile (1: no upscale)")
    sheet_upscale_strength: FloatProperty(name="Detail", default=0.3, min=0.0, max=1.0,
                                          description="How much the upscale redraws (0: plain resize)")
    sheet_face_detail: BoolProperty(name="Fix faces", default=True,
                                    description="Redraw every face at full resolution and paste it back")
    sheet_face_strength: FloatProperty(name="Face strength", default=0.4, min=0.0, max=1.0)
    # Sheets of creatures and objects
    sheet_subject: StringProperty(name="Sheet of", description="The object, armature or collection the sheet is "
                                  "made from; empty: the selected object (or the only rig)")
    sheet_object_views: StringProperty(name="Views", default="auto",
                                       description="Whole views of a creature or object: auto (front, three_quarter, "
                                       "side, back, and top when its footprint is broad), or names from front, "
                                       "three_quarter, side, back, top, bottom, or name=degrees")
    sheet_detail_views: StringProperty(name="Detail views", default="front, three_quarter",
                                       description="Close-ups of one part, left to right; empty for none")
    sheet_detail_part: StringProperty(name="Detail of", default="",
                                      description="The part the close-ups show: a collection's mesh, a creature's "
                                      "bone, a mesh's vertex group or loose piece; empty: the largest part")
    shape_depth_strength: FloatProperty(name="Depth", default=0.8, min=0.0, max=2.0,
                                        description="A creature's or object's depth map strength")
    normal_strength: FloatProperty(name="Normal", default=0.5, min=0.0, max=2.0,
                                   description="A creature's or object's normal map strength")
    lineart_strength: FloatProperty(name="Line art", default=0.5, min=0.0, max=2.0,
                                    description="A creature's or object's line-art map strength")
    appearance_scale: FloatProperty(name="Look", default=0.5, min=0.0, max=1.5,
                                    description="How strongly a character's pack keeps its look (an object's, a "
                                    "creature's, a costume's) through the appearance IP-Adapter; 0: scored only")
    characters: CollectionProperty(type=CHARACTERFORGE_PG_character, options={"SKIP_SAVE"})
    active_character: IntProperty(name="Character")
    dataset_trigger: StringProperty(name="Trigger word", default="",
                                    description="The word that calls up the character in the trained LoRA "
                                    "(letters, digits and '_'); empty: the character's name as one word")
    dataset_repeats: IntProperty(name="Repeats", default=10, min=1, max=1000,
                                 description="kohya_ss: how often each image is seen per epoch")
    dataset_flip: BoolProperty(name="Mirrored copies", default=True)
    train_steps: IntProperty(name="Steps", default=1000, min=10, max=10000,
                             description="Training steps: about 50 passes over a sheet's pictures at 1000")
    train_rank: IntProperty(name="Rank", default=16, min=1, max=128,
                            description="LoRA rank: how much it can hold (16: a character; more: a bigger file)")
    train_resolution: IntProperty(name="Resolution", default=0, min=0, max=2048, step=64,
                                  description="Training side in pixels, a multiple of 64; 0: the model's own size")
    train_text_encoder: BoolProperty(name="Train text encoders", default=False,
                                     description="Also train the text encoders: more faithful, more memory")

    # Live mode: the picture follows the scene (Live is switched by its operator: no update callbacks)
    live: BoolProperty(name="Live", default=False, options={"SKIP_SAVE"},
                       description="The picture follows the pose, camera, characters and prompt: a draft a moment "
                       "after each change, on one live plane")
    live_job: EnumProperty(name="Live picture", default="POSED", items=[
        ("POSED", "Posed character", "What Generate makes: the rigs' pose with the Shot's prompt and identity"),
        ("SHOT", "Characters in the shot", "What Composite Characters makes: the characters in the shot's "
         "background")])
    live_size: IntProperty(name="Live size", default=1024, min=64, max=2048, step=64, subtype="PIXEL",
                           description="The live picture's longer side (its maps are rendered at this size; the "
                           "render resolution's aspect is kept): smaller follows faster")
    live_message: StringProperty(options={"SKIP_SAVE"})
    live_failed: BoolProperty(options={"SKIP_SAVE"})
    # Painting a model from the selected character's sheet
    paint_texture_size: EnumProperty(name="Texture", default="1024", items=[
        (str(n), f"{n} px", f"A {n}x{n} texture per painted mesh") for n in model_paint.TEXTURE_SIZES])
    paint_shading: EnumProperty(name="Shading", default="EMISSION", items=model_paint.SHADINGS)
    paint_fill: EnumProperty(name="Holes", default="GENERATE", items=model_paint.FILLS,
                             description="What becomes of the surface no view of the sheet reached")
    paint_fill_size: IntProperty(name="Fill size", default=512, min=128, max=2048, step=64, subtype="PIXEL",
                                 description="Each fill picture's side in pixels, a multiple of 64")
    paint_max_fills: IntProperty(name="Fills", default=model_paint.MAX_FILLS, min=0, max=16,
                                 description="At most this many fill pictures (one per camera)")

    # The running job, as the panel shows it
    job_key: StringProperty(options={"SKIP_SAVE"})
    job_state: StringProperty(options={"SKIP_SAVE"})
    job_message: StringProperty(options={"SKIP_SAVE"})
    job_progress: FloatProperty(min=0.0, max=1.0, subtype="FACTOR", options={"SKIP_SAVE"})


classes = (*pose_import_classes,  # nested in the two below: registered first
           CHARACTERFORGE_PG_joint_map, CHARACTERFORGE_PG_rig, CHARACTERFORGE_PG_collection, CHARACTERFORGE_PG_face,
           CHARACTERFORGE_PG_character, CHARACTERFORGE_PG_scene)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.characterforge = PointerProperty(type=CHARACTERFORGE_PG_scene)
    bpy.types.Object.characterforge = PointerProperty(type=CHARACTERFORGE_PG_rig)
    bpy.types.Collection.characterforge = PointerProperty(type=CHARACTERFORGE_PG_collection)


def unregister():
    del bpy.types.Collection.characterforge
    del bpy.types.Object.characterforge
    del bpy.types.Scene.characterforge
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
