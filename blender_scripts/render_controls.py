"""Render CharacterForge control maps headless.

  python blender_scripts/render_controls.py --blend FILE --out DIR [--camera NAME] [--frames A-B]
  blender -b FILE -P blender_scripts/render_controls.py -- --out DIR [--camera NAME] [--frames A-B]

One folder per frame (DIR/frame_0001, ...) when --frames is given, else the maps go into DIR.
Prints a progress line per frame; exits non-zero with a one-line reason on any failure.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bootstrap import fail, register_addon, script_args  # noqa: E402


def parse_frames(text):
    try:
        first, _, last = text.partition("-")
        first, last = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--frames must look like 1-24 or 7, got {text!r}") from None
    if last < first:
        raise argparse.ArgumentTypeError(f"--frames {text}: the last frame is before the first")
    return first, last


def parse(argv):
    parser = argparse.ArgumentParser(prog="render_controls.py", description=__doc__.splitlines()[1].strip())
    parser.add_argument("--blend", help=".blend file to open (not needed under blender -b FILE)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--camera", help="camera object name (default: the scene camera)")
    parser.add_argument("--frames", type=parse_frames, help="frame range A-B, one folder per frame")
    parser.add_argument("--drop-occluded", action="store_true", help="leave out joints hidden behind the body")
    parser.add_argument("--normals", action="store_true", help="also write normal.png")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse(script_args(argv))
    import bpy
    if args.blend:
        if not os.path.isfile(args.blend):
            fail(f"--blend {args.blend}: no such file")
        try:
            bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend))
        except RuntimeError as exc:
            fail(f"cannot open {args.blend}: {str(exc).strip()}")
    elif not bpy.data.filepath and not any(o.type == "ARMATURE" for o in bpy.data.objects):
        fail("no .blend given: pass --blend FILE (or run under blender -b FILE)")
    register_addon()
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.blender.rig import joints
    from characterforge_addon.core.errors import UserError

    scene = bpy.context.scene
    frames = [None] if args.frames is None else list(range(args.frames[0], args.frames[1] + 1))
    try:
        camera = joints.find_camera(scene, args.camera)
        for n, frame in enumerate(frames, start=1):
            start = time.perf_counter()
            out = args.out
            if frame is not None:
                scene.frame_set(frame)
                out = os.path.join(args.out, f"frame_{frame:04d}")
            manifest = controls.render_controls(bpy.context, out, camera, args.drop_occluded, preview=False,
                                                 normals=args.normals)
            label = f"frame {frame}" if frame is not None else f"frame {scene.frame_current}"
            print(f"[{n}/{len(frames)}] {label}: {len(manifest['files'])} maps in {time.perf_counter() - start:.2f} s -> {out}",
                  flush=True)
    except UserError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.filename or ''} {exc.strerror or exc}".strip())


if __name__ == "__main__":
    main()
