"""`make docs`: the guide's pictures, made by the project itself so they stay true, and the
job-spec reference page made from the declared specs.

  .venv/bin/python blender_scripts/dev/make_docs.py [--out docs] [--only NAME[,NAME...]]

Every picture comes from the add-on's own code on the demo scene (blender_scripts/demo_scene.py)
in headless Blender (the bpy module), at a small size:
- the rig in Workbench's solid shading (what the viewport shows; Cycles where EGL is missing),
  its bones drawn over it from their projected heads and tails;
- its control maps, by the same render_controls the sidebar's button runs;
- sheet layouts: the sheet maps of the Hero and of the demo's lantern with each view's cell and
  box from their sheet.json;
- Import Pose: an OpenPose file of the walking Hero put onto a fresh rig by the pose solver;
- a set painted from the demo's camera with a test pattern (in place of a generated
  background) and seen from its second camera: what is painted and what is left magenta;
- a moving shot's flicker figure, measured by moving_shots.flicker on Blender's own renders of
  the walking Hero (no generation: the floor a steady sequence reaches);
- the light reference Relight renders for the demo scene with a key and a fill light;
- the Hero's proxy painted by Paint Model from Sheet from a sheet whose views are flat colours;
- the sidebar's sections, drawn from their panels' draw() calls (panel_drawing.py says how).
No picture shows generated output: pictures from tiny random weights are noise and real
weights are not on the machines that make these. The list of pictures is PICTURES below; the
script writes docs/img/pictures.json (each file's SHA-256 and what it shows), which
tests/test_docs.py checks against the pages and the files.
"""

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.dirname(HERE)
ROOT = os.path.dirname(SCRIPTS)
for path in (HERE, SCRIPTS, ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)

# file under docs/img -> what it shows (the pages' alt text says the same in their words)
PICTURES = {
    "strip.png": "from rig to shot: the rig, its OpenPose, depth and hand-depth maps, a sheet layout, a shot's regions",
    "rig.png": "the demo scene's two rigs in Workbench solid shading, bones drawn over them",
    "maps.png": "the control maps of the demo scene: OpenPose, depth, hand depth, normals, a mask per character",
    "pose_import.png": "Import Pose: an OpenPose file put onto a fresh rig, seen from the camera and from the side",
    "sheet_layout.png": "the Hero's sheet maps with each view's cell and box from sheet.json",
    "object_sheet.png": "the lantern's sheet maps (depth, normal, line art) with cells and boxes",
    "shot_regions.png": "what a shot redraws: each character's grown mask and the hand boxes over the camera view",
    "set_coverage.png": "a set painted from one camera, seen from a second: painted, and magenta where none reached",
    "light_reference.png": "the light reference Relight renders: the demo scene's key and fill lights on grey clay",
    "paint_views.png": "a model painted from a sheet whose every view is one flat colour: which view paints which part",
    "flicker.png": "a moving shot's flicker figure: a frame, the one before carried over, their difference, per frame",
    "panel_backend.png": "the sidebar's Backend section with the doctor's report for a 12 GB NVIDIA card",
    "panel_characters.png": "the sidebar's Characters section with a character selected",
    "panel_pose.png": "the sidebar's Pose section with a rig selected, and its Import Pose part",
    "panel_controls.png": "the sidebar's Control Maps section",
    "panel_shot.png": "the sidebar's Shot section for the demo scene",
    "panel_results.png": "the sidebar's Results section with a shot's variants",
}
COLOURS = {**{name: 16 for name in PICTURES if name.startswith("panel_")}, "maps.png": 48, "object_sheet.png": 48,
           "set_coverage.png": 128, "strip.png": 128, "light_reference.png": 24, "paint_views.png": 32}  # the rest: 64 (a PNG of few colours stays small)
PAGES = {"job-specs.md": "every job kind's fields, types, defaults and limits, from core/spec/job_spec.py"}

SIZE = 320  # a picture's width on the page: small files, readable
DEMO = 768  # the demo scene's own render size (make demo's): masks grow and hands are boxed in its pixels


# ---- the job-spec reference (pure: the test builds it again and compares) -----------------------------------------

