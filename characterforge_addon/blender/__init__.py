"""Blender-side code: the only package that imports bpy."""

from . import (backend_panel, character_operators, jobs, operators, panel, pose_import_operators, pose_import_panel,
               preferences, profile_chooser, properties, set_operators)

_modules = (preferences, properties, operators, character_operators, set_operators, pose_import_operators,
            profile_chooser, panel, pose_import_panel, backend_panel)


def register():
    for module in _modules:
        module.register()


def unregister():
    jobs.shutdown()  # no timer or worker may outlive the add-on
    for module in reversed(_modules):
        module.unregister()
