"""Calibrating the appearance score on pictures this machine makes: Cycles renders of different
meshes (a car block, a four-legged creature, a cart of parts, a teardrop) from eight angles,
each cut out by its own object-index mask as the backend cuts a character's region, embedded
by the profile's image encoder. Prints figures; BENCHMARKS.md records them.

  python blender_scripts/bench/bench_appearance.py [--profile tiny] [--size 128] [--grey]

For every view: `same`, the cosine to the mean of the same object's other views (leave one
out: what a shot of the character scores against its pack), and `other`, the cosine to each
other object's mean; `separated`: the share of (view, other object) pairs where same > other.
--grey renders every object in one grey material: the score then has only the shape to go by.
The `tiny` profile's encoder has random weights: its figures say what the plumbing measures,
not what a trained CLIP ViT-H will; run it with --profile sdxl where that profile's models are.
"""

import argparse
import math
import os
import statistics
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "blender"))
from _bootstrap import register_addon, script_args  # noqa: E402

YAWS = (0, 45, 90, 135, 180, 225, 270, 315)


def build(bpy, grey):
    """{name: Object or Collection} of the test subjects, each away from the others."""
    import creature_scene as cs
    from bench_line_art import teardrop
    things = {"car": cs.car(location=(0, 0, 0)), "creature": cs.quadruped(location=(10, 0, 0)),
              "cart": cs.parts_collection(location=(20, 0, 0))}
    drop = teardrop(bpy)
    drop.location = (30, 0, 0.6)
    drop.data.materials.append(cs.material("drop glass", (0.1, 0.3, 0.8)))
    things["teardrop"] = drop
    if grey:
        paint = cs.material("grey", (0.5, 0.5, 0.5))
        for mesh in bpy.data.meshes:
            mesh.materials.clear()
            mesh.materials.append(paint)
    bpy.context.view_layer.update()
    return things


def render_views(bpy, scene, subject, size):
    """[(RGB pixels, mask)] of `subject` seen from YAWS at 15 degrees above, framed to fill."""
    from mathutils import Matrix, Vector

    from characterforge_addon.blender.characters import object_sheet, subjects
    from characterforge_addon.blender.maps.passes import INDEX_BASE, render_passes
    from characterforge_addon.core.image_io import decode_png
    depsgraph = bpy.context.evaluated_depsgraph_get()
    points = subjects.world_points(subject, depsgraph)
    up, front = object_sheet._frame(subject)
    cam = scene.camera
    others = [o for o in scene.objects if o.type == "MESH" and o not in subject.meshes]
    for o in others:
        o.hide_render = True
    out = []
    try:
        for yaw in YAWS:
            direction, right, image_up = object_sheet.view_axes(up, front, yaw, 15.0, points)
            w, h, (cx, cy) = object_sheet._spans(points, right, image_up)
            cam.data.ortho_scale = max(w, h) / 0.9
            centre = right * cx + image_up * cy + direction * float(points.mean(axis=0) @ direction)
            cam.matrix_world = Matrix.Translation(Vector(centre + direction * 8)) @ Matrix(
                (Vector(right), Vector(image_up), Vector(direction))).transposed().to_4x4()
            bpy.context.view_layer.update()
            path = os.path.join(tempfile.mkdtemp(), "view.png")
            scene.render.filepath = path
            bpy.ops.render.render(write_still=True)
            pixels = decode_png(open(path, "rb").read())[..., :3]
            _, index = render_passes(scene, cam, {m: INDEX_BASE + 1 for m in subject.meshes})
            out.append((pixels, np.rint(index) == INDEX_BASE + 1))
    finally:
        for o in others:
            o.hide_render = False
    return out


def setup_scene(bpy, size):
    scene = bpy.context.scene
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.data.type, cam.data.clip_start, cam.data.clip_end = "ORTHO", 0.1, 40
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.rotation_euler = (math.radians(40), math.radians(20), math.radians(30))
    scene.collection.objects.link(sun)
    scene.world = bpy.data.worlds.new("White")
    scene.world.color = (1, 1, 1)
    scene.render.resolution_x = scene.render.resolution_y = size
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 8
    scene.cycles.device = "CPU"
    scene.view_settings.view_transform = "Standard"
    return scene


def embeddings(bpy, scene, engine, things, size):
    """{object: (views, dim) appearance embeddings of its renders, each cut out by its mask}."""
    from characterforge_addon.backend.engine.appearance import region
    from characterforge_addon.blender.characters import subjects
    return {name: engine.appearance.embed([region(p, m) for p, m in render_views(bpy, scene,
                                                                                  subjects.subject_of(thing), size)])
            for name, thing in things.items()}


def figures(vectors):
    """({object: ([same per view], [other per view and other object])}, (separated, pairs)):
    `same` the cosine of a view to the mean of its object's other views, `other` to another
    object's mean."""
    from characterforge_addon.core.characters.scores import cosine
    means = {n: v.mean(axis=0) for n, v in vectors.items()}
    rows, wins, total = {}, 0, 0
    for name, views in vectors.items():
        mine, theirs = [], []
        for i, v in enumerate(views):
            s = cosine(v, np.delete(views, i, axis=0).mean(axis=0))
            mine.append(s)
            for o in vectors:
                if o != name:
                    theirs.append(cosine(v, means[o]))
                    wins += s > theirs[-1]
                    total += 1
        rows[name] = (mine, theirs)
    return rows, (wins, total)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_appearance.py")
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--grey", action="store_true", help="one grey material for every object")
    parser.add_argument("--models", default=os.path.join(tempfile.gettempdir(), "characterforge-bench-models"))
    args = parser.parse_args(script_args(argv))
    import bpy
    register_addon()
    import torch

    from characterforge_addon.backend.engine.pipelines import Engine
    from characterforge_addon.backend.models import profiles
    torch.set_num_threads(1)

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = setup_scene(bpy, args.size)
    engine = Engine(profiles.load_profile(args.profile), args.models)
    vectors = embeddings(bpy, scene, engine, build(bpy, args.grey), args.size)
    print(f"profile {args.profile} ({engine.appearance.model_name()}), {args.size}² renders, "
          f"{'one grey material' if args.grey else 'their own materials'}, {len(YAWS)} views each")
    print(f"{'object':<10} {'same: mean':>10} {'min':>6} {'other: mean':>11} {'max':>6}")
    rows, (wins, total) = figures(vectors)
    for name, (same, other) in rows.items():
        print(f"{name:<10} {statistics.mean(same):10.3f} {min(same):6.3f} {statistics.mean(other):11.3f} "
              f"{max(other):6.3f}")
    same = [s for a, _ in rows.values() for s in a]
    other = [s for _, b in rows.values() for s in b]
    print(f"{'all':<10} {statistics.mean(same):10.3f} {min(same):6.3f} {statistics.mean(other):11.3f} "
          f"{max(other):6.3f}   separated: {wins}/{total} = {wins / total:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
