"""Blender-side code: the only package that imports bpy."""

from . import operators, panel, properties

_modules = (properties, operators, panel)


def register():
    for module in _modules:
        module.register()


def unregister():
    for module in reversed(_modules):
        module.unregister()
