"""Blender-side code: the only package that imports bpy."""

from . import (animation_operators, backend_panel, character_operators, jobs, operators, panel, preferences,
               profile_chooser, properties, set_operators)

_modules = (preferences, properties, operators, character_operators, set_operators, animation_operators,
            profile_chooser, panel, backend_panel)


def register():
    for module in _modules:
        module.register()


def unregister():
    jobs.shutdown()  # no timer or worker may outlive the add-on
    for module in reversed(_modules):
        module.unregister()
