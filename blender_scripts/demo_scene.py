"""The demo scene: a camera, a floor, a box to sit on and two posed rigs (adult walking, child
sitting). Used by `make demo` and by the benchmarks, so both show the same scene."""

import math


def build(bpy, resolution=(768, 768)):
    from characterforge_addon.blender.rig import posing, rig

    bpy.ops.wm.read_homefile(use_empty=True)
    context = bpy.context
    scene = context.scene
    scene.render.resolution_x, scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.view_settings.view_transform = "Standard"

    cam = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.location = (1.0, -4.6, 1.1)
    cam.rotation_euler = (math.radians(85), 0.0, math.radians(8))
    cam.data.lens = 35

    bpy.ops.mesh.primitive_plane_add(size=20, location=(0, 0, 0))
    context.object.name = "Floor"
    bpy.ops.mesh.primitive_cube_add(size=0.8, location=(1.6, 0.6, 0.2))
    context.object.name = "Box"

    hero = rig.add_rig(context, "Hero", 1.75, "ADULT", (0.0, 0.0, 0.0))
    posing.apply_library_pose(context, hero, "WALKING")
    kid = rig.add_rig(context, "Kid", 1.2, "CHILD", (1.6, 0.55, 0.4))
    kid.rotation_euler = (0, 0, math.radians(-20))
    posing.apply_library_pose(context, kid, "SITTING")
    context.view_layer.update()
    return scene


def add_lantern(bpy, location=(-0.75, -0.4, 0.0)):
    """A lantern standing on the floor: a collection of four meshes (base, glass, cap, ring), the
    demo's non-human character (an object: depth, normal and line-art maps, no skeleton)."""
    context = bpy.context
    lantern = bpy.data.collections.new("Lantern")
    context.scene.collection.children.link(lantern)
    x, y, z = location
    parts = (("cube", "Lantern base", (x, y, z + 0.03), (0.22, 0.22, 0.06)),
             ("cylinder", "Lantern glass", (x, y, z + 0.2), (0.16, 0.16, 0.28)),
             ("cone", "Lantern cap", (x, y, z + 0.4), (0.22, 0.22, 0.12)),
             ("torus", "Lantern ring", (x, y, z + 0.5), (0.08, 0.08, 0.08)))
    for kind, name, centre, size in parts:
        getattr(bpy.ops.mesh, f"primitive_{kind}_add")(location=centre)
        obj = context.object
        obj.name = name
        obj.dimensions = size
        for collection in list(obj.users_collection):
            collection.objects.unlink(obj)
        lantern.objects.link(obj)
    context.view_layer.update()
    return lantern
