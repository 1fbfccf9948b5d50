"""Import Pose's settings: the scene's (what to import and how) and each rig's (its last
import: fit figure, flips). No update callbacks (bpy 4.2 crashes at exit with them): flips
and person picks are operators that pose the rig again."""

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from ...core.rig.pose_formats import MIN_CONFIDENCE


class CHARACTERFORGE_PG_pose_import(bpy.types.PropertyGroup):
    person: IntProperty(name="Person", default=1, min=1, max=64,
                        description="Which person of the file or picture poses the rig: 1 is the largest")
    people: EnumProperty(name="People", default="ONE", items=[
        ("ONE", "One person", "The chosen person onto the selected rig"),
        ("EACH", "One rig each", "Every person onto a rig of their own: a rig of the person's name, the selected "
         "rigs in order, else a new rig like the active one")])
    keyframe: BoolProperty(name="Keyframe", default=True,
                           description="Key the pose at the current frame (several files: one frame each)")
    face: BoolProperty(name="Expression", default=True,
                       description="Move the face bones to the face's points (the expression)")
    min_confidence: FloatProperty(name="Min confidence", default=MIN_CONFIDENCE, min=0.0, max=1.0,
                                  description="Points a detector was less sure of are left out")
    picture: StringProperty(name="Picture", subtype="FILE_PATH", default="",
                            description="A photo or drawing whose pose the backend detects (Pose from Picture)")
    last_file: StringProperty(options={"SKIP_SAVE"}, description="The pose file last imported (to pick another person)")
    last_people: StringProperty(options={"SKIP_SAVE"}, description="Its people, largest first")


class CHARACTERFORGE_PG_rig_pose(bpy.types.PropertyGroup):
    fit: StringProperty(name="Fit", description="The last import's fit: the rig's projected joints against the "
                        "imported ones (PCK at 0.05 of the person's size, mean error in the picture's pixels)")
    left: StringProperty(name="Left", description="What the last import could not place, or kept")
    source: StringProperty(name="Source", description="Where the last imported pose came from")
    choices: StringProperty(description="Each ambiguous limb's depth as chosen (JSON)")
    flips: IntProperty(name="Flips", default=0, min=0,
                       description="Limbs whose depth (towards or away from the camera) is turned over")


classes = (CHARACTERFORGE_PG_pose_import, CHARACTERFORGE_PG_rig_pose)
