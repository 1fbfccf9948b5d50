"""Paint a set that holds across cameras, headless: the first camera's background (generated
here from --prompt, or the one its shot already has) projected onto the set's geometry, then
each further camera fills only what no camera painted yet. Every camera's shot gets its view
of the set as its background, ready for make_shot.py --shot CAMERA.

  python blender_scripts/make_set.py --blend FILE --cameras A,B[,C...] [--prompt TEXT] [--dome] [options]
  blender -b FILE -P blender_scripts/make_set.py -- --cameras A,B [options]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bootstrap import (add_job_options, apply_job_options, fail, follow_jobs, register_addon, save_blend,  # noqa: E402
                        script_args)


def parse(argv):
    p = argparse.ArgumentParser(prog="make_set.py", description=__doc__.splitlines()[0])
    p.add_argument("--blend", help=".blend file to open (not needed under blender -b FILE)")
    p.add_argument("--cameras", required=True, help="comma-separated cameras; the first one's background is projected")
    p.add_argument("--prompt", help="generate the first camera's background from this (else its shot's own)")
    p.add_argument("--first-shot", help="the first camera's shot (default: the camera's name); the others' are "
                                        "named after their cameras")
    p.add_argument("--dome", action="store_true", help="add a dome for the sky and far land first")
    p.add_argument("--no-sharp", action="store_true", help="no sharp-background prompting and detail pass")
    p.add_argument("--draft", action="store_true", help="quick few-step drafts")
    add_job_options(p, out="out/set")
    p.add_argument("--save", help="save the .blend with the painted set here")
    return p.parse_args(argv)


def paint(bpy, cameras, shots, prompt=None, dome=False):
    """Project the first camera's background, fill from the others; returns one line per camera."""
    from characterforge_addon.blender.generation import generation
    from characterforge_addon.blender.rig import joints
    from characterforge_addon.blender.sets import set_projection, sets
    context, scene = bpy.context, bpy.context.scene
    s = scene.characterforge
    cameras = [joints.find_camera(scene, name) for name in cameras]
    if dome:
        set_projection.add_dome(context, cameras[0])
    lines = []
    for i, (camera, shot) in enumerate(zip(cameras, shots)):
        scene.camera, s.shot = camera, shot
        if i == 0:
            if prompt:
                s.background_prompt, s.background_image = prompt, ""
                _follow(generation.make_background(context))
            lines.append(sets.project_background(context))
        else:
            job = sets.fill_from_camera(context)
            lines.append(_follow(job) if job else f"{camera.name}: every surface painted already")
    return lines


def _follow(job):
    if job is None:
        return ""
    state, message = follow_jobs()
    if state != "completed":
        fail(f"{state}: {message}")
    return message


def main(argv=None):
    args = parse(script_args(argv))
    import bpy
    register_addon()
    from characterforge_addon.blender.backend import backend_process
    from characterforge_addon.core.errors import UserError

    if args.blend:
        if not os.path.isfile(args.blend):
            fail(f"no .blend file at {args.blend}")
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend))
    s = bpy.context.scene.characterforge
    apply_job_options(args, s)
    s.background_sharp, s.draft = not args.no_sharp, args.draft
    cameras = [c.strip() for c in args.cameras.split(",") if c.strip()]
    shots = [args.first_shot or cameras[0]] + cameras[1:]
    start = time.perf_counter()
    try:
        for line in paint(bpy, cameras, shots, args.prompt, args.dome):
            print(line, flush=True)
    except UserError as exc:
        fail(str(exc))
    finally:
        backend_process.stop()
    print(f"set painted for {', '.join(cameras)} in {time.perf_counter() - start:.1f} s; shots: {', '.join(shots)}")
    if args.save:
        save_blend(bpy, args.save)


if __name__ == "__main__":
    main()
