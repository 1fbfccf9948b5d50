"""Make a shot headless: the background, the characters composited into it, an expression.

  python blender_scripts/make_shot.py --blend FILE [options]
  blender -b FILE -P blender_scripts/make_shot.py -- [options]

  --background-prompt TEXT | --background-image FILE   (else the shot's existing background)
  --character NAME=PACK  the identity pack a rig plays (repeat per rig); a creature (armature),
                         a mesh or a collection named here plays it too, as a character
  --rig-prompt NAME=TEXT what a rig's (creature's, object's) character looks like (repeat)
  --mode inpaint|cutout  --expression happy|sad|angry|surprised|scared|custom [--expression-rig RIG]
  --relight              relight the composite with the scene's own lights (the unlit one kept as a variant)
  --relight-only         relight the shot's picture shown now (no new composite): after moving a light

Options match the sidebar's Shot section; results land as planes in 'CharacterForge Shots/SHOT'.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bootstrap import (add_job_options, apply_job_options, fail, follow_jobs, register_addon, save_blend,  # noqa: E402
                        script_args)

EXPRESSIONS = ("happy", "sad", "angry", "surprised", "scared", "custom")


def parse(argv):
    p = argparse.ArgumentParser(prog="make_shot.py", description=__doc__.splitlines()[0])
    p.add_argument("--blend", help=".blend file to open (not needed under blender -b FILE)")
    p.add_argument("--shot", default="Shot", help="the shot's name (its collection and results folder)")
    p.add_argument("--prompt", help="the characters' default prompt (the sidebar's Prompt)")
    p.add_argument("--negative", help="negative prompt")
    p.add_argument("--background-prompt", help="generate the background from this")
    p.add_argument("--background-image", help="use this picture as the background")
    p.add_argument("--no-set-depth", action="store_true", help="do not follow the set's depth")
    p.add_argument("--no-sharp", action="store_true", help="no sharp-background prompting and detail pass")
    p.add_argument("--character", action="append", default=[], metavar="RIG=PACK")
    p.add_argument("--rig-prompt", action="append", default=[], metavar="RIG=TEXT")
    p.add_argument("--mode", choices=("inpaint", "cutout"), default="inpaint")
    p.add_argument("--no-hands", action="store_true", help="skip the hands' fix pass")
    p.add_argument("--draft", action="store_true",
                   help="quick few-step drafts (the profile's draft settings: TCD, Lightning) of every job")
    p.add_argument("--expression", choices=EXPRESSIONS, help="then change this expression")
    p.add_argument("--expression-words", default="", help="the custom expression in words")
    p.add_argument("--expression-rig", default="", help="whose face (default: the first rig showing one)")
    p.add_argument("--relight", action="store_true", help="relight the composite with the scene's own lights")
    p.add_argument("--relight-only", action="store_true",
                   help="relight the shot's picture shown now with the scene's lights, no new composite")
    p.add_argument("--relight-target", choices=("characters", "character", "whole"), default="characters",
                   help="relight inside every character's mask, one character's (--relight-rig), or the whole shot")
    p.add_argument("--relight-rig", default="",
                   help="the character (rig, creature or object) relit with --relight-target character")
    p.add_argument("--relight-strength", type=float, help="how much the re-shaded picture is redrawn (0.05-1)")
    p.add_argument("--light-samples", type=int, help="Cycles samples of the light reference")
    p.add_argument("--light-scale", type=float, help="the light reference's size as a share of the render's")
    add_job_options(p, out="out/shots")
    p.add_argument("--save", help="save the .blend with the shot's planes here")
    return p.parse_args(argv)


def pairs(values, what):
    out = {}
    for value in values:
        rig, sep, text = value.partition("=")
        if not sep or not rig:
            fail(f"--{what} {value!r}: write RIG=VALUE, e.g. Hero=Hero")
        out[rig] = text
    return out


def run_job(start):
    """Start a job with `start()` and follow it to the end; fail with its message unless it completed."""
    start()
    state, message = follow_jobs()
    if state != "completed":
        fail(f"{state}: {message}")
    print(message, flush=True)


def shoot(bpy, expression=None, expression_rig="", relight_only=False):
    """Composite the shot's characters (or, `relight_only`, relight the picture shown with the
    scene's lights), then (optionally) change one face's expression. Returns the planes shown in
    the shot afterwards."""
    from characterforge_addon.blender.generation import planes
    from characterforge_addon.blender.shots import relight, shots
    context = bpy.context
    s = context.scene.characterforge
    run_job(lambda: relight.relight(context) if relight_only else shots.make_shot(context))
    collection = bpy.data.collections[s.shot]
    if expression:
        s.expression, s.expression_rig = expression.upper(), expression_rig
        # the composite just placed is the picture shown
        composite = next(o for o in collection.objects if o.get(planes.LAYER) == planes.PICTURE and not o.hide_render)
        run_job(lambda: shots.make_expression(context, composite))
    return [o for o in collection.objects if not o.hide_render]


def main(argv=None):
    args = parse(script_args(argv))
    import bpy
    register_addon()
    from characterforge_addon.blender.backend import backend_process
    from characterforge_addon.blender.generation import generation
    from characterforge_addon.blender.rig.rig import rigs_in_scene
    from characterforge_addon.core.errors import UserError

    if args.blend:
        if not os.path.isfile(args.blend):
            fail(f"no .blend file at {args.blend}")
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend))
    context = bpy.context
    scene = context.scene
    s = scene.characterforge
    apply_job_options(args, s)
    s.shot = args.shot
    s.composite_mode, s.fix_hands, s.expression_custom = args.mode.upper(), not args.no_hands, args.expression_words
    s.draft = args.draft
    s.relight_composite, s.relight_target, s.relight_rig = args.relight, args.relight_target.upper(), args.relight_rig
    for option in ("relight_strength", "light_samples", "light_scale"):
        if getattr(args, option) is not None:
            setattr(s, option, getattr(args, option))
    s.background_use_set_depth, s.background_sharp = not args.no_set_depth, not args.no_sharp
    if args.prompt is not None:
        s.prompt = args.prompt
    if args.negative is not None:
        s.negative_prompt = args.negative
    rigs = {r.name: r for r in rigs_in_scene(scene)}
    for option, field, values in (("character", "character", pairs(args.character, "character")),
                                  ("rig-prompt", "prompt", pairs(args.rig_prompt, "rig-prompt"))):
        for name, value in values.items():
            thing = rigs.get(name) or scene.objects.get(name) or bpy.data.collections.get(name)
            playable = isinstance(thing, bpy.types.Collection) or getattr(thing, "type", "") in ("ARMATURE", "MESH")
            if thing is None or not playable:
                fail(f"--{option} {name}=...: the scene has no rig {name!r}, nor a creature, mesh or collection of "
                     f"that name (rigs: {', '.join(rigs) or 'none'})")
            if name not in rigs:  # a creature or an object: it plays a character in the shot
                thing.characterforge.is_character = True
            setattr(thing.characterforge, field, value)
    start = time.perf_counter()
    try:
        if args.background_image:
            s.background_image = os.path.abspath(args.background_image)
            generation.make_background(context)
        elif args.background_prompt:
            s.background_prompt, s.background_image = args.background_prompt, ""
            run_job(lambda: generation.make_background(context))
        shown = shoot(bpy, args.expression, args.expression_rig, args.relight_only)
    except UserError as exc:
        fail(str(exc))
    finally:
        backend_process.stop()
    print(f"shot '{args.shot}': {', '.join(o.name for o in shown)} in {time.perf_counter() - start:.1f} s")
    if args.save:
        save_blend(bpy, args.save)


if __name__ == "__main__":
    main()
