"""Every .blend that `make demo PROFILE=tiny` leaves, rendered as a user renders it (F12: the
file's own engine, samples and view transform, at a quarter of its resolution), from every shot
camera (and two frames of the moving shot): each shows the picture its shown planes hold.

A soak check (make demo takes minutes here): `pytest --soak tests/blender/test_demo_renders.py`.
CHARACTERFORGE_DEMO_OUT=out/demo reuses a demo already made there instead of making one.
test_shot_cameras.py checks the same rule on a small scene in every run.
"""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "blender_scripts", "bench"))
import user_render  # noqa: E402

PERCENT = 25
MEAN, P95 = 3.0, 12.0  # levels, blurred 2 px: what a render's pixel filter and the colour space's inverse leave


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    given = os.environ.get("CHARACTERFORGE_DEMO_OUT")
    if given:
        return os.path.abspath(given)
    out = str(tmp_path_factory.mktemp("demo"))
    run = subprocess.run([sys.executable, os.path.join(ROOT, "blender_scripts", "make_demo.py"), "--out", out,
                          "--profile", "tiny"], capture_output=True, text=True, timeout=1800, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def render_percentage(bpy, scene, camera):
    """PERCENT, or less where a shown picture has fewer pixels than that render (the animated
    shot's video frames, 128 lines at the tiny profile): pictures are compared made smaller only."""
    from characterforge_addon.core.image_io import decode_png
    percent = PERCENT
    for obj in user_render.shown_planes(camera):
        with open(user_render.plane_file(bpy, scene, obj), "rb") as f:
            h, w = decode_png(f.read()).shape[:2]
        percent = min(percent, 100 * w // scene.render.resolution_x, 100 * h // scene.render.resolution_y)
    return percent


@pytest.mark.soak
def test_every_shot_camera_of_the_demo_shows_its_result(bpy, demo_out):
    from characterforge_addon.core.shots import picture_match
    blends = sorted(glob.glob(os.path.join(demo_out, "*.blend")))
    assert {"demo.blend", "walk_played.blend"} <= {os.path.basename(b) for b in blends}
    checked = []
    for blend in blends:
        bpy.ops.wm.open_mainfile(filepath=blend)
        scene = bpy.context.scene
        for camera in (o for o in scene.objects if o.type == "CAMERA" and user_render.shown_planes(o)):
            sequence = any(n.type == "TEX_IMAGE" and n.image.source == "SEQUENCE"
                           for o in user_render.shown_planes(camera) for n in o.active_material.node_tree.nodes)
            for frame in (scene.frame_start, scene.frame_end) if sequence else (None,):
                if frame is not None:
                    scene.frame_set(frame)
                percent = render_percentage(bpy, scene, camera)
                size = tuple(int(n * percent / 100) for n in (scene.render.resolution_x, scene.render.resolution_y))
                render = user_render.render(bpy, scene, camera, percentage=percent, frame=frame)
                expected = user_render.shown_picture(bpy, scene, camera, size)
                figure = picture_match.difference(render, expected)
                checked.append((os.path.basename(blend), camera.name, frame, scene.render.engine,
                                scene.view_settings.view_transform, round(figure["mean"], 2), round(figure["p95"], 1)))
    print("\n".join(str(c) for c in checked))
    assert all(c[5] <= MEAN and c[6] <= P95 for c in checked), checked
    assert {("walk_played.blend", f) for f in (1, 4)} <= {(c[0], c[2]) for c in checked}
    assert {"Camera", "Camera B"} <= {c[1] for c in checked if c[0] == "demo.blend"}
