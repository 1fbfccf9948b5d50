"""A set seen from each camera that painted it: the rule before issue #27, the texel-density
choice #27 offered as the alternative, and #27's view-dependent blend, side by side in one run,
on a ground plane seen from eye height (`set_scene.py`: ground, two walls, a crate, a pillar;
cameras A and B 50 degrees apart, 1.7 m high).

  python blender_scripts/bench/bench_sets.py [--size 256x192] [--engines CYCLES,BLENDER_EEVEE]
      [--views Standard,AgX,Filmic,Khronos PBR Neutral]

For each rule: A's picture (a smooth test picture) is projected; B fills what that rule finds
unpainted from B (its view of the painted set, the holes given another test picture: what a
fill job returns) and projects it. Then a plain render (F12: the scene's own engine and view
transform) from A and from B is compared with that camera's picture: blurred (2 px) mean
|difference| in levels over the pixels where the camera sees the set. Before #27: the first
layer that paints a point well (facing its camera within 75 degrees, or filled by it) wins,
and the pictures are read as sRGB. Choose: per surface point the first camera's paint is kept
unless a later layer that saw the point is clearly sharper there (its texel at most CLEARLY of
the kept one's), the same for every viewer. #27: core.shots.view_blend's view-dependent weights.
Both of these read the pictures through the colour space that undoes the view transform
(view_colours) and fill from B the same holes (the coverage of #27's material).
Then camera C, halfway: one picture all red, the other all blue, rendered at pixel centres;
the seam is the largest step between neighbouring pixels of one surface (levels of red).
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _bootstrap import register_addon, script_args  # noqa: E402

OLD_MIN_FACING = 0.26  # before #27: beyond about 75 degrees from the camera's ray a surface counted as unpainted
OLD_DEPTH_TOLERANCE = 0.02  # before #27: |depth - the depth at the nearest pixel| within 2 % of it
CLEARLY = 0.5  # choose: a later layer takes a point where its texel is at most half as wide as the kept one's
RULES = {"old": "before #27", "choose": "choose", "new": "#27"}


def node_makers(tree):
    """(math, mix): a Math node of an operation on sockets or numbers, and an RGBA Mix node,
    each added to `tree` and its output returned."""
    from characterforge_addon.blender.sets import set_projection as sp
    nodes, links = tree.nodes, tree.links

    def math(op, *operands):
        node = nodes.new("ShaderNodeMath")
        node.operation = op
        for socket, x in zip(node.inputs, operands):
            if isinstance(x, (int, float)):
                socket.default_value = x
            else:
                links.new(x, socket)
        return node.outputs[0]

    def mix(fac, a, b):
        node = nodes.new("ShaderNodeMix")
        node.data_type = "RGBA"
        links.new(fac, sp._input(node, "Factor_Float"))
        links.new(a, sp._input(node, "A_Color"))
        links.new(b, sp._input(node, "B_Color"))
        return sp._output(node, "Result_Color")

    return math, mix


def old_material(bpy, scene):
    """The set material before #27: each layer where its depth test and 'painted well' flag (the
    data image's green) pass, first layer first; then any layer that saw the point; else HOLE."""
    from characterforge_addon.blender.sets import set_projection as sp
    material = bpy.data.materials[sp.MATERIAL]
    tree = material.node_tree
    tree.nodes.clear()
    nodes, links = tree.nodes, tree.links
    math, mix = node_makers(tree)
    for name in ("viewer_pixel", "viewer_ortho"):  # render_view sets them; this rule ignores the viewer
        nodes.new("ShaderNodeValue").name = name
    hole = nodes.new("ShaderNodeRGB")
    hole.outputs[0].default_value = sp.HOLE
    painted = []
    for layer in sp.layers(scene):
        ax, bx, ay, by, ortho = layer["constants"]
        coords = nodes.new("ShaderNodeTexCoord")
        coords.object = bpy.data.objects.get(layer["projector"])
        xyz = nodes.new("ShaderNodeSeparateXYZ")
        links.new(coords.outputs["Object"], xyz.inputs[0])
        d = math("MULTIPLY", xyz.outputs[2], -1.0)
        qx, qy = (xyz.outputs[0], xyz.outputs[1]) if ortho else (math("DIVIDE", xyz.outputs[0], d),
                                                                  math("DIVIDE", xyz.outputs[1], d))
        u, v = math("MULTIPLY_ADD", qx, ax, bx), math("MULTIPLY_ADD", qy, ay, by)
        uv = nodes.new("ShaderNodeCombineXYZ")
        links.new(u, uv.inputs[0])
        links.new(v, uv.inputs[1])
        inside = math("MULTIPLY", *(math("LESS_THAN", math("ABSOLUTE", math("SUBTRACT", c, 0.5)), 0.5) for c in (u, v)))
        picture = nodes.new("ShaderNodeTexImage")
        picture.image = sp._image(layer["picture"])
        picture.extension = "EXTEND"
        data = nodes.new("ShaderNodeTexImage")
        data.image = sp._image(layer["data"], data=True)
        data.interpolation = "Closest"
        data.extension = "EXTEND"
        for tex in (picture, data):
            links.new(uv.outputs[0], tex.inputs["Vector"])
        channels = nodes.new("ShaderNodeSeparateColor")
        links.new(data.outputs["Color"], channels.inputs[0])
        seen = math("MULTIPLY", inside, math("LESS_THAN", math("ABSOLUTE", math("SUBTRACT", d, channels.outputs[0])),
                                             math("MULTIPLY", d, OLD_DEPTH_TOLERANCE)))
        painted.append((picture.outputs["Color"], seen, math("MULTIPLY", seen, channels.outputs[1])))
    color = hole.outputs[0]
    for picture, seen, _ in reversed(painted):
        color = mix(seen, color, picture)
    for picture, _, good in reversed(painted):
        color = mix(good, color, picture)
    coverage = math("MAXIMUM", painted[0][2], 0.0)
    for _, _, good in painted[1:]:
        coverage = math("MAXIMUM", coverage, good)
    coverage.node.name = "coverage"
    emission = nodes.new("ShaderNodeEmission")
    emission.name = "emission"
    links.new(color, emission.inputs["Color"])
    links.new(emission.outputs[0], nodes.new("ShaderNodeOutputMaterial").inputs["Surface"])


