"""The sidebar's Animate Shot: the scene's frame range made by a video model from the rig."""

import bpy

from . import animation
from ..operator_base import StartsJob


class CHARACTERFORGE_OT_animate_shot(StartsJob, bpy.types.Operator):
    """Animate the shot with a video model: the scene's frame range rendered from the rig as control
    videos (pose, depth, masks, face, the painted set), made segment by segment with the characters'
    identities; the frames come back as an image sequence on a plane, with an MP4. Pressed again with
    the same seed, a half-made shot goes on where it stopped"""
    bl_idname = "characterforge.animate_shot"
    bl_label = "Animate Shot"

    def run(self, context):
        return animation.animate_shot(context)


classes = (CHARACTERFORGE_OT_animate_shot,)
register, unregister = bpy.utils.register_classes_factory(classes)
