"""Blender-side code: the only package that imports bpy. Each room (rig, maps, generation,
characters, shots, sets, backend) holds the code of one part of the workflow and its operators;
ui/ draws the sidebar; the settings (properties, preferences) and what operators share are here."""

from . import preferences, properties
from .backend import operators as backend_operators
from .characters import operators as character_operators
from .generation import jobs, live_operators, profile_chooser, view_colours
from .generation import operators as generation_operators
from .maps import operators as map_operators
from .rig import operators as rig_operators
from .rig import pose_import_operators
from .sets import operators as set_operators
from .shots import animation_operators
from .shots import operators as shot_operators
from .ui import backend_panel, live_panel, panel, pose_import_panel

_modules = (preferences, properties, rig_operators, map_operators, generation_operators, shot_operators,
            character_operators, set_operators, pose_import_operators, animation_operators, backend_operators,
            live_operators, profile_chooser, panel, pose_import_panel, backend_panel, live_panel, view_colours)


def register():
    for module in _modules:
        module.register()


def unregister():
    jobs.shutdown()  # no timer or worker may outlive the add-on
    for module in reversed(_modules):
        module.unregister()
