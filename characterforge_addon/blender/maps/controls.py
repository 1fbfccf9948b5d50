"""Control maps for one camera and frame: OpenPose skeleton and JSON, depth, hand depth,
a mask per character and, on request, normals, from every OpenPose rig in the scene; with
creatures or objects marked as characters, also exact normals (Cycles' Normal pass) and their
line art (core.maps.line_art), and a mask for each.

Joints come from `joints` (projection and occlusion); depth and object index from ONE render
(`passes`); hand depth, masks and normals are cut from it, so the whole set costs about one
depth render plus drawing.
"""

import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import bpy
import numpy as np

from ...core.errors import UserError
from ...core.image_io import check_writable_folder, encode_png, write_atomic
from ...core.maps import control_maps, line_art, openpose_draw
from ...core.rig import keypoints, projection
from ..characters.subjects import marked_in_scene
from ..rig.joints import camera_model, check_camera_outside, find_camera, OUTPUT_ROLES, project_rig
from ..rig.rig import character_meshes, rigs_in_scene, ROLE
from .passes import INDEX_BASE, render_passes
from .shape_maps import render_normals

# ---------------------------------------------------------------------------------------------
# The whole set

def _hand_region(person, shape):
    """Pixels near an own rig's projected hand joints (own rigs have no separate hand mesh)."""
    region = np.zeros(shape, dtype=bool)
    for hand in (person.left_hand, person.right_hand):
        present = hand[:, 2] > 0
        if present.sum() < 2:
            continue
        radius = max(int(np.ptp(hand[present, :2], axis=0).max() * 0.25), 3)
        for pixels in openpose_draw.discs(shape, hand[present, :2].astype(np.int64), radius):
            region.ravel()[pixels] = True
    return region


def _maps_from_passes(pool, cam, depth, index, characters, normals, shapes=(), shape_normals=None):
    """({file: PNG bytes} of the depth, hand depth, mask (and normal) maps, made side by side
    on `pool`; {character: mask file}). `shapes`: [(creature or object, its pass index)], whose
    masks, exact normals (`shape_normals`, the whole frame's) and line art come too."""
    ids = np.rint(index).astype(np.int32)
    hand_mask = np.zeros(depth.shape, dtype=bool)
    images, mask_files = {}, {}
    for rig, person, body_id, hand_id, has_hand_mesh in characters:
        mask = (ids == body_id) | (ids == hand_id)
        hand_mask |= (ids == hand_id) if has_hand_mesh else (mask & _hand_region(person, depth.shape))
        mask_files[rig.name] = f"mask_{_safe_name(rig.name)}.png"
        images[mask_files[rig.name]] = lambda mask=mask: np.where(mask, np.uint8(255), np.uint8(0))
    shaped = np.zeros(depth.shape, dtype=bool)
    for subject, body_id in shapes:
        mask = ids == body_id
        shaped |= mask
        mask_files[subject.name] = f"mask_{_safe_name(subject.name)}.png"
        images[mask_files[subject.name]] = lambda mask=mask: np.where(mask, np.uint8(255), np.uint8(0))
    if shapes:
        shown = (depth < control_maps.BACKGROUND_DEPTH) & (depth > 0)
        images["normal.png"] = lambda: control_maps.encode_normals(shape_normals, shown)
        width = line_art.line_width(max(depth.shape))

        def lines():  # the creatures' and objects' own lines (their outlines against anything)
            drawn = line_art.line_art(depth, shape_normals, ids, width=width)
            return np.where(_grow(shaped, width), drawn, np.uint8(0))
        images["lineart.png"] = lines
    images["depth.png"] = lambda: control_maps.depth_image(depth)
    images["hand_depth.png"] = lambda: control_maps.depth_image(depth, hand_mask)
    if normals and not shapes:
        def normal_map():
            shown = (depth < control_maps.BACKGROUND_DEPTH) & (depth > 0)
            return control_maps.normal_image(projection.unproject(cam, np.where(shown, depth, 0.0)), shown)
        images["normal.png"] = normal_map
    done = {name: pool.submit(lambda make=make: encode_png(make())) for name, make in images.items()}
    return {name: future.result() for name, future in done.items()}, mask_files


def _grow(mask, pixels):
    """`mask` grown by `pixels` each way (lines drawn just outside a silhouette belong to it)."""
    out = mask
    for axis in (0, 1):
        padded = np.pad(out, [(pixels, pixels) if a == axis else (0, 0) for a in (0, 1)])
        out = np.lib.stride_tricks.sliding_window_view(padded, 2 * pixels + 1, axis=axis).any(axis=-1)
    return out


def _safe_name(name):
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


MOTION = "motion.npz"  # with motion: the frame's Vector pass, depth and object index, for the next frame