def choose_material(bpy, scene):
    """#27's set material with its colour chosen instead of blended: per point the first layer
    that saw it, replaced by each later layer that saw it with a texel at most CLEARLY as wide
    as the kept one's (the footprints #27's material computes); its coverage node as it is."""
    from characterforge_addon.blender.sets import set_projection as sp
    tree = bpy.data.materials[sp.MATERIAL].node_tree
    nodes, links = tree.nodes, tree.links
    math, mix = node_makers(tree)
    hole = nodes.new("ShaderNodeRGB")
    hole.outputs[0].default_value = sp.HOLE
    none = nodes.new("ShaderNodeValue")
    none.outputs[0].default_value = 1e30  # no layer kept yet: any layer that saw the point is sharper
    color, kept = hole.outputs[0], none.outputs[0]
    for index in range(len(sp.layers(scene))):
        seen, foot = nodes[f"seen {index}"].outputs[0], nodes[f"footprint {index}"].outputs[0]
        take = math("MULTIPLY", seen, math("LESS_THAN", foot, math("MULTIPLY", kept, CLEARLY)))
        color = mix(take, color, nodes[f"picture {index}"].outputs["Color"])
        # take ? foot : kept, exact: a GPU's mix() is a + (b - a) t, which makes 1e30 + (f - 1e30) 0
        kept = math("ADD", math("MULTIPLY", kept, math("SUBTRACT", 1.0, take)), math("MULTIPLY", foot, take))
    links.new(color, nodes["emission"].inputs["Color"])


def paint(bpy, scene, camera, path, rule_name, claimed=None):
    """Project `path` from `camera` by the named rule (a key of RULES)."""
    from characterforge_addon.blender.generation import view_colours
    from characterforge_addon.blender.rig import joints
    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.shots import set_projection as rule
    depth = set_projection.set_depth(scene, camera)
    layer = set_projection.project(bpy.context, camera, path, depth=depth)
    if rule_name == "choose":
        choose_material(bpy, scene)
    if rule_name != "old":
        return
    # before #27: red the depth at the pixel, green "painted well" (facing the camera within 75
    # degrees, or filled here)
    import numpy as np
    surface = depth < rule.BACKGROUND_DEPTH
    good = rule.facing(joints.camera_model(scene, camera), depth) >= OLD_MIN_FACING
    data = np.zeros(depth.shape + (4,), np.float32)
    data[..., 0] = np.where(surface, depth, 0.0)
    data[..., 1] = (good | (claimed if claimed is not None else False)) & surface
    data[..., 3] = 1.0
    set_projection._write_exr(data, layer["data"])
    bpy.data.images.load(layer["data"], check_existing=True).reload()
    old_material(bpy, scene)
    for image in bpy.data.images:  # and the pictures read as sRGB, whatever the view
        if image.get(view_colours.SHOWN):
            del image[view_colours.SHOWN]
            image.colorspace_settings.name = "sRGB"


