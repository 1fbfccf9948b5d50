"""Put 2D poses from files or pictures onto CharacterForge rigs, headless.

  python blender_scripts/import_pose.py [--blend FILE] [--rig NAME] POSE.json [--person N | --each] [--flip LIMB]...
  python blender_scripts/import_pose.py [--blend FILE] --frames 'poses/*.json' [--start F]   (one keyed frame per file)
  python blender_scripts/import_pose.py [--blend FILE] --picture PHOTO.jpg [--profile sdxl]  (the backend's detector)
  blender -b FILE -P blender_scripts/import_pose.py -- POSE.json [...]

Formats: OpenPose JSON (body 18 or BODY_25, hands, face; ComfyUI's and the pose editors'),
COCO-WholeBody and DWPose / MMPose (133 points). Without a .blend: a new scene whose camera
frames a new adult rig, at the first file's picture size. Prints each rig's fit per frame (PCK
at 0.05 of the person's size, mean error in the picture's pixels) and what it could not place;
exits non-zero with a one-line reason on any failure.
"""

import argparse
import glob
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bootstrap import (add_job_options, apply_job_options, fail, follow_jobs, register_addon, save_blend,  # noqa: E402
                        script_args)
from characterforge_addon.core.rig.pose_solver import FLIPS  # noqa: E402  (pure: no bpy yet)


def parse(argv):
    p = argparse.ArgumentParser(prog="import_pose.py", description=__doc__.splitlines()[0])
    p.add_argument("pose", nargs="?", help="a pose file (JSON)")
    p.add_argument("--frames", nargs="+", metavar="FILE",
                   help="pose files or globs, in name order: one frame each from --start, keyed")
    p.add_argument("--picture", help="a photo or drawing: its pose found by the backend's detector")
    p.add_argument("--blend", help=".blend file to open (not needed under blender -b FILE)")
    p.add_argument("--rig", help="the rig to pose (default: the active, else the only CharacterForge rig)")
    p.add_argument("--person", type=int, default=1, help="which person of the file: 1 is the largest (default 1)")
    p.add_argument("--each", action="store_true", help="every person onto a rig of their own (made when missing)")
    p.add_argument("--start", type=int, help="first frame of a sequence (default: the scene's current frame)")
    p.add_argument("--flip", action="append", default=[], choices=FLIPS,
                   help="turn this limb's depth over (towards or away from the camera); repeatable")
    p.add_argument("--no-keyframe", action="store_true", help="pose without keying (one file only)")
    p.add_argument("--no-face", action="store_true", help="leave the face bones (the expression) alone")
    p.add_argument("--min-confidence", type=float, default=0.2, help="leave out points below this confidence")
    add_job_options(p, out="out/poses")
    p.add_argument("--save", help="save the .blend here")
    args = p.parse_args(argv)
    if sum(bool(x) for x in (args.pose, args.frames, args.picture)) != 1:
        p.error("give one of: a pose file, --frames FILE..., or --picture PIC")
    return args


def _files(patterns):
    files = []
    for pattern in patterns:
        matched = sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern]
        if not matched:
            fail(f"--frames {pattern}: no file matches")
        files += matched
    for path in files:
        if not os.path.isfile(path):
            fail(f"pose file {path}: no such file")
    return files


def _new_scene(bpy, canvas):
    """A camera framing a new adult rig in A-pose, rendering at the picture's size."""
    from characterforge_addon.blender.rig import posing, rig
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    w, h = canvas
    scale = min(1.0, 2048 / max(w, h))
    scene.render.resolution_x, scene.render.resolution_y = max(16, round(w * scale)), max(16, round(h * scale))
    scene.render.resolution_percentage = 100
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.location = (0.0, -4.5, 1.0)
    cam.rotation_euler = (math.radians(90), 0.0, 0.0)
    cam.data.lens = 35
    made = rig.add_rig(bpy.context, "Character", 1.75, "ADULT")
    posing.apply_library_pose(bpy.context, made, "A_POSE")
    return made


def _canvas(path):
    from characterforge_addon.core.rig import pose_formats
    frame = pose_formats.read_pose_file(path, (1024, 1024)).frames[0]
    return frame.width, frame.height


