"""A set seen from eye height, for the set-projection test and benchmark (issue #27): a ground
plane running out to two walls, a crate, a pillar and the add-on's dome for the sky; cameras A
and B 50 degrees apart round the set's middle, 1.7 m high, and C halfway between them; smooth
test pictures standing in for generated ones (no level beyond 40..215, so every view transform
can give them back); and the set's rule worked in numpy for a camera (`reference`), to check
the shader against."""

import math

import numpy as np

TARGET = (0.0, 1.0, 0.8)  # where the cameras look
DISTANCE = 9.0  # from the target, on the ground
EYE = 1.7
ANGLES = {"A": 0.0, "C": 25.0, "B": 50.0}  # degrees round the target from A


def build(bpy, resolution=(128, 96)):
    """The set in an empty scene (Cycles, 16 samples, Standard view); returns (scene, {name: camera})."""
    from mathutils import Vector

    from characterforge_addon.blender.sets import set_projection
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 16
    scene.cycles.device = "CPU"
    scene.view_settings.view_transform = "Standard"
    bpy.ops.mesh.primitive_plane_add(size=60, location=(0, 10, 0))
    bpy.context.object.name = "Ground"
    for name, location, rotation, scale in (("Back wall", (0, 14, 2.5), (math.pi / 2, 0, 0), (14, 2.5, 1)),
                                            ("Side wall", (-9, 6, 2.5), (math.pi / 2, 0, math.pi / 2), (8, 2.5, 1))):
        bpy.ops.mesh.primitive_plane_add(size=2, location=location, rotation=rotation)
        bpy.context.object.name = name
        bpy.context.object.scale = scale
    bpy.ops.mesh.primitive_cube_add(size=1.2, location=(1.4, 1.6, 0.6))
    bpy.context.object.name = "Crate"
    bpy.ops.mesh.primitive_cylinder_add(radius=0.35, depth=3.0, location=(-1.8, 3.0, 1.5))
    bpy.context.object.name = "Pillar"
    cameras = {}
    for name, angle in ANGLES.items():
        a = math.radians(angle)
        where = Vector((TARGET[0] + DISTANCE * math.sin(a), TARGET[1] - DISTANCE * math.cos(a), EYE))
        camera = bpy.data.objects.new(name, bpy.data.cameras.new(name))
        scene.collection.objects.link(camera)
        camera.location = where
        camera.rotation_euler = (Vector(TARGET) - where).to_track_quat("-Z", "Y").to_euler()
        camera.data.lens = 30
        cameras[name] = camera
    scene.camera = cameras["A"]
    bpy.context.view_layer.update()
    set_projection.add_dome(bpy.context, cameras["A"])  # the sky is part of the set: every pixel shows a surface
    return scene, cameras


def picture(width, height, seed):
    """A smooth test picture (H, W, 3) uint8 in 40..215: a few broad waves per channel."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    channels = []
    for _ in range(3):
        wave = sum(np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)
                   for fx, fy, phase in rng.uniform((-2, -2, 0), (2, 2, 2 * np.pi), (3, 3)))
        channels.append(128 + 29 * wave)  # three waves of amplitude 29: 128 +- 87
    return np.clip(np.stack(channels, -1), 40, 215).astype(np.uint8)


def _bilinear(image, xy):
    """`image` (H, W) sampled at pixel coordinates `xy` (N, 2; centres at .5), edges repeated:
    what an image texture's Linear interpolation gives."""
    h, w = image.shape
    x, y = np.clip(xy[:, 0] - 0.5, 0, w - 1), np.clip(xy[:, 1] - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = x - x0, y - y0
    return (image[y0, x0] * (1 - fx) * (1 - fy) + image[y0, x1] * fx * (1 - fy) + image[y1, x0] * (1 - fx) * fy
            + image[y1, x1] * fx * fy)


def reference(bpy, scene, viewer, painters):
    """The set's rule worked in numpy for each pixel of `viewer`, from the cameras' depth
    renders: {surface, trusted (a normal from the depth), and per painter seen, where (rows,
    cols in its picture); weights (view_blend.weights), acceptable (view_blend.acceptable)}."""
    from characterforge_addon.blender.rig import joints
    from characterforge_addon.blender.sets import set_projection
    from characterforge_addon.core.rig import projection
    from characterforge_addon.core.shots import view_blend
    from characterforge_addon.core.shots import set_projection as rule
    mv = joints.camera_model(scene, viewer)
    dv = set_projection.set_depth(scene, viewer)
    h, w = dv.shape
    surface = dv < rule.BACKGROUND_DEPTH
    to_world = np.linalg.inv(mv.world_to_camera)
    world = projection.unproject(mv, np.where(surface, dv, 1.0)) @ to_world[:3, :3].T + to_world[:3, 3]
    normal, trusted = rule.normals(mv, dv)
    normal = normal @ to_world[:3, :3].T
    view = to_world[:3, 3] - world
    view /= np.linalg.norm(view, axis=-1, keepdims=True)
    viewer_foot = view_blend.footprint(dv, (normal * view).sum(-1), rule.pixel_width(mv))
    seen, where, dirs, feet, fades = [], [], [], [], []
    for painter in painters:
        mp = joints.camera_model(scene, painter)
        data = rule.layer_data(set_projection.set_depth(scene, painter))
        pw, ph = mp.resolution
        xy, d = projection.project(mp, world.reshape(-1, 3))
        iy, ix = np.clip(xy[:, 1].astype(int), 0, ph - 1), np.clip(xy[:, 0].astype(int), 0, pw - 1)
        ok = projection.in_frame(xy, d, (pw, ph)) & rule.saw(d, data[iy, ix, 1], data[iy, ix, 0])
        seen.append(ok.reshape(h, w) & surface)
        where.append((iy.reshape(h, w), ix.reshape(h, w)))
        towards = np.linalg.inv(mp.world_to_camera)[:3, 3] - world
        towards /= np.linalg.norm(towards, axis=-1, keepdims=True)
        dirs.append(towards)
        feet.append(view_blend.footprint(d.reshape(h, w), (normal * towards).sum(-1), rule.pixel_width(mp)))
        fades.append((view_blend.edge_fade(xy[:, 0] / pw, xy[:, 1] / ph) * _bilinear(data[..., 2], xy)).reshape(h, w))
    return {"surface": surface, "trusted": trusted, "seen": seen, "where": where,
            "weights": view_blend.weights(view, np.array(dirs), np.array(feet), np.array(seen), np.array(fades)),
            "acceptable": view_blend.acceptable(np.array(feet), np.array(seen), viewer_foot)}