def _type_words(schema):
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "anyOf" in schema:
        kinds = []
        for option in schema["anyOf"]:
            if option.get("pattern", "").startswith("^sha256:"):
                kinds.append("`sha256:<hex>`")
            elif option.get("contentMediaType") == "image/png":
                kinds.append("PNG (base64)")
            else:
                kinds.append(_type_words(option))
        return " or ".join(dict.fromkeys(kinds))
    kind = schema.get("type", "")
    if kind == "array":
        return f"list of {_type_words(schema.get('items', {}))}"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{v}`" for v in schema["enum"])
    if schema.get("contentMediaType") == "image/png":
        return "PNG (base64)"
    return kind or "any"


def _limits(schema):
    parts = []
    if "minimum" in schema or "maximum" in schema:
        parts.append(f"{schema.get('minimum', '')}..{schema.get('maximum', '')}")
    if schema.get("multipleOf"):
        parts.append(f"multiple of {schema['multipleOf']}")
    if schema.get("maxLength") and schema.get("type") == "string" and "contentMediaType" not in schema:
        parts.append(f"up to {schema['maxLength']} characters")
    if schema.get("maxItems"):
        parts.append(f"up to {schema['maxItems']} items")
    return ", ".join(parts)


def _rows(schema, prefix=""):
    for name, field in schema.get("properties", {}).items():
        path = f"{prefix}{name}"
        default = field.get("default")
        shown = "" if default is None else f"`{json.dumps(default)}`"
        required = name in schema.get("required", ())
        shown = f"{shown} (required)".strip() if required else shown
        yield (f"| `{path}` | {_type_words(field)} | {shown} | "
               f"{_limits(field)} | {field.get('description', '').replace('|', '/')} |")
        if field.get("type") == "object" and field.get("properties"):
            yield from _rows(field, f"{path}.")
        items = field.get("items", {})
        if field.get("type") == "array" and items.get("type") == "object":
            yield from _rows(items, f"{path}[].")
        for key in ("additionalProperties",):
            extra = field.get(key)
            if isinstance(extra, dict) and extra.get("properties"):
                yield from _rows(extra, f"{path}.<name>.")


def job_specs_page():
    """docs/job-specs.md: every job kind's fields from the one declaration both sides check."""
    from characterforge_addon.core.spec import job_spec
    schemas = job_spec.json_schemas()
    lines = ["# Job specs: every field", "",
             "Made by `make docs` from `characterforge_addon/core/spec/job_spec.py`, the declaration the add-on "
             "and the backend both check a job against and the backend publishes at `GET /openapi.json`. "
             "Do not edit by hand: `tests/test_docs.py` fails when it and the declaration differ. "
             "How jobs are sent and answered: [The backend and its API](backend-api.md).", "",
             "Kinds: " + ", ".join(f"[`{kind}`](#{kind})" for kind in job_spec.JOB_KINDS) + ".", ""]
    for kind in job_spec.JOB_KINDS:
        schema = schemas[kind]
        lines += [f"## {kind}", "", f"`\"kind\": \"{kind}\"`", "",
                  "| field | type | default | limits | what it is for |", "| --- | --- | --- | --- | --- |",
                  *_rows(schema), ""]
    return "\n".join(lines)


# ---- the scenes ----------------------------------------------------------------------------------------------------

def _demo(bpy, size=SIZE):
    import demo_scene
    scene = demo_scene.build(bpy, (size, size))
    scene.render.film_transparent = False
    return scene


def _workbench(bpy, scene, camera, path, size):
    """Render `camera`'s view in Workbench's solid shading (Cycles where EGL is missing, which a
    subprocess check finds first), the rigs' proxies shown as the viewport shows them (they stay
    out of the user's renders); returns the (H, W, 3) pixels."""
    from characterforge_addon.core.image_io import decode_png
    proxies = [o for o in scene.objects if str(o.get("characterforge_role", "")).startswith("proxy_") and o.hide_render]
    for obj in proxies:
        obj.hide_render = False
    tmp = scene.copy()
    try:
        tmp.camera = camera
        tmp.render.resolution_x, tmp.render.resolution_y = size
        tmp.render.engine = "BLENDER_WORKBENCH" if _egl_works() else "CYCLES"
        if tmp.render.engine == "CYCLES":
            tmp.cycles.samples, tmp.cycles.use_denoising, tmp.cycles.device = 16, False, "CPU"
        shading = tmp.display.shading
        shading.light, shading.color_type, shading.single_color = "STUDIO", "SINGLE", (0.8, 0.8, 0.8)
        shading.show_cavity, shading.show_object_outline, shading.show_shadows = True, True, False
        tmp.display.render_aa = "8"
        world = bpy.data.worlds.get("docs") or bpy.data.worlds.new("docs")
        world.color = (0.05, 0.05, 0.05)
        tmp.world = world
        tmp.view_settings.view_transform = "Standard"
        settings = tmp.render.image_settings
        settings.file_format, settings.color_mode = "PNG", "RGB"
        tmp.render.filepath = path
        bpy.ops.render.render(write_still=True, scene=tmp.name)
    finally:
        bpy.data.scenes.remove(tmp)
        for obj in proxies:
            obj.hide_render = True
    with open(path, "rb") as f:
        return decode_png(f.read())[..., :3]


_EGL = None


def _egl_works():
    """Workbench needs EGL headless; where it is missing it aborts the whole process, so try it
    once in a child process."""
    global _EGL
    if _EGL is None:
        code = ("import bpy; s = bpy.context.scene; s.render.engine = 'BLENDER_WORKBENCH'; "
                "s.render.resolution_x = s.render.resolution_y = 8; bpy.ops.render.render()")
        _EGL = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=ROOT).returncode == 0
        if not _EGL:
            print("Workbench cannot render here (no EGL): the rig pictures use Cycles", flush=True)
    return _EGL