def render_controls(context, out_dir, camera=None, drop_occluded=False, preview=True, normals=False, motion=False):
    """Write the control maps for the scene camera (or `camera`) at the current frame; with
    `motion`, also MOTION from the same render (`read_motion` reads it).

    Returns the manifest (also written as controls.json, last, once every map is in place).
    """
    scene = context.scene
    context.view_layer.update()  # matrices are stale after any change until the depsgraph runs
    camera = camera or find_camera(scene)
    cam = camera_model(scene, camera)
    rigs = rigs_in_scene(scene)
    others = marked_in_scene(scene)  # creatures and objects playing characters
    if not rigs and not others:
        raise UserError(f"scene '{scene.name}' has no OpenPose rig and no creature or object marked as a character: "
                        "add a rig with Pose > Add rig, mark your own armature with Pose > Use as OpenPose rig, or "
                        "select a creature, mesh or collection and tick 'is a character' in Shot > Characters in "
                        "the shot")
    out_dir = bpy.path.abspath(out_dir)
    try:
        check_writable_folder(out_dir)
    except OSError as exc:
        raise UserError(str(exc)) from None
    timings = {}
    t0 = time.perf_counter()
    depsgraph = context.evaluated_depsgraph_get()
    check_camera_outside(scene, depsgraph, camera)

    people, index_of, characters = [], {}, []
    for i, rig in enumerate(rigs, start=1):
        person, mean_depth = project_rig(scene, depsgraph, camera, cam, rig)
        body, hands = character_meshes(rig)
        body_id, hand_id = INDEX_BASE + 2 * i, INDEX_BASE + 2 * i + 1
        for obj in body:
            index_of[obj] = body_id
        for obj in hands:
            index_of[obj] = hand_id
        people.append((mean_depth, person))
        characters.append((rig, person, body_id, hand_id, bool(hands)))
    shapes = []
    for j, subject in enumerate(others, start=len(rigs) + 1):
        for obj in subject.meshes:
            index_of[obj] = INDEX_BASE + 2 * j
        shapes.append((subject, INDEX_BASE + 2 * j))
    people = [p for _, p in sorted(people, key=lambda item: -item[0])]  # far first: near overlaps far
    timings["project_s"] = time.perf_counter() - t0

    drawn = [p.without_occluded() for p in people] if drop_occluded else people
    w, h = cam.resolution
    pool = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1))

    def draw():
        start = time.perf_counter()
        files = {"openpose.png": encode_png(openpose_draw.draw_people(w, h, drawn)),
                 "openpose.json": keypoints.to_openpose_json(w, h, drawn).encode("utf-8")}
        timings["draw_s"] = time.perf_counter() - start
        return files

    try:
        # The skeleton needs no render: it is drawn while Cycles renders (the render runs in
        # Blender's own threads; numpy and zlib release the GIL).
        drawing = pool.submit(draw)
        t2 = time.perf_counter()
        depth, index, *vectors = render_passes(scene, camera, index_of, motion=motion)
        shape_normals = None
        if shapes:  # a second render, for exact normals (a creature's or object's line art and normal map)
            shape_normals = render_normals(scene, camera, hide=[o for o in scene.objects
                                                                if o.get(ROLE) in OUTPUT_ROLES])
        timings["render_s"] = time.perf_counter() - t2
        files = drawing.result()
        t3 = time.perf_counter()
        maps, mask_files = _maps_from_passes(pool, cam, depth, index, characters, normals, shapes, shape_normals)
        files.update(maps)
        if motion:
            files[MOTION] = _motion_bytes(vectors[0], depth, index)
        timings["encode_s"] = time.perf_counter() - t3
        t4 = time.perf_counter()
        for written in [pool.submit(write_atomic, os.path.join(out_dir, f), data) for f, data in files.items()]:
            written.result()
    finally:
        pool.shutdown(wait=True)

    manifest = {
        "camera": camera.name, "frame": scene.frame_current, "resolution": [w, h],
        "files": sorted(files), "masks": mask_files,
        "kinds": {**{rig.name: "humanoid" for rig in rigs}, **{subject.name: subject.kind for subject, _ in shapes}},
        "people": [{"name": p.name,
                    "visible": int((np.concatenate([a[:, 2] for a in p.parts().values()]) == 1).sum()),
                    "occluded": int((np.concatenate([a[:, 2] for a in p.parts().values()]) == keypoints.OCCLUDED_CONFIDENCE).sum())}
                   for p in people],
        "drop_occluded": drop_occluded,
    }
    write_atomic(os.path.join(out_dir, "controls.json"), json.dumps(manifest, indent=1).encode("utf-8"))
    timings["write_s"] = time.perf_counter() - t4
    manifest["timings"] = timings
    if preview:
        load_previews(out_dir, files)
    return manifest


def _motion_bytes(vectors, depth, index):
    buf = io.BytesIO()
    np.savez_compressed(buf, vectors=vectors.astype(np.float32), depth=depth.astype(np.float32), index=index)
    return buf.getvalue()


def read_motion(controls_dir):
    """(vectors towards the previous frame, depth, object index) a motion render wrote."""
    with np.load(os.path.join(controls_dir, MOTION)) as data:
        return data["vectors"].astype(np.float64), data["depth"].astype(np.float64), data["index"]


def show_image(name, path):
    """The Blender image `name` showing the file at `path`, loaded once, reloaded after."""
    image = bpy.data.images.get(name)
    if image is None:
        image = bpy.data.images.load(path, check_existing=False)
        image.name = name
    else:
        image.filepath = path
        image.reload()
    return image


def load_previews(out_dir, files):
    """Show the maps as Blender images (Image Editor), reloading ones shown before."""
    for file in files:
        if not file.endswith(".png"):
            continue
        image = show_image(f"CF {file[:-4]}", os.path.join(out_dir, file))
        image.colorspace_settings.name = "Non-Color" if file != "openpose.png" else "sRGB"
