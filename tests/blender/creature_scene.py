"""Test subjects made in the test: a four-legged creature (an armature deforming one mesh of
boxes), a car-like block mesh, a collection of parts, a cube."""

import bpy  # first: bmesh and mathutils come with it
import bmesh  # noqa: I001
from mathutils import Matrix, Vector

# (bone, head, tail, box centre, box size) of a small four-legged creature, metres
QUADRUPED = [
    ("spine", (0, 0.45, 0.7), (0, -0.45, 0.7), (0, 0, 0.7), (0.4, 1.1, 0.35)),
    ("neck", (0, -0.45, 0.75), (0, -0.7, 1.0), (0, -0.62, 0.95), (0.22, 0.25, 0.4)),
    ("head", (0, -0.7, 1.0), (0, -0.95, 1.05), (0, -0.8, 1.1), (0.25, 0.35, 0.22)),
    ("leg.FL", (0.15, -0.4, 0.6), (0.15, -0.4, 0.0), (0.15, -0.4, 0.3), (0.12, 0.12, 0.6)),
    ("leg.FR", (-0.15, -0.4, 0.6), (-0.15, -0.4, 0.0), (-0.15, -0.4, 0.3), (0.12, 0.12, 0.6)),
    ("leg.BL", (0.15, 0.4, 0.6), (0.15, 0.4, 0.0), (0.15, 0.4, 0.3), (0.12, 0.12, 0.6)),
    ("leg.BR", (-0.15, 0.4, 0.6), (-0.15, 0.4, 0.0), (-0.15, 0.4, 0.3), (0.12, 0.12, 0.6)),
    ("tail", (0, 0.45, 0.75), (0, 0.9, 0.9), (0, 0.68, 0.82), (0.08, 0.45, 0.08)),
]


def _boxes(name, boxes, material=None):
    """A mesh object of axis-aligned boxes [(centre, size)]; returns it and each box's vertex indices."""
    bm = bmesh.new()
    groups = []
    for centre, size in boxes:
        before = len(bm.verts)
        bmesh.ops.create_cube(bm, size=1.0, matrix=Matrix.Translation(Vector(centre)) @ Matrix.Diagonal(
            (*size, 1.0)))
        groups.append(list(range(before, len(bm.verts))))
    mesh = bpy.data.meshes.new(name)
    bm.to_mesh(mesh)
    bm.free()
    if material is not None:
        mesh.materials.append(material)
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj, groups


def material(name, colour):
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.diffuse_color = (*colour, 1.0)
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes.get("Principled BSDF")
    if bsdf is not None:
        bsdf.inputs["Base Color"].default_value = (*colour, 1.0)
    return mat


def quadruped(name="Beast", location=(0.0, 0.0, 0.0), colour=(0.2, 0.5, 0.2)):
    """An armature with spine, neck, head, four legs and a tail deforming one mesh of boxes."""
    context = bpy.context
    data = bpy.data.armatures.new(name)
    rig = bpy.data.objects.new(name, data)
    context.scene.collection.objects.link(rig)
    context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    for bone, head, tail, _, _ in QUADRUPED:
        b = data.edit_bones.new(bone)
        b.head, b.tail = Vector(head), Vector(tail)
    for bone in data.edit_bones:
        if bone.name != "spine":
            bone.parent = data.edit_bones["spine"]
    bpy.ops.object.mode_set(mode="OBJECT")
    body, groups = _boxes(f"{name}_body", [(c, s) for _, _, _, c, s in QUADRUPED], material(f"{name} skin", colour))
    for (bone, *_), indices in zip(QUADRUPED, groups):
        body.vertex_groups.new(name=bone).add(indices, 1.0, "REPLACE")
    body.parent = rig
    body.modifiers.new("Armature", "ARMATURE").object = rig
    rig.location = location
    context.view_layer.update()
    return rig


def car(name="Car", location=(0.0, 0.0, 0.0), colour=(0.7, 0.1, 0.1)):
    """A car-like block mesh: a body, a cabin and four wheels as one mesh (loose parts)."""
    wheels = [((x, y, 0.3), (0.25, 0.6, 0.6)) for x in (-0.85, 0.85) for y in (-1.3, 1.3)]
    obj, _ = _boxes(name, [((0, 0, 0.65), (1.6, 4.2, 0.7)), ((0, 0.3, 1.28), (1.4, 2.0, 0.55))] + wheels,
                    material(f"{name} paint", colour))
    obj.location = location
    return obj


def parts_collection(name="Cart", location=(0.0, 0.0, 0.0), colour=(0.6, 0.45, 0.2)):
    """A collection of separate meshes: a cart's box, its shaft and two wheels."""
    coll = bpy.data.collections.new(name)
    bpy.context.scene.collection.children.link(coll)
    paint = material(f"{name} wood", colour)
    for part, centre, size in (("Box", (0, 0, 0.7), (1.0, 1.4, 0.5)), ("Shaft", (0, -1.2, 0.6), (0.1, 1.0, 0.1)),
                               ("Wheel.L", (0.6, 0, 0.4), (0.1, 0.8, 0.8)),
                               ("Wheel.R", (-0.6, 0, 0.4), (0.1, 0.8, 0.8))):
        obj, _ = _boxes(f"{name} {part}", [(centre, size)], paint)
        for c in list(obj.users_collection):
            c.objects.unlink(obj)
        coll.objects.link(obj)
        obj.location = location
    return coll


def cube(name="Cube", size=1.0, location=(0.0, 0.0, 0.0), rotation=(0.0, 0.0, 0.0)):
    obj, _ = _boxes(name, [((0, 0, 0), (size, size, size))])
    obj.location, obj.rotation_euler = location, rotation
    bpy.context.view_layer.update()
    return obj