def _bone_lines(bpy, scene, camera, img, rigs):
    """`img` (Pillow) with each rig's deforming bones drawn from their projected heads to tails,
    as the viewport's wire bones show them."""
    from bpy_extras.object_utils import world_to_camera_view
    from PIL import ImageDraw
    draw = ImageDraw.Draw(img)
    w, h = img.size
    bpy.context.view_layer.update()
    for rig in rigs:
        for bone in rig.pose.bones:
            if not bone.bone.use_deform or bone.name.startswith(("face", "hand_ik", "foot_ik", "pole")):
                continue
            ends = []
            for point in (bone.head, bone.tail):
                v = world_to_camera_view(scene, camera, rig.matrix_world @ point)
                ends.append((v.x * w, (1 - v.y) * h))
            draw.line(ends, fill=(90, 170, 255), width=3)
            draw.ellipse((ends[0][0] - 3, ends[0][1] - 3, ends[0][0] + 3, ends[0][1] + 3), fill=(220, 230, 255))
    return img


def _crop_box(masks, pad, shape):
    """A box (x0, y0, x1, y1) around every mask, `pad` pixels wider, inside `shape` (H, W)."""
    import numpy as np
    ys, xs = np.nonzero(np.any(masks, axis=0))
    h, w = shape
    return (max(0, xs.min() - pad), max(0, ys.min() - pad), min(w, xs.max() + pad), min(h, ys.max() + pad))


def make_rig_and_maps(bpy, tmp, out, made):
    """rig.png, maps.png and shot_regions.png from the demo scene at its own size (768²), cropped
    to its characters; tiles for the strip."""
    import docs_drawing as d
    import numpy as np
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.core.image_io import decode_png
    from characterforge_addon.core.rig import keypoints
    from characterforge_addon.core.shots import shot_regions
    scene = _demo(bpy, DEMO)
    rigs = [scene.objects["Hero"], scene.objects["Kid"]]
    solid = _workbench(bpy, scene, scene.camera, os.path.join(tmp, "rig.png"), (DEMO, DEMO))
    folder = os.path.join(tmp, "controls")
    manifest = controls.render_controls(bpy.context, folder, normals=True, preview=False)

    def read(name):
        with open(os.path.join(folder, name), "rb") as f:
            return decode_png(f.read())

    masks = {rig.name: read(manifest["masks"][rig.name]) > 127 for rig in rigs}
    crop = _crop_box(list(masks.values()), 70, solid.shape[:2])

    def tile(img, text=None, width=240):
        img = d.fit(img.crop(crop), width=width)
        return d.caption(img, text) if text else img

    bones = _bone_lines(bpy, scene, scene.camera, d.image(solid), rigs)
    made["rig.png"] = tile(bones, width=400)
    maps = {name: d.image(read(name)) for name in ("openpose.png", "depth.png", "hand_depth.png", "normal.png")}
    tiles = [tile(maps[name], name) for name in maps]
    tiles += [tile(d.image(read(manifest["masks"][rig.name])), manifest["masks"][rig.name]) for rig in rigs]
    made["maps.png"] = d.grid(tiles, 3)
    # a shot's regions: every character's mask grown by the shot's Grow, the hand boxes the hand pass redraws
    with open(os.path.join(folder, "openpose.json"), encoding="utf-8") as f:
        _, _, people = keypoints.from_openpose_dict(json.load(f))
    grow = scene.characterforge.composite_grow  # in the job's pixels: the demo's 768
    view = np.asarray(solid).astype(np.float32) * 0.55
    colours = {"Hero": (255, 170, 60), "Kid": (90, 200, 255)}
    for rig in rigs:
        mask = controls._grow(masks[rig.name], grow)
        view[mask] = view[mask] * 0.4 + np.array(colours[rig.name]) * 0.6
    regions = d.image(view.clip(0, 255).astype(np.uint8))
    hands = shot_regions.hand_boxes(people, DEMO, DEMO)
    made["shot_regions.png"] = tile(d.boxes(regions, hands, (255, 255, 255), 3), width=400)
    made["_tiles"] = {"rig": tile(bones), "regions": tile(d.boxes(regions, hands, (255, 255, 255), 3)),
                      **{name: tile(img) for name, img in maps.items()}}


def _sheet_picture(folder, record, names, width, labels=True):
    """The sheet's maps (`names`, laid over each other: the first as the ground) with every
    view's cell (grey) and box (yellow, named) from `record` (its sheet.json), `width` wide."""
    import docs_drawing as d
    import numpy as np
    from characterforge_addon.core.image_io import decode_png
    layers = []
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            layers.append(np.asarray(d.image(decode_png(f.read())), dtype=np.float32))
    picture = layers[0] * 0.6
    for layer in layers[1:]:
        drawn = layer.max(axis=2, keepdims=True) > 0
        picture = np.where(drawn, layer, picture)
    img = d.image(picture.clip(0, 255).astype(np.uint8))
    scale = width / img.width
    img = d.fit(img, width=width)
    cells = [[round(v * scale) for v in view["cell"]] for view in record["views"]]
    img = d.boxes(img, cells, (110, 110, 110), 1)
    boxed = [view for view in record["views"] if view.get("box")]
    img = d.boxes(img, [[round(v * scale) for v in view["box"]] for view in boxed], (240, 200, 40), 2,
                  [view["name"] for view in boxed] if labels else None, size=10)
    faces = [view["face_box"] for view in record["views"] if view.get("face_box")]
    return d.boxes(img, [[round(v * scale) for v in box] for box in faces], (90, 200, 255), 1)


