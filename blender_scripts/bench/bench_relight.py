"""Benchmarks for issue 32 (relight with the scene's own lights). Prints figures; BENCHMARKS.md
records them.

  python blender_scripts/bench/bench_relight.py [--size 512] [--light-size 1024] [--samples 4] [--repeat 3] [--job]

The demo scene (two rigs, floor, box) lit by a sun and an area light.

1. The light reference (maps.light: Cycles, SAMPLES samples, Diffuse Direct + Indirect, a light
   group per light, object index and depth in one multilayer EXR, read back with numpy) at
   LIGHT_SIZE², at full size and at the default half size, beside the plain alternative: one
   plain Cycles render of the same clay scene at the same samples (Combined only, a PNG).
2. On a picture this machine makes: the scene with textured surfaces (a procedural texture,
   another hue per object) rendered by Cycles with the key light on the right; then the key
   light moved to the upper left and the light reference rendered for it. How much the
   picture's shading agrees with the moved light (the correlation of its linear luminance with
   the rendered diffuse light inside the characters' masks): before; after our re-shading (the
   relight's starting point); after the plain alternative, multiplying the picture by the
   light; and, as the ceiling, the same scene really rendered under the moved light. With
   --job, also after the whole relight job on the tiny profile through a real backend: its
   weights are random, so that number says the path runs, not how good a real model is.
"""

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _bootstrap import register_addon, script_args  # noqa: E402

RIGHT = (math.radians(55), 0.0, math.radians(75))  # the key light before: from the right
UPPER_LEFT = (math.radians(35), 0.0, math.radians(-60))  # after: from the upper left


def lit_demo(bpy, size):
    import demo_scene
    scene = demo_scene.build(bpy, (size, size))
    key = bpy.data.objects.new("Key", bpy.data.lights.new("Key", "SUN"))
    scene.collection.objects.link(key)
    key.data.energy, key.data.angle = 4.0, math.radians(3)
    fill = bpy.data.objects.new("Fill", bpy.data.lights.new("Fill", "AREA"))
    scene.collection.objects.link(fill)
    fill.data.energy, fill.data.size = 150.0, 2.0
    fill.location, fill.rotation_euler = (-3.0, -3.0, 2.5), (math.radians(60), 0.0, math.radians(-45))
    key.rotation_euler = RIGHT
    bpy.context.view_layer.update()
    return scene, key


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def plain_clay_render(bpy, scene, samples, path):
    """The plain alternative: the clay scene rendered once by Cycles, Combined only, to a PNG."""
    from characterforge_addon.blender.maps.light import _clay
    tmp, clay = scene.copy(), _clay()
    try:
        tmp.render.engine, tmp.cycles.device = "CYCLES", "CPU"
        tmp.cycles.samples, tmp.cycles.use_denoising, tmp.cycles.use_adaptive_sampling = samples, False, False
        tmp.cycles.max_bounces = tmp.cycles.diffuse_bounces = 1
        tmp.view_layers[0].material_override = clay
        tmp.render.image_settings.file_format = "PNG"
        tmp.render.filepath = path
        bpy.ops.render.render(write_still=True, scene=tmp.name)
    finally:
        bpy.data.scenes.remove(tmp)
        bpy.data.materials.remove(clay)


def textured():
    """A material every surface shares: a noise texture over a hue of its own per object."""
    import bpy
    material = bpy.data.materials.new("bench textured")
    if material.node_tree is None:
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    info, noise = nodes.new("ShaderNodeObjectInfo"), nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = 18.0
    hue = nodes.new("ShaderNodeHueSaturation")
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (0.12, 0.12, 0.12, 1.0)
    ramp.color_ramp.elements[1].color = (0.75, 0.55, 0.4, 1.0)
    links.new(noise.outputs["Fac"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], hue.inputs["Color"])
    links.new(info.outputs["Random"], hue.inputs["Hue"])
    bsdf = nodes.new("ShaderNodeBsdfDiffuse")
    links.new(hue.outputs["Color"], bsdf.inputs["Color"])
    out = nodes.new("ShaderNodeOutputMaterial")
    links.new(bsdf.outputs[0], out.inputs["Surface"])
    return material


