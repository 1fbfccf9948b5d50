"""Benchmarks for issue 2 (control maps). Prints figures; BENCHMARKS.md records them.

  python blender_scripts/bench/bench_controls.py [--size 1024] [--frames 24]

1. OpenPose drawing of one full person (body, hands, face) at SIZE² (goal <= 10 ms).
2. The full control-map set for one camera against one plain Cycles depth render of the same
   scene in the same run (goal: set <= 1.05 x (depth render + drawing)).
3. Per-frame time of a headless batch of FRAMES frames (render_controls.py --frames).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _bootstrap import register_addon, script_args  # noqa: E402


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_depth_render(bpy, scene, folder):
    """A depth render as a user would make it: Cycles, 1 sample, Z pass, multilayer EXR."""
    tmp = scene.copy()
    try:
        tmp.render.engine = "CYCLES"
        tmp.cycles.samples = 1
        tmp.cycles.use_denoising = False
        tmp.cycles.use_adaptive_sampling = False
        tmp.view_layers[0].use_pass_z = True
        if hasattr(tmp.render.image_settings, "media_type"):  # Blender 5
            tmp.render.image_settings.media_type = "MULTI_LAYER_IMAGE"
        tmp.render.image_settings.file_format = "OPEN_EXR_MULTILAYER"
        tmp.render.image_settings.color_depth = "32"
        tmp.render.filepath = os.path.join(folder, "plain.exr")
        bpy.ops.render.render(write_still=True, scene=tmp.name)
    finally:
        bpy.data.scenes.remove(tmp)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_controls.py")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(script_args(argv))

    import bpy
    import demo_scene
    register_addon()
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.blender.rig import joints
    from characterforge_addon.core.maps import openpose_draw

    scene = demo_scene.build(bpy, (args.size, args.size))
    cam = joints.camera_model(scene, scene.camera)
    depsgraph = bpy.context.evaluated_depsgraph_get()
    hero = bpy.data.objects["Hero"]
    person, _ = joints.project_rig(scene, depsgraph, scene.camera, cam, hero)
    visible = sum(int((a[:, 2] > 0).sum()) for a in person.parts().values())
    openpose_draw.draw_people(args.size, args.size, [person])  # warm-up
    draw_s = median_time(lambda: openpose_draw.draw_people(args.size, args.size, [person]), 50)
    print(f"openpose drawing, one person ({visible} joints incl. hands and face), {args.size}²: "
          f"{draw_s * 1000:.2f} ms (median of 50; goal <= 10 ms)")

    folder = tempfile.mkdtemp(prefix="cf-bench-")
    plain_depth_render(bpy, scene, folder)  # warm-up: kernels, BVH
    controls.render_controls(bpy.context, os.path.join(folder, "warm"), preview=False)
    timings, plains, fulls = [], [], []
    for _ in range(args.repeat):  # interleaved, so drift in machine load hits both alike
        plains.append(median_time(lambda: plain_depth_render(bpy, scene, folder), 1))
        fulls.append(median_time(lambda: timings.append(
            controls.render_controls(bpy.context, os.path.join(folder, "set"), preview=False)["timings"]), 1))
    plain, full = statistics.median(plains), statistics.median(fulls)
    ratio = full / (plain + draw_s)
    pair_ratios = sorted(f / (p + draw_s) for p, f in zip(plains, fulls))
    last = timings[-1]
    with_normals = median_time(lambda: controls.render_controls(bpy.context, os.path.join(folder, "n"), preview=False,
                                                                normals=True), args.repeat)
    print(f"plain Cycles depth render, {args.size}²: {plain:.3f} s (median of {args.repeat})")
    print(f"full control-map set (2 rigs: openpose png+json, depth, hand depth, 2 masks), {args.size}²: "
          f"{full:.3f} s (median of {args.repeat})")
    print("  split: " + ", ".join(f"{k[:-2]} {v * 1000:.0f} ms" for k, v in last.items()))
    print(f"  ratio set / (depth render + drawing) = {ratio:.3f} (goal <= 1.05); "
          f"per interleaved pair: {', '.join(f'{r:.2f}' for r in pair_ratios)}")
    print(f"the same set with normal.png: {with_normals:.3f} s (ratio {with_normals / (plain + draw_s):.3f})")

    blend = os.path.join(folder, "batch.blend")
    # animate the walker across the frame so every frame differs
    hero.location = (-0.5, 0, 0)
    hero.keyframe_insert("location", frame=1)
    hero.location = (0.5, 0, 0)
    hero.keyframe_insert("location", frame=args.frames)
    scene.frame_start, scene.frame_end = 1, args.frames
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "render_controls.py")
    start = time.perf_counter()
    run = subprocess.run([sys.executable, script, "--blend", blend, "--out", os.path.join(folder, "batch"),
                          "--frames", f"1-{args.frames}"], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode:
        raise SystemExit(f"batch failed: {run.stderr.strip()}")
    per_frame = [float(m) for m in re.findall(r"maps in ([0-9.]+) s", run.stdout)]
    print(f"headless batch, {args.frames} frames at {args.size}²: {wall:.1f} s wall incl. start-up, "
          f"{statistics.mean(per_frame):.3f} s/frame mean, {statistics.median(per_frame):.3f} median, "
          f"{max(per_frame):.3f} max")


if __name__ == "__main__":
    main()
