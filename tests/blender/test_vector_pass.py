"""Blender's Vector pass read by passes.render_passes(motion=True), checked against a plane
moving a known number of pixels per frame, and a frame warped onto the next by it."""

import numpy as np
import pytest


def moving_plane(bpy, scene):
    """An orthographic camera at 0.1 m a pixel; a 2 m plane moving 1 m right and 0.5 m up a
    frame: 10 pixels right and 5 up."""
    scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = 128, 96, 100
    cam = bpy.data.objects.new("Top", bpy.data.cameras.new("Top"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.data.type, cam.data.ortho_scale = "ORTHO", 12.8
    cam.location = (0, 0, 10)
    bpy.ops.mesh.primitive_plane_add(size=2, location=(-2, 0, 0))
    plane = bpy.context.active_object
    for frame in (1, 2, 3):
        plane.location = (-2 + (frame - 1) * 1.0, (frame - 1) * 0.5, 0)
        plane.keyframe_insert("location", frame=frame)
    return cam, plane


@pytest.mark.smoke
def test_the_vector_pass_gives_the_known_motion_and_warps_one_frame_onto_the_next(bpy, scene):
    from characterforge_addon.blender.maps import passes
    from characterforge_addon.core.shots import motion
    cam, plane = moving_plane(bpy, scene)
    frames = {}
    for frame in (2, 3):
        scene.frame_set(frame)
        frames[frame] = passes.render_passes(scene, cam, {plane: 7}, motion=True)
    depth2, index2, _ = frames[2]
    depth3, index3, vectors3 = frames[3]
    on = index3 > 6
    assert on.sum() == 400 and np.abs(vectors3[on] - (-10, -5)).max() < 1e-3 and not vectors3[~on].any()
    positions = motion.previous_positions(vectors3)
    carried = motion.warp(index2, positions)
    assert np.array_equal(carried[on], index3[on])  # every plane pixel came from a plane pixel
    hole = motion.holes(positions, index3, depth3, index2, depth2)
    uncovered = (index2 > 6) & ~on  # where the plane was: the ground shows again
    assert hole[uncovered].all() and not hole[on].any()
