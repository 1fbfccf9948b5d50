"""Operators of the Shot section's Set box: a set that holds across cameras."""

import bpy

from ..operator_base import Reporting, StartsJob
from ..rig import joints
from . import set_projection, sets


class CHARACTERFORGE_OT_add_set_dome(Reporting, bpy.types.Operator):
    """Add a sphere around the camera for the sky and far land: painted with the set, so every
    camera shares the same far background"""
    bl_idname = "characterforge.add_set_dome"
    bl_label = "Add Dome"
    bl_options = {"REGISTER", "UNDO"}

    def run(self, context):
        obj = set_projection.add_dome(context, joints.find_camera(context.scene))
        return f"'{obj.name}' around {context.scene.camera.name}, radius {obj.dimensions.x / 2:.0f} m"


class CHARACTERFORGE_OT_project_background(Reporting, bpy.types.Operator):
    """Project the shot's background onto the set's geometry from the active camera, so other
    cameras see the same set, as generated"""
    bl_idname = "characterforge.project_background"
    bl_label = "Project Background onto Set"
    bl_options = {"REGISTER", "UNDO"}

    def run(self, context):
        return sets.project_background(context)


class CHARACTERFORGE_OT_fill_set(StartsJob, bpy.types.Operator):
    """From the active camera: generate only the part of the set no camera painted yet (the
    painted part as context, the set's depth guiding it), project it, and make this view the
    shot's background"""
    bl_idname = "characterforge.fill_set"
    bl_label = "Fill Set from this Camera"

    def run(self, context):
        if sets.fill_from_camera(context) is None:
            return "Every surface this camera sees is painted already: its view is the shot's background"


class CHARACTERFORGE_OT_remove_set_projection(Reporting, bpy.types.Operator):
    """Remove the set's projection: every set object gets its own materials back"""
    bl_idname = "characterforge.remove_set_projection"
    bl_label = "Remove Set Projection"
    bl_options = {"REGISTER", "UNDO"}

    def run(self, context):
        set_projection.remove(context.scene)
        return "The set has its own materials back"


classes = (CHARACTERFORGE_OT_add_set_dome, CHARACTERFORGE_OT_project_background, CHARACTERFORGE_OT_fill_set,
           CHARACTERFORGE_OT_remove_set_projection)
register, unregister = bpy.utils.register_classes_factory(classes)
