"""Line art for creatures and objects: ours (outlines and creases of the depth render, Cycles'
Normal pass and the parts: core.maps.line_art) against Blender's Freestyle (silhouettes,
borders and creases, drawn as its own render pass), on a cube whose true edges are known,
and their time at two sizes. Prints figures; BENCHMARKS.md records them.

  python blender_scripts/bench/bench_line_art.py [--sizes 256,512] [--repeat 3]

Cleanliness: a smooth-shaded teardrop (a UV sphere drawn to a point, 32 segments): lines drawn
inside its outline (more than 2 pixels in) are noise, its surface being smooth.

Accuracy: a unit cube seen from above and to the side by an orthographic camera; its true
edges per pixel come from casting each pixel's ray at the box (its outline and the three
edges it turns at). Precision: the share of drawn line pixels within 1 pixel of a true edge;
recall: the share of true edge pixels with a drawn line within 1 pixel. Time: what each adds
to a view whose depth and object index are rendered anyway (ours: the normal render and the
numpy pass; Freestyle: its render).
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

DIRECTION = np.array((0.55, -0.7, 0.45)) / np.linalg.norm((0.55, -0.7, 0.45))
EXTENT = 2.4


def true_edges(n):
    """Pixels (n x n) on a unit cube's visible edges for the benchmark's camera."""
    right = np.cross(-DIRECTION, (0, 0, 1))
    right /= np.linalg.norm(right)
    up = np.cross(DIRECTION, right)
    xs = (np.arange(n) + 0.5) * EXTENT / n - EXTENT / 2
    gx, gy = np.meshgrid(xs, -xs)
    origins = (DIRECTION * 6 + gx[..., None] * right + gy[..., None] * up).reshape(-1, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        t0, t1 = (-0.5 - origins) / -DIRECTION, (0.5 - origins) / -DIRECTION
    near, far = np.minimum(t0, t1), np.maximum(t0, t1)
    hit = (near.max(axis=1) <= far.min(axis=1)).reshape(n, n)
    face = np.where(hit, near.argmax(axis=1).reshape(n, n), -1)
    edge = np.zeros((n, n), bool)
    for axis in (0, 1):
        differ = np.diff(face, axis=axis) != 0
        if axis == 0:
            edge[:-1] |= differ
            edge[1:] |= differ
        else:
            edge[:, :-1] |= differ
            edge[:, 1:] |= differ
    return edge & hit


def near(mask, pixels=1):
    out = mask.copy()
    for dy in range(-pixels, pixels + 1):
        for dx in range(-pixels, pixels + 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


def score(lines, edges):
    lines = lines > 0
    precision = float((lines & near(edges)).sum() / max(lines.sum(), 1))
    recall = float((edges & near(lines)).sum() / max(edges.sum(), 1))
    return precision, recall


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_line_art.py")
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(script_args(argv))
    import bpy
    from mathutils import Matrix, Vector
    register_addon()
    import creature_scene
    from characterforge_addon.blender.maps.passes import INDEX_BASE, render_passes
    from characterforge_addon.blender.maps.shape_maps import freestyle_lines, render_normals
    from characterforge_addon.core.maps import line_art

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    box = creature_scene.cube()
    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.data.type, cam.data.ortho_scale, cam.data.clip_start, cam.data.clip_end = "ORTHO", EXTENT, 0.1, 20
    right = np.cross(-DIRECTION, (0, 0, 1))
    right /= np.linalg.norm(right)
    up = np.cross(DIRECTION, right)
    cam.matrix_world = Matrix.Translation(Vector(DIRECTION * 6)) @ Matrix(
        (Vector(right), Vector(up), Vector(DIRECTION))).transposed().to_4x4()
    print(f"{'size':>5} {'method':<34} {'ms':>7} {'precision':>9} {'recall':>7}")
    for size in (int(s) for s in args.sizes.split(",")):
        scene.render.resolution_x = scene.render.resolution_y = size
        edges = true_edges(size)
        depth, index = render_passes(scene, cam, {box: INDEX_BASE + 1})
        ids = np.rint(index).astype(int)
        runs = {"ours: Normal pass + depth/normal edges": [], "Freestyle (render pass)": []}
        found = {}
        for _ in range(args.repeat):
            start = time.perf_counter()
            normals = render_normals(scene, cam)
            found["ours: Normal pass + depth/normal edges"] = line_art.line_art(depth, normals, ids)
            runs["ours: Normal pass + depth/normal edges"].append(time.perf_counter() - start)
            start = time.perf_counter()
            found["Freestyle (render pass)"] = freestyle_lines(scene, cam)
            runs["Freestyle (render pass)"].append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(args.repeat):
            line_art.line_art(depth, normals, ids)
        numpy_ms = (time.perf_counter() - start) / args.repeat * 1000
        for method, times in runs.items():
            precision, recall = score(found[method], edges)
            print(f"{size:>5} {method:<34} {statistics.median(times) * 1000:7.0f} {precision:9.3f} {recall:7.3f}")
        print(f"{size:>5} {'  of which the numpy line pass':<34} {numpy_ms:7.1f}")
    box.hide_render = True
    drop = teardrop(bpy)
    scene.render.resolution_x = scene.render.resolution_y = 256
    depth, index = render_passes(scene, cam, {drop: INDEX_BASE + 1})
    shown = np.rint(index) == INDEX_BASE + 1
    inner = shown & ~near(~shown, 2)
    ours = line_art.line_art(depth, render_normals(scene, cam), np.rint(index).astype(int)) > 0
    theirs = freestyle_lines(scene, cam) > 0
    print(f"teardrop 256²: line pixels inside the outline: ours {int((ours & inner).sum())}, Freestyle "
          f"{int((theirs & inner).sum())} (of {int(inner.sum())} inner pixels)")
    return 0


def teardrop(bpy):
    """A smooth-shaded teardrop: a UV sphere whose upper half narrows to a point."""
    bpy.ops.mesh.primitive_uv_sphere_add(segments=32, ring_count=16, radius=0.6)
    obj = bpy.context.object
    for v in obj.data.vertices:
        if v.co.z > 0:
            v.co.x *= 1 - v.co.z / 0.6
            v.co.y *= 1 - v.co.z / 0.6
            v.co.z *= 1.8
    bpy.ops.object.shade_smooth()
    bpy.context.view_layer.update()
    return obj


if __name__ == "__main__":
    sys.exit(main())