def make_sheet_layouts(bpy, tmp, out, made):
    """sheet_layout.png (the Hero's default sheet) and object_sheet.png (the demo's lantern)."""
    import demo_scene
    import docs_drawing as d
    from characterforge_addon.blender.characters import characters
    from characterforge_addon.blender.characters.object_sheet import render_object_sheet
    from characterforge_addon.blender.characters.sheet import render_sheet
    scene = _demo(bpy)
    s = scene.characterforge
    folder = os.path.join(tmp, "sheet")
    record = render_sheet(bpy.context, scene.objects["Hero"], folder, characters.layout_from(s), depth=True,
                          pose=s.sheet_pose)
    made["sheet_layout.png"] = _sheet_picture(folder, record, ("depth.png", "openpose.png"), 640)
    made["_tiles"] = dict(made.get("_tiles", {}), sheet=d.fit(made["sheet_layout.png"], height=200))
    lantern = demo_scene.add_lantern(bpy)
    s.sheet_subject = lantern.name
    subject = characters.sheet_subject(bpy.context)
    folder = os.path.join(tmp, "object_sheet")
    record = render_object_sheet(bpy.context, subject, folder, s.sheet_width, s.sheet_height, s.sheet_object_views,
                                 s.sheet_detail_views, s.sheet_detail_part, s.sheet_spacing)
    tiles = [d.caption(_sheet_picture(folder, record, (name,), 384, labels=name == "depth.png"), name)
             for name in ("depth.png", "normal.png", "lineart.png")]
    made["object_sheet.png"] = d.row(tiles)


def _look_at(bpy, name, location, target, lens=35):
    from mathutils import Vector
    camera = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    bpy.context.scene.collection.objects.link(camera)
    camera.location = location
    camera.rotation_euler = (Vector(target) - Vector(location)).to_track_quat("-Z", "Y").to_euler()
    camera.data.lens = lens
    return camera


