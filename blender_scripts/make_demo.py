"""`make demo`: build the demo scene, render its control maps and save the .blend.

  python blender_scripts/make_demo.py --out out/demo
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bootstrap import fail, register_addon, script_args  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(prog="make_demo.py", description="Build the CharacterForge demo")
    parser.add_argument("--out", default="out/demo", help="output folder")
    args = parser.parse_args(script_args(argv))
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    import bpy
    import demo_scene
    register_addon()
    from characterforge_addon.blender import controls
    from characterforge_addon.core.errors import UserError

    start = time.perf_counter()
    demo_scene.build(bpy)
    print("demo scene: 2 rigs (Hero walking, Kid sitting), camera, floor, box", flush=True)
    try:
        manifest = controls.render_controls(bpy.context, os.path.join(out, "controls"), normals=True)
    except UserError as exc:
        fail(str(exc))
    print(f"control maps: {', '.join(manifest['files'])} -> {os.path.join(out, 'controls')}", flush=True)
    for person in manifest["people"]:
        print(f"  {person['name']}: {person['visible']} joints visible, {person['occluded']} hidden behind the body")
    blend = os.path.join(out, "demo.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    print(f"saved {blend} in {time.perf_counter() - start:.1f} s")
    with open(os.path.join(out, "demo.json"), "w") as f:
        json.dump({"blend": blend, "controls": manifest}, f, indent=1)


if __name__ == "__main__":
    main()
