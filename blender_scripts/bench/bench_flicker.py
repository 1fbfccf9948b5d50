"""A moving shot's flicker, ours against every frame on its own, and the same shot made by a
video model, side by side in one run: the demo scene with the Hero walking across a painted set,
the same seeds and settings, one `batch.py` run with `temporal = true` (the image path, frame by
frame, carried over), one with `temporal = false`, and one with `kind = "animation"` (the video
path: the whole shot in segments of the model's window), each measured the same way.

  python blender_scripts/bench/bench_flicker.py [--profile tiny] [--video-profile tiny-wan-vace] [--frames 6]
                                                [--steps 4] [--paths image,alone,video] [--out out/bench_flicker]

The set is painted from the camera with a synthetic picture (a gradient with a grid), so only
the characters are generated. Flicker: the mean absolute difference (0..255) between each
frame and the frame before carried over by Blender's motion vectors, over pixels that stay
visible (core.shots.motion.flicker). With the tiny profile's random weights the pictures are noise
that ignores its inputs: the figure then says nothing about real models.
"""

import argparse
import math
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _bootstrap import register_addon, script_args  # noqa: E402


def build(bpy, out, frames, resolution):
    import demo_scene
    import numpy as np

    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.image_io import encode_png
    scene = demo_scene.build(bpy, resolution)
    hero = scene.objects["Hero"]
    for frame in (1, frames):  # walks 0.15 m a frame to the right
        hero.location = (-0.15 * (frames - 1) / 2 + 0.15 * (frame - 1), 0, 0)
        hero.keyframe_insert("location", frame=frame)
    bpy.ops.mesh.primitive_plane_add(size=30, location=(0, 6, 5), rotation=(math.pi / 2, 0, 0))
    w, h = resolution
    yy, xx = np.mgrid[0:h, 0:w]
    grid = ((xx // 32 + yy // 32) % 2) * 40
    picture = np.stack([xx * 200 // w + grid, yy * 200 // h + grid, 120 + 0 * xx], -1).astype(np.uint8)
    path = os.path.join(out, "set.png")
    with open(path, "wb") as f:
        f.write(encode_png(picture))
    set_projection.project(bpy.context, scene.camera, path)
    scene.characterforge.prompt = "a knight in silver armour walking"
    blend = os.path.join(out, "walk.blend")
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    return blend


def free_port():
    """A port no other backend on this machine listens on (the bundled backend's default may be taken)."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench_flicker.py", description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="tiny")
    p.add_argument("--frames", type=int, default=6)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--size", type=int, default=256, help="the square frame's side")
    p.add_argument("--out", default="out/bench_flicker")
    p.add_argument("--video-profile", default="tiny-wan-vace", help="the video path's profile")
    p.add_argument("--paths", default="image,alone,video",
                   help="image: carried over frame by frame; alone: every frame on its own; video: a video model")
    args = p.parse_args(script_args(argv))
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    import bpy
    register_addon()
    blend = build(bpy, out, args.frames, (args.size, args.size))
    figures = {}
    runs = {"image": ('kind = "shot"\ntemporal = true\n', args.profile),
            "alone": ('kind = "shot"\ntemporal = false\n', args.profile),
            "video": (f'kind = "animation"\n[animation]\nprofile = "{args.video_profile}"\nheight = {args.size}\n',
                      args.video_profile)}
    for path in args.paths.split(","):
        kind, profile = runs[path]
        job = os.path.join(out, f"{path}.toml")
        batch, _, animation = kind.partition("[animation]")
        with open(job, "w") as f:
            f.write(f'[batch]\noutput = "{out}/{path}"\nframes = "1-{args.frames}"\nseeds = [7]\n{batch}'
                    + (f"[animation]{animation}" if animation else "")
                    + f'[shot]\nsteps = {args.steps}\nprofile = "{args.profile}"\n')
        start = time.perf_counter()
        run = subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "batch.py"), "--blend", blend,
                              "--job", job], capture_output=True, text=True,
                             env=dict(os.environ, CHARACTERFORGE_PROFILE=profile, CHARACTERFORGE_PORT=str(free_port()),
                                      CHARACTERFORGE_DATA=os.path.join(out, "backend"),
                                      CHARACTERFORGE_BACKEND_PYTHON=sys.executable))
        if run.returncode:
            raise SystemExit(run.stderr[-3000:])
        figures[path] = (float(re.search(r"flicker \S+ seed 7: ([0-9.]+)", run.stdout).group(1)),
                         time.perf_counter() - start)
        print(f"{path}: flicker {figures[path][0]:.2f}, {figures[path][1]:.0f} s for {args.frames} frames", flush=True)
    words = {"image": f"{args.profile} carried over", "alone": f"{args.profile} every frame on its own",
             "video": f"{args.video_profile} (video model)"}
    print(f"{args.size}x{args.size}, {args.frames} frames, {args.steps} steps: flicker "
          + ", ".join(f"{words[k]} {v[0]:.2f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