def seam(bpy, scene, cameras):
    """Steps (levels of red) between neighbouring pixels of one surface in C's view with A's
    picture all red and B's all blue, where the rule hands over from one layer to the other:
    (99th percentile, largest) where both A and B saw both pixels, and the 99th percentile over
    every painted pixel (there the edges of what each camera saw count too)."""
    import numpy as np
    import set_scene

    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.shots import set_projection as rule
    from characterforge_addon.core.image_io import encode_png
    w, h = scene.render.resolution_x, scene.render.resolution_y
    for layer, colour in zip(set_projection.layers(scene), ((230, 20, 20), (20, 20, 230))):
        with open(layer["picture"], "wb") as f:
            f.write(encode_png(np.full((h, w, 3), colour, np.uint8)))
        bpy.data.images.load(layer["picture"], check_existing=True).reload()
    view = set_projection.render_view(scene, cameras["C"]).astype(int)
    seen = set_scene.reference(bpy, scene, cameras["C"], [cameras["A"], cameras["B"]])["seen"]
    one = ~rule.depth_edges(set_projection.set_depth(scene, cameras["C"]))
    painted = one & ((view[..., 0] < 240) | (view[..., 2] < 240))  # not the hole's magenta (no layer saw it)

    def steps(where):
        return np.concatenate([np.abs(np.diff(view[..., 0], axis=axis))[
            np.take(where, range(0, where.shape[axis] - 1), axis=axis) & np.take(where, range(1, where.shape[axis]), axis=axis)]
            for axis in (0, 1)])
    both = steps(one & seen[0] & seen[1])
    return float(np.percentile(both, 99)), int(both.max()), float(np.percentile(steps(painted), 99))


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench_sets.py", description=__doc__.splitlines()[0])
    p.add_argument("--size", default="256x192", help="render size WxH")
    p.add_argument("--engines", default="CYCLES,BLENDER_EEVEE")
    p.add_argument("--views", default="Standard,AgX,Filmic,Khronos PBR Neutral")
    p.add_argument("--out", default="out/bench_sets")
    args = p.parse_args(script_args(argv))
    width, height = (int(x) for x in args.size.lower().split("x"))
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)

    import bpy
    import set_scene
    import user_render
    register_addon()
    from characterforge_addon.blender.generation import view_colours
    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.shots import picture_match
    from characterforge_addon.core.shots import set_projection as rule
    from characterforge_addon.core.image_io import encode_png

    results, seams, filled = {}, {}, {}
    for rule_name in RULES:
        folder = os.path.join(out, rule_name)
        os.makedirs(folder, exist_ok=True)
        scene, cameras = set_scene.build(bpy, (width, height))
        pictures = {"A": set_scene.picture(width, height, 1)}
        with open(os.path.join(folder, "A.png"), "wb") as f:
            f.write(encode_png(pictures["A"]))
        paint(bpy, scene, cameras["A"], os.path.join(folder, "A.png"), rule_name)
        b = cameras["B"]
        surface_b = set_projection.set_depth(scene, b) < rule.BACKGROUND_DEPTH
        holes = rule.unpainted(surface_b, set_projection.render_view(scene, b, coverage=True))
        made = set_projection.render_view(scene, b)
        made[holes] = set_scene.picture(width, height, 2)[holes]
        pictures["B"] = made
        filled[rule_name] = holes.sum() / surface_b.sum()
        with open(os.path.join(folder, "B.png"), "wb") as f:
            f.write(encode_png(made))
        paint(bpy, scene, b, os.path.join(folder, "B.png"), rule_name, claimed=holes)
        seen = {name: set_projection.set_depth(scene, cameras[name]) < rule.BACKGROUND_DEPTH for name in "AB"}
        for engine in args.engines.split(","):
            scene.render.engine = engine
            for view in args.views.split(","):
                scene.view_settings.view_transform = view
                if rule_name != "old":
                    view_colours.match(scene)  # what the UI's message bus does when the user picks a view
                for name in "AB":
                    start = time.perf_counter()
                    shown = user_render.render(bpy, scene, cameras[name])
                    figure = picture_match.difference(shown, pictures[name], seen[name])
                    results[rule_name, engine, view, name] = figure
                    print(f"{rule_name} {engine} {view} from {name}: mean {figure['mean']:.2f} p95 {figure['p95']:.1f} "
                          f"({time.perf_counter() - start:.1f} s)", flush=True)
        seams[rule_name] = seam(bpy, scene, cameras)

    print(f"\nset {width}x{height}; B filled " + ", ".join(f"{filled[r]:.0%} of its view ({RULES[r]})" for r in RULES))
    print("blurred (2 px) mean |difference| (p95) between a plain render and the camera's picture, levels")
    print(f"{'engine':15} {'view':20} {'camera':6}" + "".join(f"{label:>16}" for label in RULES.values()))
    for engine in args.engines.split(","):
        for view in args.views.split(","):
            for name in "AB":
                print(f"{engine:15} {view:20} {name:6}" + "".join(
                    f"{results[r, engine, view, name]['mean']:8.2f} ({results[r, engine, view, name]['p95']:5.1f})"
                    for r in RULES))
    print("camera C (halfway), A's picture all red and B's all blue: steps between neighbouring pixels of one surface")
    for rule_name, (p99, largest, anywhere) in seams.items():
        print(f"  {RULES[rule_name]:10}: where A and B both saw it, 99th percentile "
              f"{p99:.0f} levels, largest {largest}; over everything painted, 99th percentile {anywhere:.0f}")


if __name__ == "__main__":
    main()
