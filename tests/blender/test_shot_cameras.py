"""What each shot camera shows (#27), rendered as a user renders (F12: the scene's own engine and
view transform): its shown result in front of the set, the dome and the rig, never another
shot's planes; the moving shot's frame at the current frame; with every result hidden, the 3D
scene itself, where the rig's proxies never render."""

import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                "blender_scripts", "bench"))
import set_scene  # noqa: E402
import user_render  # noqa: E402

W, H = 128, 96


def write(path, picture):
    from characterforge_addon.core.image_io import encode_png
    path.write_bytes(encode_png(picture))
    return str(path)


def two_shots(bpy, tmp_path):
    """A floor, a box, a dome and a rig; shot A (camera A) shows only its background, shot B
    (camera B at A's place, turned 20 degrees, so its planes stand in A's view) a background
    and a picture in front of it. Cycles, 8 samples, the new scene's AgX view."""
    from characterforge_addon.blender.generation import generation
    from characterforge_addon.blender.rig import rig
    from characterforge_addon.blender.sets import set_projection
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = W, H, 100
    scene.render.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.device = 8, "CPU"
    assert scene.view_settings.view_transform == "AgX"  # Blender's default: left as it is
    bpy.ops.mesh.primitive_plane_add(size=40)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0.8, 1.0, 0.5))
    rig.add_rig(bpy.context, "Hero", 1.75, "ADULT", (-0.3, 1.5, 0.0))
    cameras = {}
    for name, turn in (("A", 0.0), ("B", 20.0)):
        camera = bpy.data.objects.new(name, bpy.data.cameras.new(name))
        scene.collection.objects.link(camera)
        camera.location = (0.0, -4.0, 1.2)
        camera.rotation_euler = (math.radians(85), 0.0, math.radians(turn))
        cameras[name] = camera
    scene.camera = cameras["A"]
    bpy.context.view_layer.update()
    set_projection.add_dome(bpy.context, cameras["A"])
    pictures = {key: set_scene.picture(W, H, seed) for seed, key in enumerate(("A background", "B background",
                                                                               "B picture"))}
    generation.place_background_picture(bpy.context, write(tmp_path / "a_bg.png", pictures["A background"]),
                                        cameras["A"], "Shot A")
    generation.place_background_picture(bpy.context, write(tmp_path / "b_bg.png", pictures["B background"]),
                                        cameras["B"], "Shot B")
    generation.place_shot({"kind": "posed_character", "seed": 1}, "Shot B", "B", scene,
                          [write(tmp_path / "b_pic.png", pictures["B picture"])], "job-1")
    return scene, cameras, pictures


def test_each_shot_camera_shows_its_shown_result_in_a_plain_render(bpy, tmp_path):
    from characterforge_addon.blender.generation import planes
    from characterforge_addon.core.shots import picture_match
    scene, cameras, pictures = two_shots(bpy, tmp_path)
    for name, shown in (("A", "A background"), ("B", "B picture")):
        render = user_render.render(bpy, scene, cameras[name])
        expected = user_render.shown_picture(bpy, scene, cameras[name], (W, H))
        assert np.array_equal(expected, pictures[shown])  # the test's own reading of what is shown
        assert all(o.active_material.diffuse_color[3] == 0 for o in user_render.shown_planes(cameras[name]))
        figure = picture_match.difference(render, pictures[shown])
        assert figure["mean"] < 2.0 and figure["p95"] < 8.0, (name, figure)  # AgX, undone by the colour space
    # Results > show: with B's picture hidden, B shows its background; with that hidden too, the 3D scene
    picture = next(o for o in cameras["B"].children if o.get(planes.LAYER) == planes.PICTURE)
    planes.hide_result(picture)
    figure = picture_match.difference(user_render.render(bpy, scene, cameras["B"]), pictures["B background"])
    assert figure["mean"] < 2.0, figure
    for obj in cameras["B"].children:
        planes.hide_result(obj)
    assert user_render.shown_picture(bpy, scene, cameras["B"], (W, H)) is None
    scene_itself = user_render.render(bpy, scene, cameras["B"])
    assert picture_match.difference(scene_itself, pictures["B background"])["mean"] > 20


