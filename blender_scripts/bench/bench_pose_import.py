"""Import Pose: how well a rig takes a pose from an OpenPose file, and how long it takes.
Prints figures; BENCHMARKS.md records them.

  python blender_scripts/bench/bench_pose_import.py [--random 5] [--seed 3]

Each source pose (the built-in poses, then random valid poses) is exported through the scene
camera from an adult rig, as the control maps write it; a fresh rig of each proportion (adult,
child, chibi) standing where the adult stood imports it, and its own re-export is compared with
the file: PCK at 0.05 of the person's size and the mean error in pixels, per part (the panel's
fit figure). Beside it the plain alternative, the fresh rig left in its A-pose (what the user
starts from without an import), and the time of one import (the operator, keyframe included).
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "blender"))
from _bootstrap import register_addon, script_args  # noqa: E402

PARTS = ("body", "hands", "face")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_pose_import.py")
    parser.add_argument("--random", type=int, default=5, help="random valid poses after the built-in ones")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(script_args(argv))
    import tempfile

    import bpy
    register_addon()
    from test_pose_import import HEIGHTS, POSES, export, frame_rig, fresh, random_valid_pose, remove

    from characterforge_addon.blender.rig import joints, posing
    from characterforge_addon.core.rig import pose_fit

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_percentage = 100
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.data.lens = 35
    frame_rig(scene, HEIGHTS["ADULT"])
    rng = np.random.default_rng(args.seed)
    sources = [(pose, None) for pose in POSES] + [(f"random {i + 1}", rng) for i in range(args.random)]
    folder = tempfile.mkdtemp(prefix="bench-pose-import-")

    def projected(rig):
        bpy.context.view_layer.update()
        person, _ = joints.project_rig(scene, bpy.context.evaluated_depsgraph_get(), scene.camera,
                                       joints.camera_model(scene, scene.camera), rig)
        return person

    fits = {(preset, how): [] for preset in HEIGHTS for how in ("A-pose, no import", "imported")}
    times = []
    for i, (pose, randomize) in enumerate(sources):
        source = fresh(bpy, "Source", "ADULT")
        if randomize is None:
            posing.apply_library_pose(bpy.context, source, pose)
        else:
            random_valid_pose(bpy, source, randomize)
        path = os.path.join(folder, f"pose{i}.json")
        exported = export(bpy, scene, source, path)
        remove(bpy, source)
        for preset in HEIGHTS:
            target = fresh(bpy, "Target", preset)
            fits[preset, "A-pose, no import"].append(pose_fit.fit_figure(exported, projected(target)))
            start = time.perf_counter()
            assert bpy.ops.characterforge.import_pose(filepath=path) == {"FINISHED"}
            times.append(time.perf_counter() - start)
            fits[preset, "imported"].append(pose_fit.fit_figure(exported, projected(target)))
            remove(bpy, target)

    print(f"{len(sources)} adult poses ({len(POSES)} built-in, {args.random} random valid), "
          f"{scene.render.resolution_x}x{scene.render.resolution_y}, the adult's camera; medians (worst)")
    print(f"{'rig':<7} {'':<18}" + "".join(f" {part + ' PCK':>13} {part + ' px':>12}" for part in PARTS))
    for (preset, how), runs in fits.items():
        cells = []
        for part in PARTS:
            pck = [f[part]["pck"] for f in runs]
            px = [f[part]["mean_px"] for f in runs if f[part]["mean_px"] is not None]
            cells.append(f" {statistics.median(pck):6.2f} ({min(pck):4.2f})"
                         f" {statistics.median(px):5.1f} ({max(px):4.1f})")
        print(f"{preset.lower():<7} {how:<18}" + "".join(cells))
    print(f"one import: median {statistics.median(times) * 1000:.0f} ms, slowest {max(times) * 1000:.0f} ms "
          f"({len(times)} imports)")


if __name__ == "__main__":
    main()