def _picture_size(bpy, path):
    from characterforge_addon.core.errors import UserError
    try:
        image = bpy.data.images.load(os.path.abspath(path), check_existing=False)
    except RuntimeError as exc:
        raise UserError(f"cannot read picture {path} ({str(exc).strip()}): use a PNG or JPEG file") from None
    size = tuple(image.size)
    bpy.data.images.remove(image)
    return size if all(size) else (768, 768)


def _target(bpy, name):
    from characterforge_addon.blender.rig.rig import rigs_in_scene
    from characterforge_addon.core.errors import UserError
    scene = bpy.context.scene
    if name:
        found = scene.objects.get(name)
        if found is None or found.type != "ARMATURE":
            rigs = ", ".join(r.name for r in rigs_in_scene(scene)) or "none"
            raise UserError(f"no rig named {name!r} in the scene (CharacterForge rigs: {rigs})")
        return found
    active = bpy.context.view_layer.objects.active
    if active is not None and active.type == "ARMATURE" and active.characterforge.is_rig:
        return active
    rigs = rigs_in_scene(scene)
    if len(rigs) != 1:
        raise UserError(f"the scene has {len(rigs)} CharacterForge rigs: name one with --rig"
                        + (f" ({', '.join(r.name for r in rigs)})" if rigs else ""))
    return rigs[0]


def main(argv=None):
    args = parse(script_args(argv))
    import bpy
    register_addon()
    from characterforge_addon.blender.backend import backend_process
    from characterforge_addon.blender.rig import pose_from_picture, pose_import
    from characterforge_addon.core.errors import UserError

    files = _files(args.frames) if args.frames else [args.pose] if args.pose else []
    if args.pose and not os.path.isfile(args.pose):
        fail(f"pose file {args.pose}: no such file")
    try:
        if args.blend:
            if not os.path.isfile(args.blend):
                fail(f"--blend {args.blend}: no such file")
            bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend))
            rig = _target(bpy, args.rig)
        elif bpy.data.filepath:
            rig = _target(bpy, args.rig)
        else:
            rig = _new_scene(bpy, _canvas(files[0]) if files else _picture_size(bpy, args.picture))
        context = bpy.context
        scene = context.scene
        for obj in context.selected_objects:
            obj.select_set(False)
        rig.select_set(True)
        context.view_layer.objects.active = rig
        if args.start is not None:
            scene.frame_set(args.start)
        state = rig.characterforge.pose_import
        state.flips = sum(1 << FLIPS.index(name) for name in set(args.flip))
        s = scene.characterforge.pose_import
        s.people, s.person = ("EACH" if args.each else "ONE"), args.person
        s.keyframe = not args.no_keyframe or len(files) > 1  # a sequence is its keys
        s.face, s.min_confidence = not args.no_face, args.min_confidence
        start = time.perf_counter()
        if args.picture:
            apply_job_options(args, scene.characterforge)
            s.picture = os.path.abspath(args.picture)
            try:
                pose_from_picture.start(context, rig, s.picture)
                job_state, message = follow_jobs()
            finally:
                backend_process.stop()
            if job_state != "completed":
                raise UserError(f"pose from picture {job_state}: {message}")
            print(f"[pose] {message}", flush=True)
            print(f"[pose] {rig.name}: {state.fit}", flush=True)
            for line in filter(None, state.left.split(" | ")):
                print(f"[pose]   {line}", flush=True)
        else:
            def progress(report):
                print(f"[pose] {report['source']} -> {report['rig']} frame {report['frame']}: {report['line']}",
                      flush=True)
                for line in report["left"]:
                    print(f"[pose]   {line}", flush=True)
            reports = pose_import.import_files(context, files, rig, s.people, s.person, s.keyframe, s.face,
                                               s.min_confidence, progress)
            print(f"[pose] {len(reports)} pose(s) in {time.perf_counter() - start:.1f} s", flush=True)
    except UserError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or ''} {exc.strerror or exc}".strip())
    if args.save:
        save_blend(bpy, args.save)


if __name__ == "__main__":
    main()