def test_the_rig_proxies_stay_out_of_renders_but_in_the_maps(bpy, tmp_path):
    from characterforge_addon.blender.generation import planes
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.blender.rig.rig import character_meshes, rigs_in_scene
    from characterforge_addon.core.image_io import decode_png
    scene, cameras, _ = two_shots(bpy, tmp_path)
    for obj in cameras["A"].children:
        planes.hide_result(obj)
    with_rig = user_render.render(bpy, scene, cameras["A"])
    (hero,) = rigs_in_scene(scene)
    proxies = sum(character_meshes(hero), [])
    assert proxies and all(p.hide_render and not p.hide_viewport for p in proxies)  # a posing aid in the viewport
    manifest = controls.render_controls(bpy.context, str(tmp_path / "controls"), cameras["A"], preview=False)
    with open(tmp_path / "controls" / manifest["masks"]["Hero"], "rb") as f:
        assert decode_png(f.read()).mean() > 5  # the maps still see the body
    assert all(p.hide_render for p in proxies)  # and it is hidden again afterwards
    for obj in proxies + [hero]:
        bpy.data.objects.remove(obj)
    assert np.abs(user_render.render(bpy, scene, cameras["A"]).astype(int) - with_rig).max() <= 2  # noise only


def test_a_moving_shot_camera_shows_the_frame_at_the_current_frame(bpy, tmp_path):
    from characterforge_addon.blender.generation import planes
    from characterforge_addon.blender.shots import moving_shots
    from characterforge_addon.core.shots import picture_match
    scene, cameras, _ = two_shots(bpy, tmp_path)
    folder = tmp_path / "sequence"
    folder.mkdir()
    frames = {f: set_scene.picture(W, H, 10 + f) for f in (1, 2)}
    for f, picture in frames.items():
        write(folder / f"frame_{f:04d}.png", picture)
    scene.frame_start, scene.frame_end = 1, 2
    moving_shots.sequence_plane(bpy.context, str(folder), [1, 2], cameras["A"],
                                planes.shot_collection(scene, "A walk"), "A walk sequence")
    for f, picture in frames.items():
        render = user_render.render(bpy, scene, cameras["A"], frame=f)
        scene.frame_set(f)
        assert np.array_equal(user_render.shown_picture(bpy, scene, cameras["A"], (W, H)), picture)
        figure = picture_match.difference(render, picture)
        assert figure["mean"] < 2.0, (f, figure)


def test_a_plane_is_seen_only_from_its_own_camera(bpy, scene, tmp_path):
    """Another camera looking straight at a shot camera's plane sees through it."""
    from characterforge_addon.blender.generation import generation
    scene.render.resolution_x, scene.render.resolution_y = W, H
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 4
    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 0, 0))
    camera = scene.camera
    bpy.context.view_layer.update()
    generation.place_background_picture(bpy.context, write(tmp_path / "bg.png", set_scene.picture(W, H, 3)),
                                        camera, "Shot")
    other = bpy.data.objects.new("Other", bpy.data.cameras.new("Other"))
    scene.collection.objects.link(other)
    other.location = camera.location + camera.matrix_world.col[2].xyz * 0.3  # 0.3 m behind it, looking the same way
    other.rotation_euler = camera.rotation_euler
    bpy.context.view_layer.update()
    seen = user_render.render(bpy, scene, other)
    for obj in camera.children:
        obj.hide_render = True
    assert np.abs(user_render.render(bpy, scene, other).astype(int) - seen).max() <= 2
    for obj in camera.children:  # the plane is there, in the middle of that view: shown, it would cover it
        obj.hide_render = False
        obj.active_material.node_tree.nodes["only_from_camera"].inputs[0].default_value = 1.0
        obj.active_material.node_tree.links.remove(obj.active_material.node_tree.nodes["only_from_camera"].inputs[0].links[0])
    assert np.abs(user_render.render(bpy, scene, other).astype(int) - seen)[H // 3:2 * H // 3, W // 3:2 * W // 3].mean() > 20
