"""`make demo`: the demo scene, its control maps, the Hero's character sheet and identity
pack, a lantern's sheet and pack (an object: shape maps, no skeleton), a posed character with
the Hero's identity, a background following the set, the characters composited into it (the
Hero with his identity, the lantern with its look) and the Hero's face made happy, generated
by the bundled backend, all saved in a .blend as planes.

  python blender_scripts/make_demo.py --out out/demo [--profile sdxl|tiny|FILE.toml]

Without the profile's models (offline, nothing in the Hugging Face cache) it stops before
generating, with the doctor's report and the command for the offline smoke run.
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bootstrap import ROOT, fail, follow_jobs, register_addon, script_args  # noqa: E402
import make_set  # noqa: E402
import make_shot  # noqa: E402

PROMPT = "full body, a young knight in silver armour and a red cloak, walking, studio lighting, detailed"
BACKGROUND = "a sunlit medieval courtyard with stone walls, wooden crates and a well"
CHARACTER = "a young knight in silver armour and a red cloak, short brown hair, green eyes"
KID = "a small child in a blue tunic and brown boots, curly blond hair"
LANTERN = "an old iron lantern with a warm glowing glass, black metal cap and ring"


def doctor(profile, data):
    """The backend's own doctor, run in its Python (the Blender side never imports torch):
    (ready, its report, what the profile can do)."""
    run = subprocess.run([sys.executable, "-m", "characterforge_addon.backend", "doctor", "--profile", profile,
                          "--data", data], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1")))
    if run.returncode == 2:
        fail(run.stderr.strip().removeprefix("error: "))
    can = next((line.split(":", 1)[1] for line in run.stdout.splitlines() if line.strip().startswith("can do:")), "")
    return run.returncode == 0, run.stdout.strip(), {c.strip() for c in can.split(",") if c.strip()}


def make_character(bpy, settings):
    """The Hero's sheet in A-pose (his walking pose comes back for the shot) and its pack."""
    import shutil

    from characterforge_addon.blender.characters import characters
    from characterforge_addon.blender.rig import posing
    hero = bpy.data.objects["Hero"]
    shutil.rmtree(os.path.join(characters.packs_root(), "Hero"), ignore_errors=True)  # a re-run makes it anew
    settings.character_name, settings.prompt = "Hero", CHARACTER
    bpy.context.view_layer.objects.active = hero
    posing.apply_library_pose(bpy.context, hero, "A_POSE")
    try:
        characters.make_sheet(bpy.context)
    finally:
        posing.apply_library_pose(bpy.context, hero, "WALKING")
    state, message = follow_jobs()
    if state != "completed":
        fail(f"character sheet {state}: {message}")
    print(message, flush=True)
    return os.path.join(characters.packs_root(), "Hero")


def make_prop(bpy, settings):
    """The Lantern (a collection of meshes: an object character): its sheet from depth, normal
    and line-art maps, small and without an upscale (the demo's added time stays short), and
    its pack; then it plays itself in the shot."""
    import shutil

    import demo_scene
    from characterforge_addon.blender.characters import characters
    lantern = demo_scene.add_lantern(bpy)
    shutil.rmtree(os.path.join(characters.packs_root(), "Lantern"), ignore_errors=True)
    saved = (settings.sheet_width, settings.sheet_height, settings.sheet_upscale, settings.sheet_detail_views)
    settings.character_name, settings.prompt, settings.sheet_subject = "Lantern", LANTERN, lantern.name
    settings.sheet_width, settings.sheet_height, settings.sheet_upscale, settings.sheet_detail_views = (
        768, 512, 1.0, "front")
    try:
        advice = characters.make_sheet(bpy.context)
    finally:
        settings.sheet_subject = ""
        settings.sheet_width, settings.sheet_height, settings.sheet_upscale, settings.sheet_detail_views = saved
    state, message = follow_jobs()
    if state != "completed":
        fail(f"the lantern's sheet {state}: {message}")
    print(message + (f" ({advice})" if advice else ""), flush=True)
    lantern.characterforge.is_character = True
    lantern.characterforge.character, lantern.characterforge.prompt = "Lantern", LANTERN
    return os.path.join(characters.packs_root(), "Lantern")


def second_camera(bpy, scene):
    """A camera 50 degrees round the scene from the first, aimed at the same spot."""
    from mathutils import Vector
    cam = bpy.data.objects.new("Camera B", bpy.data.cameras.new("Camera B"))
    scene.collection.objects.link(cam)
    cam.location = (4.4, -2.6, 1.4)
    cam.rotation_euler = (Vector((0.8, 0.4, 0.8)) - cam.location).to_track_quat("-Z", "Y").to_euler()
    cam.data.lens = 35
    return cam


