"""Generated pictures rendered as generated, whatever the scene's view transform: every picture
we show (result planes, pictures projected onto a set) is read through the colour space that
inverts the scene's view transform (AgX: `AgX Base sRGB`, Filmic: `Filmic sRGB`, ...), so
the view transform gives the picture's own colours back. The user's view transform, look and
exposure stay as they are: exposure is undone by our emission's strength, and the colour
spaces follow when the user changes the view (the message bus, in the UI), when a file loads,
and whenever we place a picture.
"""

from contextlib import contextmanager

import bpy
from bpy.app.handlers import persistent

SHOWN = "characterforge_shown"  # on an image: a picture we show; its colour space follows the view
EMISSION = "characterforge_emission"  # on a material: its emission shows our pictures; strength undoes exposure

# the display-referred colour space that is each view transform's inverse on an sRGB display
INVERSE = {"Standard": "sRGB", "AgX": "AgX Base sRGB", "Filmic": "Filmic sRGB",
           "Khronos PBR Neutral": "Khronos PBR Neutral sRGB", "ACES 1.3": "ACES 1.3 sRGB", "ACES 2.0": "ACES 2.0 sRGB"}
PLAIN = "sRGB"


def _spaces():
    return {item.identifier for item in
            bpy.types.ColorManagedInputColorspaceSettings.bl_rna.properties["name"].enum_items}


def picture_space(scene):
    """(the colour space our pictures get under `scene`'s view, what stays off or None): the
    view transform's inverse where Blender has one, else sRGB and why the colours will differ."""
    view, display = scene.view_settings, scene.display_settings.display_device
    if display != "sRGB":
        return PLAIN, f"the {display} display has no inverse here: generated colours show exactly on an sRGB display"
    space = INVERSE.get(view.view_transform)
    if space is None or space not in _spaces():
        return PLAIN, (f"the {view.view_transform} view transform cannot be undone: generated colours show exactly "
                       "under Standard, AgX, Filmic or Khronos PBR Neutral")
    if view.look not in ("None", ""):
        return space, f"the look '{view.look}' changes the generated colours: set Look to None to see them as made"
    if abs(view.gamma - 1.0) > 1e-6 or view.use_curve_mapping or getattr(view, "use_white_balance", False):
        return space, "Gamma, Curves or White Balance in Color Management change the generated colours"
    return space, None


def mark(image, scene):
    """`image` is a picture we show: its colour space follows `scene`'s view from now on."""
    image[SHOWN] = True
    _space(image, picture_space(scene)[0])


def mark_emission(material, scene):
    """`material` shows our pictures through its Emission nodes: their strength undoes the
    scene's exposure (the view transform multiplies by 2^exposure first)."""
    material[EMISSION] = True
    _strength(material, 2.0 ** -scene.view_settings.exposure)


def unmark(*ids):
    """These images and materials no longer show our pictures as made (a texture painted again
    as a lit base colour): their colour space and strengths are left alone from now on."""
    for id_ in ids:
        id_.pop(SHOWN, None)
        id_.pop(EMISSION, None)


def _space(image, space):
    if image.colorspace_settings.name != space:  # setting it at all reloads the image
        image.colorspace_settings.name = space


def _strength(material, strength):
    for node in material.node_tree.nodes if material.node_tree else ():
        # our set's Emission, or the Principled BSDF (black, emission only) of Import Images as Planes
        socket = node.inputs.get("Strength" if node.type == "EMISSION" else "Emission Strength")
        if node.type in ("EMISSION", "BSDF_PRINCIPLED") and abs(socket.default_value - strength) > 1e-9:
            socket.default_value = strength


def _apply(space, strength):
    for image in bpy.data.images:
        if image.get(SHOWN):
            _space(image, space)
    for material in bpy.data.materials:
        if material.get(EMISSION):
            _strength(material, strength)


def match(scene):
    """Every picture and emission we show, in step with `scene`'s view."""
    _apply(picture_space(scene)[0], 2.0 ** -scene.view_settings.exposure)


@contextmanager
def plain(scene):
    """For a render of ours under the Standard view at exposure 0 (what a job is sent): our
    pictures read as plain sRGB meanwhile, then in step with `scene`'s view again."""
    _apply(PLAIN, 1.0)
    try:
        yield
    finally:
        match(scene)


_OWNER = object()  # our message-bus subscriptions
_WATCHED = ((bpy.types.ColorManagedViewSettings, "view_transform"), (bpy.types.ColorManagedViewSettings, "look"),
            (bpy.types.ColorManagedViewSettings, "exposure"), (bpy.types.ColorManagedDisplaySettings, "display_device"))


def _on_view_change():
    scene = bpy.context.scene
    if scene is not None:
        match(scene)


def _subscribe():
    for key in _WATCHED:  # the UI tells us when the user changes the view (not in background mode)
        bpy.msgbus.subscribe_rna(key=key, owner=_OWNER, args=(), notify=_on_view_change)


@persistent
def _on_load(_):
    _subscribe()  # loading a file drops every subscription
    _on_view_change()  # a file rendered from the command line (blender -b FILE -f 1) too


def register():
    _subscribe()
    bpy.app.handlers.load_post.append(_on_load)


def unregister():
    bpy.msgbus.clear_by_owner(_OWNER)
    if _on_load in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_on_load)
