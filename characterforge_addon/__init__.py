"""CharacterForge: consistent, editable AI characters and backgrounds in Blender.

Layers (see ARCHITECTURE.md): `core` is pure Python + numpy, `blender` is the only code that
imports bpy. Importing this package imports neither, so pure modules and the backend can use it
outside Blender; Blender calls register() and unregister().
"""


def register():
    from . import blender
    blender.register()


def unregister():
    from . import blender
    blender.unregister()