def make_pose_import(bpy, tmp, out, made):
    """pose_import.png: the walking Hero, turned 35 degrees, seen by the camera as an OpenPose
    file; the file put onto a rig standing square to the camera by Import Pose; the result from
    the camera and from the side (the depth the solver chose)."""
    import docs_drawing as d
    import numpy as np
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.blender.rig import pose_import, posing
    from characterforge_addon.core.image_io import decode_png
    scene = _demo(bpy, DEMO)
    for name in ("Kid", "Kid_body", "Kid_hands", "Box"):
        bpy.data.objects.remove(scene.objects[name])
    hero = scene.objects["Hero"]
    hero.rotation_euler.z = math.radians(35)
    posing.apply_library_pose(bpy.context, hero, "WALKING")
    folder = os.path.join(tmp, "pose_source")
    manifest = controls.render_controls(bpy.context, folder, preview=False)
    with open(os.path.join(folder, manifest["masks"]["Hero"]), "rb") as f:
        crop = _crop_box([decode_png(f.read()) > 127], 90, (DEMO, DEMO))
    with open(os.path.join(folder, "openpose.png"), "rb") as f:
        drawn = d.image(decode_png(f.read()))
    hero.rotation_euler.z = 0.0
    posing.apply_library_pose(bpy.context, hero, "STANDING")
    before = d.image(_workbench(bpy, scene, scene.camera, os.path.join(tmp, "before.png"), (DEMO, DEMO)))
    bpy.context.view_layer.objects.active = hero
    reports = pose_import.import_files(bpy.context, [os.path.join(folder, "openpose.json")], hero)
    camera_view = _bone_lines(bpy, scene, scene.camera, d.image(
        _workbench(bpy, scene, scene.camera, os.path.join(tmp, "after.png"), (DEMO, DEMO))), [hero])
    centre = np.array(hero.matrix_world.translation) + np.array((0, 0, 0.9))
    side = _look_at(bpy, "Side", tuple(centre + (4.5, 0, 0)), tuple(centre), lens=50)
    side_view = _bone_lines(bpy, scene, side, d.image(_workbench(bpy, scene, side, os.path.join(tmp, "side.png"),
                                                                   (DEMO, DEMO))), [hero])
    fit = reports[0]["line"]
    print(f"  Import Pose fit: {fit}", flush=True)
    h = 520  # the figure is about 415 px tall from there: the same framing as the others
    w = round(h * (crop[2] - crop[0]) / (crop[3] - crop[1]))
    square = (DEMO // 2 - w // 2, DEMO // 2 - h // 2, DEMO // 2 + w // 2, DEMO // 2 + h // 2)
    tiles = [d.caption(d.fit(before.crop(crop), height=260), "the rig before"),
             d.caption(d.fit(drawn.crop(crop), height=260), "the pose file (OpenPose)"),
             d.caption(d.fit(camera_view.crop(crop), height=260), "after Import Pose"),
             d.caption(d.fit(side_view.crop(square), height=260), "the same rig from the side")]
    made["pose_import.png"] = d.caption(d.row(tiles, between="→"), f"fit: {fit}")
    made["_fit"] = fit


def _test_pattern(w, h):
    """A picture to project in place of a generated background: a colour gradient under a grid."""
    import numpy as np
    yy, xx = np.mgrid[0:h, 0:w]
    grid = (((xx // 32) + (yy // 32)) % 2) * 40
    return np.stack([xx * 200 // w + grid, yy * 200 // h + grid, 120 + 0 * xx], -1).astype(np.uint8)


def make_set_coverage(bpy, tmp, out, made):
    """set_coverage.png: the demo's set (floor, box, dome) painted from its camera with a test
    pattern, then seen from its second camera (make_demo.second_camera): what the first camera
    painted, and magenta where it painted nothing, which Fill Set from this Camera generates."""
    import docs_drawing as d
    import make_demo
    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.image_io import encode_png
    size = 384
    scene = _demo(bpy, size)
    first = scene.camera
    second = make_demo.second_camera(bpy, scene)
    set_projection.add_dome(bpy.context, first)
    picture = os.path.join(tmp, "pattern.png")
    with open(picture, "wb") as f:
        f.write(encode_png(_test_pattern(size, size)))
    set_projection.project(bpy.context, first, picture)
    seen = d.image(set_projection.render_view(scene, second))
    tiles = [d.caption(d.image(_test_pattern(size, size)), f"projected from '{first.name}'"),
             d.caption(seen, f"seen from '{second.name}' (magenta: not painted)")]
    made["set_coverage.png"] = d.row(tiles, between="→")


def _plot(figures, mean, width, height):
    """The per-frame flicker as a line plot (matplotlib, Agg), as a Pillow image."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image
    plt.rcParams.update({"font.family": "DejaVu Sans", "font.size": 9, "svg.hashsalt": "characterforge"})
    fig, ax = plt.subplots(figsize=(width / 100, height / 100), dpi=100, facecolor="#2b2b2b")
    ax.set_facecolor("#2b2b2b")
    frames = list(range(2, 2 + len(figures)))
    ax.plot(frames, figures, "o-", color="#5aaaff", label="each frame against the one before, carried over")
    ax.axhline(mean, color="#f0c828", linestyle="--", linewidth=1, label=f"mean {mean:.2f}")
    ax.set_xlabel("frame", color="#e6e6e6")
    ax.set_ylabel("flicker (0..255)", color="#e6e6e6")
    ax.set_ylim(0, max(4.0, max(figures) * 1.3))
    ax.set_xticks(frames)
    ax.tick_params(colors="#e6e6e6")
    for spine in ax.spines.values():
        spine.set_color("#8c8c8c")
    ax.legend(facecolor="#2b2b2b", edgecolor="#8c8c8c", labelcolor="#e6e6e6", loc="upper right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", facecolor=fig.get_facecolor(), metadata={"Software": None})
    plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def make_flicker(bpy, tmp, out, made):
    """flicker.png: the demo's Hero walking 0.15 m a frame for 6 frames, each frame's maps and
    motion rendered by render_controls(motion=True) as a moving shot renders them, each frame's
    picture a Workbench render (no generation), and moving_shots.flicker's figure per frame."""
    import docs_drawing as d
    import numpy as np
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.blender.shots import moving_shots
    from characterforge_addon.core.image_io import decode_png
    from characterforge_addon.core.shots import motion
    size, frames = 384, 6
    scene = _demo(bpy, size)
    hero = scene.objects["Hero"]
    for frame in (1, frames):
        hero.location = (-0.15 * (frames - 1) / 2 + 0.15 * (frame - 1), 0, 0)
        hero.keyframe_insert("location", frame=frame)
    folders, masks = [], []
    for frame in range(1, frames + 1):
        scene.frame_set(frame)
        folder = os.path.join(tmp, "flicker", f"frame_{frame:04d}")
        manifest = controls.render_controls(bpy.context, os.path.join(folder, "controls"), preview=False,
                                            motion=True)
        with open(os.path.join(folder, "controls", manifest["masks"]["Hero"]), "rb") as f:
            masks.append(decode_png(f.read()) > 127)
        _workbench(bpy, scene, scene.camera, os.path.join(folder, moving_shots.RESULT), (size, size))
        folders.append(folder)
    figures, mean = moving_shots.flicker(folders)
    print(f"  flicker of Blender's own renders: {', '.join(f'{v:.2f}' for v in figures)}; mean {mean:.2f}",
          flush=True)
    shown = frames // 2 + 1  # one frame in the middle, against the one before carried over
    with open(os.path.join(folders[shown - 1], moving_shots.RESULT), "rb") as f:
        now = decode_png(f.read())[..., :3]
    with open(os.path.join(folders[shown - 2], moving_shots.RESULT), "rb") as f:
        before = decode_png(f.read())[..., :3]
    where, hole = moving_shots._motion_since(folders[shown - 1], folders[shown - 2], now.shape)
    carried = motion.warp(before, where)
    diff = np.abs(now.astype(np.float32) - carried.astype(np.float32)).mean(axis=2)
    shown_diff = np.repeat(np.clip(diff * 8, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    shown_diff[hole] = (255, 0, 255)
    crop = _crop_box(masks, 40, (size, size))
    tiles = [d.caption(d.fit(d.image(now).crop(crop), height=220), f"frame {shown}"),
             d.caption(d.fit(d.image(carried).crop(crop), height=220), f"frame {shown - 1} carried over"),
             d.caption(d.fit(d.image(shown_diff).crop(crop), height=220),
                       "difference ×8 (magenta: newly seen, not counted)")]
    top = d.row(tiles)
    plot = _plot(figures, mean, top.width, 230)
    made["flicker.png"] = d.caption(d.grid([top, plot], 1),
                                    "Blender's own renders, no generation: the figure of a steady sequence")
    made["_flicker"] = (figures, mean)


DOCTOR = """
import json, os, sys
from characterforge_addon.backend.engine import device
from characterforge_addon.backend.models import models, profiles
card = device.Probe(torch_version="2.14.1+cu128", cuda_build="12.8", available=("cuda", "cpu"),
                    names={"cuda": "NVIDIA GeForce RTX 4070"}, memory={"cuda": (11.6e9, 12.9e9)})
device.probe = lambda: card
report = models.doctor(profiles.load_profile("sdxl", ()), sys.argv[1])
print(json.dumps(report))
"""


def _doctor_report(tmp):
    """The backend's doctor for the sdxl profile on a machine with no models yet and a 12 GB
    NVIDIA card (a stand-in probe, as the backend's tests make one per platform), in the
    backend's own process; the home folder written as ~."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=os.path.expanduser("~/.cache/huggingface"))
    run = subprocess.run([sys.executable, "-c", DOCTOR, os.path.join(tmp, "models")], capture_output=True, text=True,
                         cwd=ROOT, env=env, check=True)
    text = run.stdout.replace(os.path.expanduser("~"), "~").replace(os.path.join(tmp, "models"),
                                                                     "~/.local/share/characterforge/models")
    return json.loads(text)


def make_panels(bpy, tmp, out, made):
    """panel_*.png: each sidebar section drawn from its draw() (panel_drawing.py), in the demo
    scene with the Hero selected, a Hero pack in the characters folder (its pictures blank: only
    its names show), the demo's prompts, and the doctor's report for a 12 GB card."""
    import make_demo
    import numpy as np
    import panel_drawing
    from characterforge_addon.blender import preferences
    from characterforge_addon.blender.backend import operators
    from characterforge_addon.blender.characters import characters
    from characterforge_addon.blender.generation import planes
    from characterforge_addon.blender.ui import backend_panel, panel, pose_import_panel
    from characterforge_addon.core.characters import identity_pack
    from characterforge_addon.core.image_io import encode_png
    if bpy.context.preferences.addons.get(preferences.ADDON_ID) is None:  # real preferences, as an installed add-on has
        bpy.context.preferences.addons.new().module = preferences.ADDON_ID
    preferences.get().characters_dir = os.path.join(tmp, "characters")
    scene = _demo(bpy, DEMO)
    blank = encode_png(np.full((8, 8, 3), 128, np.uint8),
                       {"characterforge": json.dumps({"job": {"prompt": make_demo.CHARACTER}})})
    faces = ("front", "three_quarter", "side", "three_quarter_right")
    identity_pack.create_pack(os.path.join(tmp, "characters"), "Hero", {
        "sheet": blank, **{f"face_{f}": blank for f in faces},
        **{f"view_{v}": blank for v in ("front", "three_quarter", "side", "three_quarter_back", "back")}})
    characters.refresh(scene)
    s = scene.characterforge
    s.active_character, s.character_name, s.prompt = 0, "Hero", make_demo.PROMPT
    s.use_character, s.shot, s.background_prompt = True, "Demo shot", make_demo.BACKGROUND
    hero, kid = scene.objects["Hero"], scene.objects["Kid"]
    hero.characterforge.character, hero.characterforge.prompt = "Hero", make_demo.CHARACTER
    kid.characterforge.prompt = make_demo.KID
    # the Results section lists a shot's planes: a background, a posed character and a composite with its expression
    pattern = os.path.join(tmp, "picture.png")
    with open(pattern, "wb") as f:
        f.write(encode_png(_test_pattern(64, 64)))
    shot = planes.shot_collection(scene, "Demo shot")
    for stem, layer in (("background_seed1234", "background"), ("seed1234", planes.PICTURE),
                        ("shot_seed1234", planes.PICTURE), ("shot_seed1234_happy", planes.PICTURE)):
        obj = planes.import_plane(bpy.context, pattern, scene.camera, 5.0, shot, f"Demo shot_{stem}")
        obj[planes.LAYER] = layer
        planes.show_variant(obj)
    for obj in bpy.context.selected_objects:
        obj.select_set(False)
    hero.select_set(True)
    bpy.context.view_layer.objects.active = hero
    operators.doctor["report"] = _doctor_report(tmp)
    context = bpy.context
    sections = {"panel_backend.png": (backend_panel.CHARACTERFORGE_PT_backend, ()),
                "panel_characters.png": (panel.CHARACTERFORGE_PT_characters, ()),
                "panel_pose.png": (panel.CHARACTERFORGE_PT_pose, (pose_import_panel.CHARACTERFORGE_PT_pose_import,)),
                "panel_controls.png": (panel.CHARACTERFORGE_PT_controls, ()),
                "panel_shot.png": (panel.CHARACTERFORGE_PT_generate, ()),
                "panel_results.png": (panel.CHARACTERFORGE_PT_results, ())}
    for name, (cls, children) in sections.items():
        tree = panel_drawing.record(bpy, context, cls)
        subpanels = [(child.bl_label, panel_drawing.record(bpy, context, child)) for child in children
                     if child.poll(context)]
        made[name] = panel_drawing.draw(tree, cls.bl_label, subpanels=subpanels)
    operators.doctor["report"] = None


def make_light_reference(bpy, tmp, out, made):
    """light_reference.png: the demo scene lit by a key sun from the upper left and a weaker area
    fill from the right, and the light reference Relight renders from it (light_rig.render: the
    lights on grey clay, one Cycles render), with the key light each character gets in words."""
    import docs_drawing as d
    import numpy as np
    from characterforge_addon.blender.shots import light_rig
    from characterforge_addon.core.image_io import decode_png
    from mathutils import Euler
    scene = _demo(bpy, DEMO)
    sun = bpy.data.objects.new("Key", bpy.data.lights.new("Key", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = Euler((math.radians(50), 0, math.radians(-60)))  # from the camera's upper left
    fill = bpy.data.objects.new("Fill", bpy.data.lights.new("Fill", "AREA"))
    fill.data.energy, fill.data.size = 150.0, 2.0
    fill.location = (3.5, -3.0, 2.0)
    fill.rotation_euler = (fill.location.to_track_quat("Z", "Y")).to_euler()
    for light in (sun, fill):
        scene.collection.objects.link(light)
    folder = os.path.join(tmp, "light")
    manifest = light_rig.render(bpy.context, scene.camera, folder)
    with open(os.path.join(folder, "light.png"), "rb") as f:
        picture = d.image(decode_png(f.read()))
    with np.load(os.path.join(folder, "light.npz")) as passes:
        characters = passes["index"] > 0
    crop = _crop_box([characters], int(0.12 * characters.shape[1]), characters.shape)
    words = "; ".join(f"{c['rig']}: key light '{c['key_light']}', {c['words']}" for c in manifest["characters"])
    print(f"  light reference: {words}", flush=True)
    made["light_reference.png"] = d.caption(d.fit(picture.crop(crop), width=400), words)


FLAT = {"front": (220, 60, 60), "three_quarter": (235, 150, 40), "side": (230, 220, 60),
        "three_quarter_back": (70, 180, 90), "back": (60, 110, 220)}  # a body view's colour; face views: white


def make_paint_views(bpy, tmp, out, made):
    """paint_views.png: the Hero's proxy body painted by Paint Model from Sheet from a sheet
    whose every view is one flat colour (its cell filled, no generation), so the model shows which
    view painted which part; holes closed from their neighbours (no backend)."""
    import docs_drawing as d
    import numpy as np
    from characterforge_addon.blender.characters import characters, model_paint
    from characterforge_addon.blender.characters.sheet import render_sheet
    from characterforge_addon.core.characters import identity_pack
    from characterforge_addon.core.image_io import encode_png
    scene = _demo(bpy, DEMO)
    hero = scene.objects["Hero"]
    s = scene.characterforge
    record = render_sheet(bpy.context, hero, os.path.join(tmp, "paint_sheet"), characters.layout_from(s),
                          depth=False, pose=s.sheet_pose)
    w, h = record["size"]
    sheet = np.full((h, w, 3), 236, np.uint8)
    for view in record["views"]:
        x0, y0, x1, y1 = view["cell"]
        sheet[y0:y1, x0:x1] = FLAT.get(view["name"], (245, 245, 245))
    folder = identity_pack.create_pack(os.path.join(tmp, "paint_characters"), "Hero", {"sheet": encode_png(sheet)},
                                       layout=record)
    painting, _ = model_paint.paint(bpy.context, folder, hero, size=512, fill="NEIGHBOURS")
    shares = painting.report["views"]
    centre = np.array(hero.matrix_world.translation) + np.array((0, 0, 0.9))
    tiles = []
    for name, yaw in (("front left", 35), ("back right", 215)):
        a = math.radians(yaw - 90)
        camera = _look_at(bpy, name, tuple(centre + 3.6 * np.array((math.cos(a), math.sin(a), 0.12))), tuple(centre),
                          lens=50)
        tmp_scene_camera = scene.camera
        for obj in scene.objects:  # the painted Hero alone
            obj.hide_render = obj.name not in ("Hero", "Hero_body", "Hero_hands") and obj.type != "CAMERA"
        picture = _flat_render(bpy, scene, camera, os.path.join(tmp, f"paint_{yaw}.png"), (240, 320))
        scene.camera = tmp_scene_camera
        tiles.append(d.caption(d.image(picture), f"seen from the {name}"))
    legend = ", ".join(f"{n.replace('_', ' ')} {shares.get(n, 0):.0%}" for n in FLAT) + \
        f", faces {sum(v for k, v in shares.items() if k.startswith('face')):.0%} of the texels"
    print(f"  paint shares: {legend}", flush=True)
    made["paint_views.png"] = d.caption(d.row(tiles), "red front, orange 3/4, yellow side, green 3/4 back, blue back, "
                                        "white the face close-ups: " + legend, size=11)


def _flat_render(bpy, scene, camera, path, size):
    """What `camera` sees with the materials' own emission (the painted texture), Cycles, 4 samples."""
    from characterforge_addon.core.image_io import decode_png
    tmp = scene.copy()
    try:
        tmp.camera = camera
        tmp.render.resolution_x, tmp.render.resolution_y = size
        tmp.render.engine = "CYCLES"
        tmp.cycles.samples, tmp.cycles.use_denoising, tmp.cycles.device = 4, False, "CPU"
        tmp.cycles.seed = 0
        world = bpy.data.worlds.get("docs") or bpy.data.worlds.new("docs")
        world.color = (0.05, 0.05, 0.05)
        tmp.world = world
        tmp.view_settings.view_transform = "Standard"
        settings = tmp.render.image_settings
        settings.file_format, settings.color_mode = "PNG", "RGB"
        tmp.render.filepath = path
        bpy.ops.render.render(write_still=True, scene=tmp.name)
    finally:
        bpy.data.scenes.remove(tmp)
    with open(path, "rb") as f:
        return decode_png(f.read())[..., :3]


def make_strip(bpy, tmp, out, made):
    """strip.png, the front page's picture: the rig, its OpenPose, depth and hand-depth maps, the
    Hero's sheet layout and a shot's regions, from the tiles the makers above left."""
    import docs_drawing as d
    tiles = made["_tiles"]
    parts = [d.caption(d.fit(tiles["rig"], height=150), "1. pose the rig"),
             d.caption(d.row([d.fit(tiles[n], height=150) for n in ("openpose.png", "depth.png", "hand_depth.png")],
                             gap=4), "2. its maps: OpenPose, depth, hand depth"),
             d.caption(d.fit(tiles["sheet"], height=150), "3. a character sheet's layout"),
             d.caption(d.fit(tiles["regions"], height=150), "4. a shot: what is redrawn")]
    made["strip.png"] = d.row(parts, between="→")


# ---- main ----------------------------------------------------------------------------------------------------------

MAKERS = (  # (maker, the pictures it makes), in order
    (make_rig_and_maps, ("rig.png", "maps.png", "shot_regions.png")),
    (make_sheet_layouts, ("sheet_layout.png", "object_sheet.png")),
    (make_pose_import, ("pose_import.png",)),
    (make_set_coverage, ("set_coverage.png",)),
    (make_flicker, ("flicker.png",)),
    (make_light_reference, ("light_reference.png",)),
    (make_paint_views, ("paint_views.png",)),
    (make_panels, tuple(name for name in PICTURES if name.startswith("panel_"))),
    (make_strip, ("strip.png",)),
)
NEEDS = {"strip.png": ("rig.png", "sheet_layout.png")}  # made from the tiles those makers leave


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="make_docs.py", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs"), help="the docs folder (default: docs/)")
    parser.add_argument("--only", help="comma-separated names of pictures or pages to make again (default: all)")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else set(PICTURES) | set(PAGES)
    unknown = wanted - set(PICTURES) - set(PAGES)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}; pictures: {', '.join(PICTURES)}; pages: "
                     f"{', '.join(PAGES)}")
    args.out = os.path.abspath(args.out)
    os.makedirs(os.path.join(args.out, "img"), exist_ok=True)
    os.chdir(ROOT)  # bpy is imported from the repository (see FACTS: a temporary working folder crashed it once)
    if "job-specs.md" in wanted:
        with open(os.path.join(args.out, "job-specs.md"), "w", encoding="utf-8") as f:
            f.write(job_specs_page())
        print("job-specs.md", flush=True)
    if not wanted & set(PICTURES):
        return
    import bpy
    from _bootstrap import register_addon
    import docs_drawing as d
    register_addon()
    img = os.path.join(args.out, "img")
    made = {}
    with tempfile.TemporaryDirectory(prefix="characterforge-docs-") as tmp:
        run = wanted | {n for name in wanted for n in NEEDS.get(name, ())}
        for maker, names in MAKERS:
            if run & set(names):
                start = time.perf_counter()
                maker(bpy, tmp, img, made)
                print(f"{', '.join(names)} ({time.perf_counter() - start:.1f} s)", flush=True)
        for name in PICTURES:
            if name in made and name in wanted:
                d.save(made[name], os.path.join(img, name), colours=COLOURS.get(name, 64))
    record_path = os.path.join(img, "pictures.json")
    record = {name: {"shows": PICTURES[name], "sha256": sha256(os.path.join(img, name))}
              for name in PICTURES if os.path.isfile(os.path.join(img, name))}
    with open(record_path, "w", encoding="utf-8") as f:
        json.dump({"made_by": "blender_scripts/dev/make_docs.py (make docs)", "pictures": record}, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(img, n)) for n in record)
    print(f"{len(record)} pictures in {img}, {total / 1024:.0f} KiB in all", flush=True)


if __name__ == "__main__":
    main()
