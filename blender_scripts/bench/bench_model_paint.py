"""Benchmark for issue 27, part 2: a character's sheet painted onto its own model.

  python blender_scripts/bench/bench_model_paint.py [--size 1024] [--sheet 1536x1024] [--factor 2]

The default rig in its default sheet layout, and a *known* sheet picture: the rig's proxy
rendered from every view's own camera with a colour pattern fixed to its surface (what a
perfectly consistent generated sheet would be), laid into the sheet's cells at the sheet's
upscale. That sheet is painted onto the proxy (bake at --size), and the painted proxy is
rendered from each view's camera and compared with the view's cell: mean and 95th percentile
of the per-pixel mean |difference| in levels. A second sheet tints every view differently
(as a generated sheet's views differ): how much of its own picture each view keeps shows
the blending rule's preference for the view that sees a surface best. Then the colour
management: the painted model rendered with the scene's own view transform (Standard, AgX,
Filmic; Cycles, and EEVEE where this machine has EGL) against the sheet. Prints one JSON line
per figure. Holes are closed from their neighbours (no backend: the fill is tested with the
tiny backend in tests/blender/test_model_paint.py).
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

BACKGROUND = (236, 236, 236)  # a generated sheet's light background
PERIOD = 0.3  # metres: the pattern's wavelength on the body
AMPLITUDE = 0.35  # the pattern's swing around mid-grey (0.35: saturated colours, 0.15: muted ones)


def pattern_material(bpy, name, tint=(1.0, 1.0, 1.0), amplitude=AMPLITUDE):
    """An emission material coloured by the surface's own (object-space) position: sines of
    x, y and z with PERIOD swinging `amplitude` around mid-grey, times `tint`; the same on the
    posed copy from every camera."""
    material = bpy.data.materials.new(name)
    if material.node_tree is None:  # Blender 4.2: a material gets its nodes on request
        material.use_nodes = True
    tree = material.node_tree
    tree.nodes.clear()
    coords = tree.nodes.new("ShaderNodeTexCoord")
    xyz = tree.nodes.new("ShaderNodeSeparateXYZ")
    tree.links.new(coords.outputs["Object"], xyz.inputs[0])
    combine = tree.nodes.new("ShaderNodeCombineColor")
    for i, (axis, phase) in enumerate(zip(xyz.outputs[:3], (0.0, 1.3, 2.1))):
        angle = tree.nodes.new("ShaderNodeMath")
        angle.operation = "MULTIPLY_ADD"
        tree.links.new(axis, angle.inputs[0])
        angle.inputs[1].default_value = 2 * math.pi / PERIOD
        angle.inputs[2].default_value = phase
        sine = tree.nodes.new("ShaderNodeMath")
        sine.operation = "SINE"
        tree.links.new(angle.outputs[0], sine.inputs[0])
        level = tree.nodes.new("ShaderNodeMath")
        level.operation = "MULTIPLY_ADD"
        tree.links.new(sine.outputs[0], level.inputs[0])
        level.inputs[1].default_value = amplitude * tint[i]
        level.inputs[2].default_value = 0.5 * tint[i]
        tree.links.new(level.outputs[0], combine.inputs[i])
    emission = tree.nodes.new("ShaderNodeEmission")
    tree.links.new(combine.outputs[0], emission.inputs["Color"])
    out = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(emission.outputs[0], out.inputs["Surface"])
    return material


def synthetic_sheet(bpy, rig, record, factor=1.0, tints=None, meshes=None, amplitude=AMPLITUDE):
    """The known sheet picture (H, W, 3) uint8 for `record` (render_sheet's), `factor` times its
    size: each view's cell is the rig's meshes (or `meshes`, a model without a rig) rendered by
    that view's own camera with the pattern (`tints`: {view name: (r, g, b) factors}) on
    BACKGROUND."""
    import numpy as np

    from characterforge_addon.blender.characters import model_paint
    from characterforge_addon.blender.rig.rig import character_meshes
    width, height = record["size"]
    W, H = int(round(width * factor)), int(round(height * factor))
    sheet = np.zeros((H, W, 3), np.uint8)
    sheet[:] = BACKGROUND
    if meshes is None:
        body, hands = character_meshes(rig)
        meshes = body + hands
    with model_paint.sheet_pose(bpy.context, rig, meshes, record) as stage:
        cameras, _ = model_paint.view_cameras(stage, rig, record)
        materials = []
        try:
            for view in record["views"]:
                tint = (tints or {}).get(view["name"], (1.0, 1.0, 1.0))
                material = pattern_material(bpy, f".pattern {view['name']}", tint, amplitude)
                materials.append(material)
                for copy in stage.copies.values():
                    copy.data.materials.clear()
                    copy.data.materials.append(material)
                x0, y0, x1, y1 = view["cell"]
                x0, x1 = int(round(x0 * W / width)), int(round(x1 * W / width))
                y0, y1 = int(round(y0 * H / height)), int(round(y1 * H / height))
                rgba = _render(bpy, stage, cameras[view["name"]], (x1 - x0, y1 - y0))
                alpha = rgba[..., 3:4] / 255.0
                sheet[y0:y1, x0:x1] = np.rint(rgba[..., :3] * alpha + np.array(BACKGROUND) * (1 - alpha))
        finally:
            for copy in stage.copies.values():
                copy.data.materials.clear()
            for material in materials:
                bpy.data.materials.remove(material)
    return sheet


def _render(bpy, stage, camera, resolution):
    from characterforge_addon.blender.maps.passes import exact_cycles
    from characterforge_addon.core.image_io import decode_png
    scene = stage.scene
    stage.render_at(camera, resolution)
    exact_cycles(scene, transparent=True)
    scene.view_settings.view_transform = "Standard"
    settings = scene.render.image_settings
    settings.file_format, settings.color_mode, settings.color_depth = "PNG", "RGBA", "8"
    path = os.path.join(tempfile.mkdtemp(prefix="characterforge-bench-"), "cell.png")
    scene.render.filepath = path
    bpy.ops.render.render(write_still=True, scene=scene.name)
    with open(path, "rb") as f:
        pixels = decode_png(f.read())
    os.remove(path)
    os.rmdir(os.path.dirname(path))
    return pixels


def make_pack(bpy, rig, root, name, sheet_size=(1536, 1024), factor=2.0, tints=None, prompt="a knight in red armour",
              face_views=None, amplitude=AMPLITUDE):
    """Render the rig's sheet maps, make the known sheet and keep both as an identity pack;
    `tints`: "views" to tint every view differently. Returns (pack folder, sheet record)."""
    from characterforge_addon.blender.characters.sheet import render_sheet
    from characterforge_addon.core.characters import identity_pack, sheet_layout
    from characterforge_addon.core.image_io import encode_png
    maps = tempfile.mkdtemp(prefix="characterforge-bench-maps-")
    layout = sheet_layout.plan_sheet(*sheet_size, **({} if face_views is None else {"face_views": face_views}))
    record = render_sheet(bpy.context, rig, maps, layout, depth=False)
    if tints == "views":  # from red-ish to blue-ish, view by view
        levels = [0.8 + 0.4 * i / max(len(record["views"]) - 1, 1) for i in range(len(record["views"]))]
        tints = {v["name"]: (lv, 1.0, 2.0 - lv) for v, lv in zip(record["views"], levels)}
    picture = synthetic_sheet(bpy, rig, record, factor, tints, amplitude=amplitude)
    png = encode_png(picture, {"characterforge": json.dumps({"job": {"prompt": prompt}})})
    return identity_pack.create_pack(root, name, {"sheet": png}, layout=record), record


def user_render(bpy, scene, camera, resolution, engine, samples=16):
    """(H, W, 3) uint8: an F12 render of the user's scene with its own view settings, from a camera
    standing where `camera` (a ViewCamera) says, at `resolution`, with `engine` and `samples`."""
    from characterforge_addon.blender.characters.sheet import place_camera
    from characterforge_addon.core.image_io import decode_png
    obj = bpy.data.objects.get("Bench camera") or bpy.data.objects.new("Bench camera", bpy.data.cameras.new("Bench"))
    if obj.name not in scene.collection.objects:
        scene.collection.objects.link(obj)
    place_camera(obj, camera)
    scene.camera = obj
    scene.render.resolution_x, scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.engine = engine
    if engine == "CYCLES":
        scene.cycles.samples, scene.cycles.device = samples, "CPU"
    else:
        scene.eevee.taa_render_samples = samples
    path = os.path.join(tempfile.mkdtemp(prefix="characterforge-bench-"), "f12.png")
    scene.render.filepath = path
    scene.render.image_settings.file_format, scene.render.image_settings.color_mode = "PNG", "RGB"
    bpy.ops.render.render(write_still=True, scene=scene.name)
    with open(path, "rb") as f:
        pixels = decode_png(f.read())[..., :3]
    os.remove(path)
    os.rmdir(os.path.dirname(path))
    return pixels


def colour_figures(bpy, painting, view_name="front", engines=("CYCLES",), transforms=("Standard", "AgX", "Filmic",
                   "Khronos PBR Neutral")):
    """[(view transform, engine, texture colour space, mean, p95)]: the painted model in the user's
    scene (its rig posed as the sheet) rendered from `view_name`'s camera with each view transform
    and engine, against the sheet's cell; the texture marked plain sRGB, then as painting marks it."""
    import numpy as np

    from characterforge_addon.blender.characters import model_paint
    from characterforge_addon.core.characters import model_paint as rule
    scene = bpy.context.scene
    view = next(v for v in painting.record["views"] if v["name"] == view_name)
    (width, height), (ph, pw) = painting.record["size"], painting.picture.shape[:2]
    x0, y0, x1, y1 = view["cell"]
    x0, x1, y0, y1 = (int(round(x0 * pw / width)), int(round(x1 * pw / width)), int(round(y0 * ph / height)),
                      int(round(y1 * ph / height)))
    cell = painting.picture[y0:y1, x0:x1]
    figure = rule.inner_distance(np.any(cell != BACKGROUND, -1), 3) >= 3  # the model, 2 pixels in from its outline
    images = [bpy.data.materials[f"{model_paint.MATERIAL} ({n})"].node_tree.nodes["texture"].image
              for n in painting.meshes]
    kept = scene.view_settings.view_transform
    rows = []
    try:
        for transform in transforms:
            scene.view_settings.view_transform = transform
            ours, _ = model_paint.colour_space(scene, "EMISSION")
            for engine in engines:
                for space in ("sRGB", ours):
                    for image in images:
                        image.colorspace_settings.name = space
                    render = user_render(bpy, scene, painting.cameras[view_name], (x1 - x0, y1 - y0), engine)
                    rows.append((transform, engine, space) + rule.compare(render, cell, figure))
    finally:
        scene.view_settings.view_transform = kept
        space, _ = model_paint.colour_space(scene, "EMISSION")
        for image in images:
            image.colorspace_settings.name = space
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench_model_paint.py", description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=1024, help="texture size (pixels a side)")
    p.add_argument("--sheet", default="1536x1024", help="sheet layout size")
    p.add_argument("--factor", type=float, default=2.0, help="the sheet's upscale")
    p.add_argument("--no-eevee", action="store_true", help="skip EEVEE (it needs EGL)")
    p.add_argument("--no-colours", action="store_true", help="skip the colour-management renders")
    args = p.parse_args(argv)
    import bpy

    import characterforge_addon
    characterforge_addon.register()
    from characterforge_addon.blender.characters import model_paint
    from characterforge_addon.blender.rig import posing
    from characterforge_addon.blender.rig import rig as rigs
    bpy.ops.wm.read_homefile(use_empty=True)
    hero = rigs.add_rig(bpy.context, "Hero", 1.75, "ADULT", (0.0, 0.0, 0.0))
    root = tempfile.mkdtemp(prefix="characterforge-bench-packs-")
    sheet_size = tuple(int(v) for v in args.sheet.split("x"))
    out = []

    def emit(**row):
        print(json.dumps(row), flush=True)
        out.append(row)

    for label, tints, amplitude in (("consistent", None, AMPLITUDE), ("tinted", "views", AMPLITUDE),
                                    ("muted", None, 0.15)):
        if label == "muted" and args.no_colours:
            continue
        folder, record = make_pack(bpy, hero, root, f"Hero_{label}", sheet_size, args.factor, tints,
                                   amplitude=amplitude)
        t = time.perf_counter()
        painting, message = model_paint.paint(bpy.context, folder, hero, size=args.size, fill="NEIGHBOURS")
        wall = time.perf_counter() - t
        timings = painting.report["timings"]
        emit(sheet=label, texture=args.size, sheet_size=f"{sheet_size[0]}x{sheet_size[1]} x{args.factor}",
             paint_s=round(wall, 2), **{k: v for k, v in timings.items() if k != "paint_s"},
             texels=painting.report["texels"], holes_after_views=painting.report["holes_after_views"],
             closed_from_neighbours=painting.report["closed_from_neighbours"], views=painting.report["views"])
        if label != "muted":
            for view, (mean, p95) in model_paint.check_views(bpy.context, painting).items():
                emit(sheet=label, view=view, mean=mean, p95=p95)
        if not args.no_colours and label in ("consistent", "muted"):
            posing.apply_library_pose(bpy.context, hero, "STANDING")  # the user's rig as the sheet shows it
            engines = ("CYCLES",) if args.no_eevee else ("CYCLES", "BLENDER_EEVEE")
            for transform, engine, space, mean, p95 in colour_figures(bpy, painting, engines=engines):
                emit(sheet=label, render="F12 front", view_transform=transform, engine=engine, texture_space=space,
                     mean=mean, p95=p95)
            posing.reset_pose(hero)
            bpy.context.view_layer.update()
        model_paint.remove(bpy.context.scene, hero)
    return out


if __name__ == "__main__":
    main()
