"""A shot over an animation, frame by frame: each frame's maps and motion rendered, its
background the painted set as this frame's camera sees it (else the shot's background), and
each frame after the first started from the previous frame's result carried over by
Blender's own motion (core.motion): only what changed is generated again."""

import json
import os

import bpy
import numpy as np

from ...core.image_io import decode_png, encode_png, write_atomic
from ...core.shots import motion
from ..generation import job_inputs, planes
from ..maps import controls
from ..sets import set_projection
from . import light_rig, shots

RESULT = "frame.png"  # each frame's picture in its folder (what the next frame carries over)


def background_png(scene, camera):
    """The frame's background: the painted set seen from `camera` now (a moving camera sees the
    same set), else the shot's background picture."""
    if set_projection.layers(scene):
        return encode_png(set_projection.render_view(scene, camera))
    return job_inputs.picture_png(shots.background_file(scene, scene.characterforge.shot or "Shot"), "background")


def _motion_since(frame_dir, previous_dir, picture_shape):
    """(where each map pixel of the frame was in the previous frame, in the pixels of a picture
    of `picture_shape`; the map pixels with nothing to carry over: newly visible or moved behind
    something), from both frames' rendered motion and depth."""
    vectors, depth, index = controls.read_motion(os.path.join(frame_dir, "controls"))
    _, previous_depth, previous_index = controls.read_motion(os.path.join(previous_dir, "controls"))
    where = motion.previous_positions(vectors)
    h, w = index.shape
    scale = np.array([picture_shape[1] / w, picture_shape[0] / h])  # a job's picture is a multiple of 8
    return (where + 0.5) * scale - 0.5, motion.holes(where, index, depth, previous_index, previous_depth)


def carried_over(frame_dir, previous_dir, masks):
    """(warped previous picture PNG, holes PNG, strength, holes bool) for a frame whose maps and
    motion are in `frame_dir/controls`, from the frame in `previous_dir`; `masks`: the
    characters' pixels (bool, the maps' size)."""
    with open(os.path.join(previous_dir, RESULT), "rb") as f:
        picture = decode_png(f.read())[..., :3]
    positions, hole = _motion_since(frame_dir, previous_dir, picture.shape)
    carried = motion.warp(picture, positions)
    hidden = (hole & masks).sum() / max(1, masks.sum())
    return encode_png(carried), encode_png(np.where(hole, np.uint8(255), np.uint8(0))), motion.frame_strength(hidden), hole


def frame_job(context, camera, frame_dir, seed, previous_dir=None, relight=False):
    """The shot job of the current frame (maps and motion rendered into `frame_dir/controls`),
    carried over from the frame in `previous_dir` when given; with `relight`, the frame relit by
    the scene's lights at this frame (its light reference in `frame_dir/light`, the white of the
    previous frame's kept)."""
    scene = context.scene
    controls_dir = os.path.join(frame_dir, "controls")
    manifest = controls.render_controls(context, controls_dir, camera, scene.characterforge.drop_occluded,
                                        preview=False, motion=True)
    previous = None
    if previous_dir is not None:
        masks = np.zeros(tuple(manifest["resolution"][::-1]), bool)
        for name in manifest["masks"].values():
            with open(os.path.join(controls_dir, name), "rb") as f:
                masks |= decode_png(f.read()) > 127
        previous = carried_over(frame_dir, previous_dir, masks)[:3]
    options = None
    if relight:
        options, _ = light_rig.shot_relight(context, camera, os.path.join(frame_dir, light_rig.LIGHT_DIR),
                                            light_rig.previous_white(previous_dir))
    spec, _, _ = shots.shot_job(context, camera, background_png(scene, camera), controls_dir, seed, previous,
                                manifest, relight=options)
    return spec


def flicker(frame_dirs):
    """The sequence's flicker (core.motion.flicker) from its frames' folders, in order: each
    frame against its predecessor carried over by the motion, over the pixels that stay
    visible. Returns (per-frame figures, mean)."""
    pictures, positions, valid = [], [], []
    for i, folder in enumerate(frame_dirs):
        with open(os.path.join(folder, RESULT), "rb") as f:
            pictures.append(decode_png(f.read())[..., :3])
        if i:
            where, hole = _motion_since(folder, frame_dirs[i - 1], pictures[-1].shape)
            # compared at the picture's size: the maps' pixels picked at each picture pixel
            (h, w), (ph, pw) = hole.shape, pictures[-1].shape[:2]
            ys = np.minimum(np.arange(ph) * h // ph, h - 1)
            xs = np.minimum(np.arange(pw) * w // pw, w - 1)
            positions.append(where[ys][:, xs])
            valid.append(~hole[ys][:, xs])
    return motion.flicker(pictures, positions, valid)


def write_sequence_record(folder, record):
    write_atomic(os.path.join(folder, "sequence.json"), json.dumps(record, indent=1).encode("utf-8"))


def write_video(folder, frames, fps, path):
    """The sequence's frames (`frame_NNNN.png` in `folder`) as an H.264 MP4 at `fps`, written by
    Blender's own FFmpeg through the sequencer in a throw-away scene."""
    names = [f"frame_{f:04d}.png" for f in frames]
    with open(os.path.join(folder, names[0]), "rb") as f:
        h, w = decode_png(f.read()).shape[:2]
    scene = bpy.data.scenes.new("CharacterForge video")
    try:
        editor = scene.sequence_editor_create()
        strips = editor.strips if hasattr(editor, "strips") else editor.sequences  # 5.x / 4.2
        strip = strips.new_image("frames", os.path.join(folder, names[0]), 1, 1)
        for name in names[1:]:
            strip.elements.append(name)
        scene.frame_start, scene.frame_end = 1, len(names)
        scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = w, h, 100
        scene.render.fps = fps
        settings = scene.render.image_settings
        if hasattr(settings, "media_type"):  # Blender 5: pick video before the FFmpeg format
            settings.media_type = "VIDEO"
        settings.file_format = "FFMPEG"
        scene.render.ffmpeg.format, scene.render.ffmpeg.codec = "MPEG4", "H264"
        scene.render.use_sequencer = True
        scene.render.filepath = path
        bpy.ops.render.render(animation=True, scene=scene.name)
    finally:
        bpy.data.scenes.remove(scene)
    return path


def sequence_plane(context, folder, frames, camera, collection, name):
    """The sequence on a camera-filling plane that plays with the timeline (Blender's image
    sequence: frame F shows frame_F.png), shown as its camera's picture."""
    obj = planes.import_plane(context, os.path.join(folder, f"frame_{frames[0]:04d}.png"), camera,
                              planes.distance_for(camera, planes.PICTURE), collection, name)
    for node in obj.active_material.node_tree.nodes:
        if node.type == "TEX_IMAGE":
            node.image.source = "SEQUENCE"
            user = node.image_user
            user.frame_duration, user.frame_start, user.frame_offset = len(frames), frames[0], frames[0] - 1
            user.use_auto_refresh = True
    obj[planes.LAYER] = planes.PICTURE
    planes.show_variant(obj)
    return obj
