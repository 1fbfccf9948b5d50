"""Make a character sheet and its identity pack headless.

  python blender_scripts/make_sheet.py --name Hero --prompt "a young knight" [--blend FILE --rig NAME]
  python blender_scripts/make_sheet.py --blend FILE --object NAME --name Car --prompt "a red sports car"
  blender -b FILE -P blender_scripts/make_sheet.py -- --name Hero --prompt "a young knight" [--rig NAME]

Without a .blend, a new adult rig in A-pose is used. The sheet's maps are rendered from the rig
(--maps-only stops there, no backend needed); then the bundled backend generates the sheet,
upscales it, fixes the faces, and the identity pack is written to the characters folder.
--object NAME makes the sheet of a creature (an armature with meshes) or an object (a mesh or a
collection): depth, normal and line-art maps, detail close-ups instead of faces, its kind in
the pack. Options match the sidebar's Characters section.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bootstrap import add_job_options, apply_job_options, fail, follow_jobs, register_addon, script_args  # noqa: E402


def parse(argv):
    p = argparse.ArgumentParser(prog="make_sheet.py", description=__doc__.splitlines()[0])
    p.add_argument("--blend", help=".blend file to open (not needed under blender -b FILE)")
    p.add_argument("--rig", help="rig object name (default: the only rig in the scene)")
    p.add_argument("--object", help="a creature, mesh or collection to make the sheet of (instead of a rig)")
    p.add_argument("--views", help="a creature's or object's whole views: auto (front, three_quarter, side, back, "
                   "top when broad) or names (top, bottom, name=degrees)")
    p.add_argument("--detail-views", help="close-ups of one part (default 'front, three_quarter'; '' for none)")
    p.add_argument("--detail-part", help="the part the close-ups show (a collection's mesh, a bone, a vertex group; "
                   "default: the largest)")
    p.add_argument("--name", required=True, help="character name (letters, digits, '_', '-', '.')")
    p.add_argument("--prompt", default="", help="what the character looks like")
    p.add_argument("--reference", default="", help="a picture of an existing character to keep")
    p.add_argument("--style", help="added to the prompt (default: the sidebar's sheet style)")
    p.add_argument("--negative", help="negative prompt")
    p.add_argument("--width", type=int, default=1536)
    p.add_argument("--height", type=int, default=1024)
    p.add_argument("--body-views", help="e.g. 'front, three_quarter, side, back' or name=degrees")
    p.add_argument("--face-views", help="e.g. 'front, three_quarter, side' ('' for none)")
    p.add_argument("--spacing", type=int, default=16)
    p.add_argument("--sheet-pose", choices=("relaxed", "a_pose", "t_pose", "current"), default="relaxed",
                   help="the pose the character takes on the sheet (the rig itself is not re-posed)")
    p.add_argument("--no-depth", action="store_true", help="condition on the OpenPose sheet only")
    p.add_argument("--upscale", type=float, default=2.0, help="1 to 2 (1: no upscale)")
    p.add_argument("--no-face-detail", action="store_true", help="skip the face detail pass")
    add_job_options(p, out="out/sheets")
    p.add_argument("--maps-only", action="store_true", help="render the sheet maps and stop")
    p.add_argument("--save", help="save the .blend (with the sheet plane) here")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(script_args(argv))
    import bpy
    register_addon()
    from characterforge_addon.blender.backend import backend_process
    from characterforge_addon.blender.characters import characters
    from characterforge_addon.blender.characters.object_sheet import render_object_sheet
    from characterforge_addon.blender.characters.sheet import render_sheet
    from characterforge_addon.blender.rig import posing, rig
    from characterforge_addon.core.errors import UserError

    if args.blend:
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend))
    elif args.object and (not bpy.app.binary_path or not bpy.data.filepath):
        fail(f"--object {args.object} needs the .blend holding it: give --blend FILE")
    elif not bpy.app.binary_path or not bpy.data.filepath:
        bpy.ops.wm.read_homefile(use_empty=True)
        hero = rig.add_rig(bpy.context, args.name, 1.75, "ADULT")
        posing.apply_library_pose(bpy.context, hero, "A_POSE")
    context = bpy.context
    s = context.scene.characterforge
    apply_job_options(args, s)
    s.character_name, s.prompt, s.reference_image = args.name, args.prompt, args.reference
    if args.style is not None:
        s.sheet_style = args.style
    if args.negative is not None:
        s.negative_prompt = args.negative
    if args.body_views is not None:
        s.sheet_body_views = args.body_views
    if args.face_views is not None:
        s.sheet_face_views = args.face_views
    s.sheet_width, s.sheet_height, s.sheet_spacing = args.width, args.height, args.spacing
    s.sheet_pose = args.sheet_pose
    s.sheet_use_depth, s.sheet_upscale, s.sheet_face_detail = not args.no_depth, args.upscale, not args.no_face_detail
    s.sheet_subject = args.object or ""
    for option, setting in (("views", "sheet_object_views"), ("detail_views", "sheet_detail_views"),
                            ("detail_part", "sheet_detail_part")):
        if getattr(args, option) is not None:
            setattr(s, setting, getattr(args, option))
    active = context.view_layer.objects.active
    if not args.object and active is not None and active.type != "ARMATURE":
        context.view_layer.objects.active = None  # headless, a mesh left active in the file is no choice: --object
    try:
        if args.rig:
            target = context.scene.objects.get(args.rig)
            if target is None or target.type != "ARMATURE":
                raise UserError(f"no rig named {args.rig!r} in the scene")
            context.view_layer.objects.active = target
        if args.maps_only:
            folder = os.path.join(os.path.abspath(args.out), args.name, "maps")
            start = time.perf_counter()
            subject = characters.sheet_subject(context)
            if subject.kind == "humanoid":
                record = render_sheet(context, subject.obj, folder, characters.layout_from(s), depth=s.sheet_use_depth,
                                      pose=s.sheet_pose)
            else:
                record = render_object_sheet(context, subject, folder, s.sheet_width, s.sheet_height,
                                             s.sheet_object_views, s.sheet_detail_views, s.sheet_detail_part,
                                             s.sheet_spacing)
                print(f"{subject.kind} '{subject.name}': maps {', '.join(record['files'])}; detail part "
                      f"{record['detail_part'] or 'none'}")
            fill = "" if record["fill"] is None else f", views fill {record['fill']:.0%} of their cells"
            print(f"sheet maps {record['size'][0]}x{record['size'][1]}, {len(record['views'])} views, pose "
                  f"{record['pose']}{fill} -> {folder} ({time.perf_counter() - start:.1f} s)")
            if record["advice"]:
                print(f"note: {record['advice']}")
            print(json.dumps([{k: v[k] for k in ("name", "box")} for v in record["views"]]))
            return
        if not args.prompt.strip() and not args.reference:
            raise UserError("give --prompt or --reference: what does the character look like?")
        try:
            advice = characters.make_sheet(context)
            if advice:
                print(f"note: {advice}")
            state, message = follow_jobs()
        finally:
            backend_process.stop()
    except UserError as exc:
        fail(str(exc))
    if state != "completed":
        fail(f"sheet {state}: {message}")
    print(message)
    if args.save:
        bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(args.save))
        print(f"saved {args.save}")


if __name__ == "__main__":
    main()