def moving_shot(bpy, scene, out, profile, steps, frames=4):
    """The Hero walks for `frames` frames across the painted set: batch.py's moving shot, carried
    over frame to frame, back as an image sequence, an MP4 and a .blend whose plane plays it."""
    hero = scene.objects["Hero"]
    start = hero.location.copy()
    for frame in (1, frames):
        hero.location = (start.x + 0.12 * (frame - 1), start.y, start.z)
        hero.keyframe_insert("location", frame=frame)
    scene.frame_start, scene.frame_end = 1, frames
    blend = os.path.join(out, "walk.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend, copy=True)
    job = os.path.join(out, "walk.toml")
    with open(job, "w") as f:
        f.write(f'[batch]\noutput = "{os.path.join(out, "walk")}"\nframes = "1-{frames}"\nseeds = [1234]\n'
                f'kind = "shot"\nvideo = true\n[shot]\nsteps = {steps}\nprofile = "{profile}"\n')
    run = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "batch.py"),
                          "--blend", blend, "--job", job, "--save", os.path.join(out, "walk_played.blend")],
                         capture_output=True, text=True)
    if run.returncode:
        fail(f"moving shot: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}")
    flicker = next((line for line in run.stdout.splitlines() if line.startswith("flicker")), "")
    print(f"moving shot: {frames} frames in {os.path.join(out, 'walk')}; {flicker}; plays in walk_played.blend",
          flush=True)
    return {"frames": frames, "folder": os.path.join(out, "walk"), "flicker": flicker}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="make_demo.py", description="Build the CharacterForge demo")
    parser.add_argument("--out", default="out/demo", help="output folder")
    parser.add_argument("--profile", default="sdxl", help="model profile for the generation")
    parser.add_argument("--steps", type=int, default=None, help="denoising steps (default 30, tiny: 4)")
    args = parser.parse_args(script_args(argv))
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    data = os.path.join(out, "backend")

    import bpy
    import demo_scene
    register_addon()
    from characterforge_addon.blender.backend import backend_process
    from characterforge_addon.blender.generation import generation, planes
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.core.errors import UserError

    start = time.perf_counter()
    scene = demo_scene.build(bpy)
    print("demo scene: 2 rigs (Hero walking, Kid sitting), camera, floor, box", flush=True)
    try:
        manifest = controls.render_controls(bpy.context, os.path.join(out, "controls"), normals=True)
    except UserError as exc:
        fail(str(exc))
    print(f"control maps: {', '.join(manifest['files'])} -> {os.path.join(out, 'controls')}", flush=True)
    for person in manifest["people"]:
        print(f"  {person['name']}: {person['visible']} joints visible, {person['occluded']} hidden behind the body")

    ready, report, can = doctor(args.profile, data)
    print(report, flush=True)
    summary = {"controls": manifest, "profile": args.profile, "generated": []}
    if not ready:
        print(f"\ngeneration skipped: profile {args.profile!r} is missing models (see above). For the offline "
              "smoke run with tiny random weights (they produce noise):\n    make demo PROFILE=tiny", flush=True)
    else:
        os.environ.update(CHARACTERFORGE_BACKEND_PYTHON=sys.executable, CHARACTERFORGE_DATA=data,
                          CHARACTERFORGE_PROFILE=args.profile, CHARACTERFORGE_CHARACTERS=os.path.join(out, "characters"))
        settings = scene.characterforge
        settings.random_seed, settings.seed = False, 1234
        settings.steps = args.steps or (4 if "produces noise" in report else 30)
        if "img2img" not in can:  # this profile's family redraws no whole picture: those passes stay off
            settings.sheet_upscale_strength, settings.background_sharp, settings.harmonize = 0.0, False, 0.0
            print(f"profile {args.profile} redraws no whole picture: the sheet's upscale, the background's detail "
                  "pass and harmonizing are off", flush=True)
        settings.results_dir, settings.shot = os.path.join(out, "results"), "Demo shot"
        try:
            summary["character"] = make_character(bpy, settings)
            summary["object_character"] = make_prop(bpy, settings)
            settings.prompt, settings.use_character = PROMPT, True  # the shot keeps the Hero's identity
            generation.generate(bpy.context)
            follow_jobs()
            if settings.job_state == "completed":
                settings.background_prompt = BACKGROUND
                generation.make_background(bpy.context)
                follow_jobs()
            if settings.job_state == "completed":  # both characters into the set, then the Hero smiles
                scene.objects["Hero"].characterforge.character = "Hero"
                scene.objects["Hero"].characterforge.prompt = CHARACTER
                scene.objects["Kid"].characterforge.prompt = KID
                summary["shown"] = [o.name for o in make_shot.shoot(bpy, "happy", "Hero")]
            if settings.job_state == "completed":  # a second angle of the same set: projected, then filled
                summary["set"] = make_set.paint(bpy, ["Camera", second_camera(bpy, scene).name],
                                                ["Demo shot", "Demo shot B"], dome=True)
                scene.camera, settings.shot = scene.objects["Camera"], "Demo shot"
        finally:
            backend_process.stop()
        if settings.job_state != "completed":
            fail(f"generation {settings.job_state}: {settings.job_message}")
        bpy.data.collections["Lantern"].characterforge.is_character = False  # the walk shows the two people only
        summary["moving_shot"] = moving_shot(bpy, scene, out, args.profile, settings.steps)
        shots = bpy.data.collections["CharacterForge Shots"].children
        summary["generated"] = [planes.file_of(o) for shot in ("Demo shot", "Demo shot B") for o in shots[shot].objects]
        print(f"generated {', '.join(summary['generated'])}; image planes in 'CharacterForge Shots/Demo shot', "
              f"shown: {', '.join(summary['shown'])}; the set from a second camera: {'; '.join(summary['set'])}")
    blend = os.path.join(out, "demo.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    summary["blend"] = blend
    with open(os.path.join(out, "demo.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"saved {blend} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
