"""`make demo`: the demo scene, its control maps, the Hero's character sheet and identity
pack, a posed character with the Hero's identity and a background following the set, generated
by the bundled backend, all saved in a .blend.

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

PROMPT = "full body, a young knight in silver armour and a red cloak, walking, studio lighting, detailed"
BACKGROUND = "a sunlit medieval courtyard with stone walls, wooden crates and a well"
CHARACTER = "a young knight in silver armour and a red cloak, short brown hair, green eyes"


def doctor(profile, data):
    """The backend's own doctor, run in its Python (the Blender side never imports torch)."""
    run = subprocess.run([sys.executable, "-m", "characterforge_addon.backend", "doctor", "--profile", profile,
                          "--data", data], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, HF_HUB_OFFLINE=os.environ.get("HF_HUB_OFFLINE", "1")))
    if run.returncode == 2:
        fail(run.stderr.strip().removeprefix("error: "))
    return run.returncode == 0, run.stdout.strip()


def make_character(bpy, settings):
    """The Hero's sheet in A-pose (his walking pose comes back for the shot) and its pack."""
    import shutil

    from characterforge_addon.blender import characters, posing
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
    from characterforge_addon.blender import backend_process, controls, generation
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

    ready, report = doctor(args.profile, data)
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
        settings.steps = args.steps or (4 if args.profile == "tiny" else 30)
        settings.results_dir, settings.shot = os.path.join(out, "results"), "Demo shot"
        try:
            summary["character"] = make_character(bpy, settings)
            settings.prompt, settings.use_character = PROMPT, True  # the shot keeps the Hero's identity
            generation.generate(bpy.context)
            follow_jobs()
            if settings.job_state == "completed":
                settings.background_prompt = BACKGROUND
                generation.make_background(bpy.context)
                follow_jobs()
        finally:
            backend_process.stop()
        if settings.job_state != "completed":
            fail(f"generation {settings.job_state}: {settings.job_message}")
        shots = bpy.data.collections["CharacterForge Shots"].children["Demo shot"]
        summary["generated"] = [json.loads(o["characterforge_files"])[0] for o in shots.objects]
        print(f"generated {', '.join(summary['generated'])}; image plane(s) in 'CharacterForge Shots/Demo shot'")
    blend = os.path.join(out, "demo.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    summary["blend"] = blend
    with open(os.path.join(out, "demo.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"saved {blend} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
