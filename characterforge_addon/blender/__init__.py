"""Blender-side code: the only package that imports bpy."""

from . import (backend_panel, character_operators, jobs, operators, panel, preferences, profile_chooser, properties,
               set_operators, view_colours)

_modules = (preferences, properties, operators, character_operators, set_operators, profile_chooser, panel,
            backend_panel, view_colours)


def register():
    for module in _modules:
        module.register()


def unregister():
    jobs.shutdown()  # no timer or worker may outlive the add-on
    for module in reversed(_modules):
        module.unregister()