def picture(bpy, scene, samples, path):
    """The textured scene rendered by Cycles as a user would (Standard view), rows top-down."""
    from characterforge_addon.core.image_io import decode_png
    tmp, material = scene.copy(), textured()
    try:
        tmp.render.engine, tmp.cycles.device = "CYCLES", "CPU"
        tmp.cycles.samples, tmp.cycles.use_denoising = samples, False
        tmp.view_settings.view_transform = "Standard"
        tmp.view_layers[0].material_override = material
        tmp.render.image_settings.file_format, tmp.render.image_settings.color_mode = "PNG", "RGB"
        tmp.render.filepath = path
        bpy.ops.render.render(write_still=True, scene=tmp.name)
    finally:
        bpy.data.scenes.remove(tmp)
        bpy.data.materials.remove(material)
    with open(path, "rb") as f:
        return decode_png(f.read())[..., :3]


def relight_job(folder, picture_png, light_dir, manifest, masks, size, steps):
    """The relight job on the tiny profile through a real backend process; the relit pixels."""
    import socket

    from characterforge_addon.blender.maps import light
    from characterforge_addon.client.backend_client import BackendClient, BackendError
    from characterforge_addon.core.image_io import decode_png, encode_png
    from characterforge_addon.core.spec.job_spec import relight_spec
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    server = subprocess.Popen([sys.executable, "-m", "characterforge_addon.backend", "serve", "--profile", "tiny",
                               "--port", str(port), "--data", os.path.join(folder, "backend"), "--token", "bench"],
                              cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = BackendClient(f"http://127.0.0.1:{port}", "bench")
        deadline = time.monotonic() + 180
        while True:
            try:
                client.health()
                break
            except BackendError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        characters = [{"name": name, "mask": encode_png(np.where(m, np.uint8(255), np.uint8(0)))}
                      for name, m in masks.items()]
        spec = relight_spec(picture_png, size, size, manifest["view"], light.spec_light(light_dir, manifest),
                            characters, prompt="two people", seed=1, steps=steps, profile="tiny", strength=0.35)
        started = time.perf_counter()
        job = client.submit(spec)
        while (status := client.status(job))["status"] not in ("completed", "failed", "canceled"):
            time.sleep(0.2)
        if status["status"] != "completed":
            raise RuntimeError(f"the relight job {status['status']}: {status.get('error')}")
        return decode_png(client.result(job, status["results"][0]))[..., :3], time.perf_counter() - started
    finally:
        server.terminate()
        server.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_relight.py")
    parser.add_argument("--size", type=int, default=512, help="the picture's side")
    parser.add_argument("--light-size", type=int, default=1024, help="the side the light reference is timed at")
    parser.add_argument("--samples", type=int, default=4, help="the light reference's samples")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--job", action="store_true", help="also run the relight job on the tiny profile")
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args(script_args(argv))

    import bpy
    register_addon()
    from characterforge_addon.blender.maps import controls, light
    from characterforge_addon.core.image_io import decode_png, encode_png
    from characterforge_addon.core.shots import lighting

    folder = tempfile.mkdtemp(prefix="cf-bench-relight-")
    scene, key = lit_demo(bpy, args.light_size)
    print(f"light reference, demo scene (2 rigs, floor, box; a sun and an area light), {args.light_size}², "
          f"{args.samples} samples, {os.cpu_count()} CPU threads:")
    light.light_reference(bpy.context, scene.camera, os.path.join(folder, "warm"), samples=1, scale=0.25)  # warm-up
    rows = []
    for scale in (1.0, light.SCALE):
        made = []
        total, _ = median_time(lambda: made.append(light.light_reference(
            bpy.context, scene.camera, os.path.join(folder, f"light{scale}"), samples=args.samples, scale=scale)),
            args.repeat)
        render = statistics.median(m["render_s"] for m in made)
        side = round(args.light_size * scale)
        rows.append((scale, total))
        print(f"  ours at {side}² ({scale:.0%} of the frame): {total:.2f} s in all (median of {args.repeat}), "
              f"of which the Cycles render {render:.2f} s; the rest reading the EXR, the per-light and per-"
              "character figures and writing the PNGs")
    plain, _ = median_time(lambda: plain_clay_render(bpy, scene, args.samples, os.path.join(folder, "plain.png")),
                           args.repeat)
    print(f"  plain alternative: one Cycles clay render at {args.light_size}², Combined only, PNG: {plain:.2f} s "
          f"(ours at full size {rows[0][1] / plain:.2f}x, at half size {rows[1][1] / plain:.2f}x)")

    size = args.size
    scene.render.resolution_x = scene.render.resolution_y = size
    manifest = controls.render_controls(bpy.context, os.path.join(folder, "controls"), preview=False)
    masks = {}
    for name, file in manifest["masks"].items():
        with open(os.path.join(folder, "controls", file), "rb") as f:
            masks[name] = decode_png(f.read()) > 127
    union = np.logical_or.reduce(list(masks.values()))
    before = picture(bpy, scene, 16, os.path.join(folder, "lit_right.png"))
    key.rotation_euler = UPPER_LEFT
    bpy.context.view_layer.update()
    moved = light.light_reference(bpy.context, scene.camera, os.path.join(folder, "moved"), samples=16, scale=1.0)
    truth = picture(bpy, scene, 16, os.path.join(folder, "lit_upper_left.png"))
    rgb, coverage, _ = light.read_light(os.path.join(folder, "moved"))
    where = union & coverage
    feather = lighting.blur(union.astype(float), 3.0) * (lighting.blur(union.astype(float), 3.0) > 0.01)
    blend = np.maximum(union, feather)
    with open(os.path.join(folder, "moved", "light_normal.png"), "rb") as f:
        normals = lighting.normals_from_picture(decode_png(f.read()))
    segments = list(masks.values())
    reshaded = {f"ours, re-shaded (shading {amount})": lighting.reshade(before, rgb, coverage, blend, amount, normals,
                                                                         segments)[0] for amount in (0.8, 1.0)}
    reshaded["ours without the normals (shading blurred off)"] = lighting.reshade(before, rgb, coverage, blend, 1.0)[0]
    linear = lighting.srgb_to_linear(before)
    light_lum = lighting.luminance(rgb)
    gain = light_lum / max(light_lum[where].mean(), 1e-9)
    multiplied = np.where(where[..., None], lighting.linear_to_srgb(linear * gain[..., None]), before)
    truth_lum = lighting.luminance(lighting.srgb_to_linear(truth))

    def figures(image):
        """(agreement with the moved light, correlation with the scene really rendered under it)."""
        lum = lighting.luminance(lighting.srgb_to_linear(image))[where]
        return lighting.agreement(image, rgb, where), float(np.corrcoef(lum, truth_lum[where])[0, 1])

    print(f"shading agreement with the moved light (key from the upper left), {size}², inside the characters' "
          f"masks ({int(where.sum())} pixels): the correlation of the picture's luminance with the rendered diffuse "
          "light, and with the scene really rendered under that light:")
    print("  picture                                             light    real render")
    rows = [("before (the picture lit from the right)", before),
            ("plain alternative, picture x light", multiplied)]
    rows += list(reshaded.items())
    rows.append(("ceiling: the scene rendered under that light", truth))
    for label, image in rows:
        a, b = figures(image)
        print(f"  {label:<50} {a:+.3f}   {b:+.3f}")
    print(f"  the moved light's key: {moved['key_light']} {moved['words']}; per character: "
          + ", ".join(f"{c['name']} {c['key_light']} {c['words']}" for c in moved["characters"]))
    if args.job:
        relit, seconds = relight_job(folder, encode_png(before), os.path.join(folder, "moved"), moved, masks, size,
                                     args.steps)
        a, b = figures(relit)
        print(f"  after the whole relight job on the tiny profile ({args.steps} steps, {seconds:.1f} s with the "
              f"backend's start; random weights, so this says the path runs, not how good a model is): "
              f"{a:+.3f}   {b:+.3f}")
    print(f"(pictures in {folder})")


if __name__ == "__main__":
    main()
