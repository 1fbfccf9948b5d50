"""What a user sees, for the tests and benchmarks of issue #27: a camera's view rendered as F12
renders it (the scene's own engine, samples, view transform, look and exposure; only the
output file, and a resolution percentage when asked, are ours), and the picture a shot's
camera should show (its shown result planes composited nearest in front)."""

import os
import re
import tempfile

import numpy as np


def render(bpy, scene, camera, percentage=None, frame=None):
    """(H, W, 3) uint8: `scene` rendered from `camera` with its own settings, at `percentage` of
    its resolution (default: as set) and `frame` (default: the current one)."""
    from characterforge_addon.core.image_io import decode_png
    r = scene.render
    settings = r.image_settings
    kept = (scene.camera, r.filepath, r.resolution_percentage, scene.frame_current, settings.file_format,
            settings.color_mode, settings.color_depth)
    folder = tempfile.mkdtemp(prefix="characterforge-user-")
    path = os.path.join(folder, "render.png")
    try:
        scene.camera = camera
        if percentage is not None:
            r.resolution_percentage = percentage
        if frame is not None:
            scene.frame_set(frame)
        settings.file_format, settings.color_mode, settings.color_depth = "PNG", "RGB", "8"
        r.filepath = path
        bpy.ops.render.render(write_still=True, scene=scene.name)
        with open(path, "rb") as f:
            return decode_png(f.read())[..., :3]
    finally:
        scene.camera, r.filepath, r.resolution_percentage = kept[:3]
        if frame is not None:
            scene.frame_set(kept[3])
        settings.file_format, settings.color_mode, settings.color_depth = kept[4:]
        if os.path.exists(path):
            os.remove(path)
        os.rmdir(folder)


def shown_planes(camera):
    """`camera`'s result planes shown in renders, farthest first."""
    from characterforge_addon.blender.rig.rig import ROLE
    planes = [o for o in camera.children if o.get(ROLE) == "result_plane" and not o.hide_render]
    return sorted(planes, key=lambda o: o.location.z)


def plane_file(bpy, scene, obj):
    """The file `obj` shows at the scene's current frame (an image sequence: that frame's file)."""
    node = next(n for n in obj.active_material.node_tree.nodes if n.type == "TEX_IMAGE")
    path = bpy.path.abspath(node.image.filepath)
    if node.image.source != "SEQUENCE":
        return path
    user = node.image_user
    number = scene.frame_current - user.frame_start + user.frame_offset + 1  # Blender's image-sequence frame
    folder, name = os.path.split(path)
    digits = re.search(r"(\d+)(\.\w+)$", name)
    return os.path.join(folder, name[:digits.start(1)] + str(number).zfill(len(digits.group(1))) + digits.group(2))


def shown_picture(bpy, scene, camera, size):
    """(H, W, 3) uint8 at `size` (W, H): what `camera`'s shown planes show, composited farthest
    first (alpha over, in linear light as a render mixes them); None when the camera shows no plane."""
    from characterforge_addon.core.shots import picture_match
    from characterforge_addon.core.image_io import decode_png
    out = None
    for obj in shown_planes(camera):
        with open(plane_file(bpy, scene, obj), "rb") as f:
            picture = decode_png(f.read())
        picture = picture if picture.ndim == 3 else picture[..., None]
        rgb = picture[..., :3] if picture.shape[-1] >= 3 else np.repeat(picture[..., :1], 3, -1)
        alpha = picture[..., 3:4] / 255.0 if picture.shape[-1] == 4 else np.ones(picture.shape[:2] + (1,))
        rgb, alpha = resize(picture_match.linear(rgb), size), resize(alpha, size)
        out = rgb * alpha + (0.0 if out is None else out * (1.0 - alpha))
    return None if out is None else np.clip(np.rint(picture_match.levels(out)), 0, 255).astype(np.uint8)


def resize(picture, size):
    """`picture` (H, W, C) at `size` (W, H): the mean of each output pixel's block of input
    pixels (a render's pixel filter sees about that; average linear values, not sRGB levels)."""
    h, w = picture.shape[:2]
    if size[0] > w or size[1] > h:
        raise ValueError(f"resize makes pictures smaller only: {w}x{h} to {size[0]}x{size[1]}")
    ys = np.linspace(0, h, size[1] + 1).astype(int)
    xs = np.linspace(0, w, size[0] + 1).astype(int)
    rows = np.add.reduceat(picture.astype(np.float64), ys[:-1], axis=0) / np.diff(ys)[:, None, None]
    return np.add.reduceat(rows, xs[:-1], axis=1) / np.diff(xs)[None, :, None]
