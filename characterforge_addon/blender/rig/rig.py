"""Build the CharacterForge armature, its IK controls and its proxy body in the scene."""

import math

import bmesh
import bpy
from mathutils import Matrix, Vector

from ...core.rig import proxy_mesh, rig_layout

ROLE = "characterforge_role"  # custom property naming what an object is to the add-on
COLLECTION_VISIBLE = {"Body": True, "Fingers": True, "Controls": True, "Face": False}
IK_CHAINS = [(f"forearm.{s}", f"hand_ik.{s}", f"elbow_pole.{s}") for s in rig_layout.SIDES] + \
            [(f"shin.{s}", f"foot_ik.{s}", f"knee_pole.{s}") for s in rig_layout.SIDES]
FOLLOW_ROTATION = [(f"hand.{s}", f"hand_ik.{s}") for s in rig_layout.SIDES] + \
                  [(f"foot.{s}", f"foot_ik.{s}") for s in rig_layout.SIDES]


# Bones only the rig CharacterForge builds has: its IK controls, poles and face (a Rigify rig
# names a bone hand_ik.L too, so one name is not enough to tell).
OWN_BONES = {"hand_ik.L", "elbow_pole.L", "face.jaw_00"}


def is_characterforge_rig(obj):
    """Whether `obj` is a rig CharacterForge built (Pose > Add rig), with the IK controls its
    built-in poses, pose import and proportions need; not a user's own armature (Rigify,
    Mixamo, ...) used as an OpenPose rig."""
    return obj is not None and obj.type == "ARMATURE" and OWN_BONES <= set(obj.pose.bones.keys())


def add_rig(context, name="Character", height=1.75, preset="ADULT", location=(0.0, 0.0, 0.0)):
    """Create the rig and its proxy meshes; returns the armature object."""
    layout = rig_layout.build_layout(height, preset)
    data = bpy.data.armatures.new(name)
    rig = bpy.data.objects.new(name, data)
    rig.location = location
    rig.show_in_front = True
    context.collection.objects.link(rig)
    settings = rig.characterforge
    settings.is_rig, settings.preset, settings.height = True, preset, height

    _build_bones(context, rig, layout)
    _add_constraints(rig)
    for hands in (False, True):
        _add_proxy(context, rig, layout, hands)
    _fit_pole_angles(context, rig)
    return rig


def _build_bones(context, rig, layout):
    data = rig.data
    collections = {n: data.collections.new(n) for n in COLLECTION_VISIBLE}
    for n, visible in COLLECTION_VISIBLE.items():
        collections[n].is_visible = visible
    previous = context.view_layer.objects.active
    context.view_layer.objects.active = rig
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit = data.edit_bones
        for spec in layout.bones:
            bone = edit.new(spec.name)
            bone.head, bone.tail = Vector(spec.head), Vector(spec.tail)
            bone.use_deform = spec.deform
            collections[spec.collection].assign(bone)
        for spec in layout.bones:
            if spec.parent:
                edit[spec.name].parent = edit[spec.parent]
                edit[spec.name].use_connect = spec.connect
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
        context.view_layer.objects.active = previous


def _add_constraints(rig):
    for bone, target, pole in IK_CHAINS:
        ik = rig.pose.bones[bone].constraints.new("IK")
        ik.target, ik.subtarget = rig, target
        ik.pole_target, ik.pole_subtarget = rig, pole
        ik.chain_count = 2
    for bone, target in FOLLOW_ROTATION:
        copy = rig.pose.bones[bone].constraints.new("COPY_ROTATION")
        copy.target, copy.subtarget = rig, target


def _fit_pole_angles(context, rig):
    """Pick each IK chain's pole angle so the rest pose stays exactly the rest pose.

    The right angle depends on how Blender rolls each bone; measuring it is safer than guessing.
    """
    best = {}
    for angle in (0.0, 90.0, -90.0, 180.0):
        for bone, _, _ in IK_CHAINS:
            rig.pose.bones[bone].constraints[0].pole_angle = math.radians(angle)
        context.view_layer.update()
        for bone, _, _ in IK_CHAINS:
            pb = rig.pose.bones[bone]
            parent = pb.parent
            error = (pb.tail - pb.bone.tail_local).length + (parent.head - parent.bone.head_local).length
            error += (pb.matrix.col[2].xyz - pb.bone.matrix_local.col[2].xyz).length
            if bone not in best or error < best[bone][0]:
                best[bone] = (error, angle)
    for bone, (_, angle) in best.items():
        rig.pose.bones[bone].constraints[0].pole_angle = math.radians(angle)
    context.view_layer.update()


def _proxy_material():
    mat = bpy.data.materials.get("CharacterForge Proxy")
    if mat is None:
        mat = bpy.data.materials.new("CharacterForge Proxy")
        mat.diffuse_color = (0.62, 0.6, 0.58, 1.0)
    return mat


def _add_proxy(context, rig, layout, hands):
    parts = [p for p in layout.parts if p.hands == hands]
    verts, faces, groups = proxy_mesh.build(parts)
    suffix = "hands" if hands else "body"
    mesh = bpy.data.meshes.new(f"{rig.name}_{suffix}")
    mesh.from_pydata([tuple(v) for v in verts], [], faces)
    bm = bmesh.new()
    bm.from_mesh(mesh)
    bmesh.ops.recalc_face_normals(bm, faces=bm.faces)
    bm.to_mesh(mesh)
    bm.free()
    mesh.materials.append(_proxy_material())
    obj = bpy.data.objects.new(f"{rig.name}_{suffix}", mesh)
    obj[ROLE] = f"proxy_{suffix}"
    context.collection.objects.link(obj)
    obj.parent = rig
    obj.matrix_parent_inverse = Matrix.Identity(4)
    for bone, indices in groups.items():
        obj.vertex_groups.new(name=bone).add(indices, 1.0, "REPLACE")
    mod = obj.modifiers.new("Armature", "ARMATURE")
    mod.object = rig
    obj.hide_select = True  # pose the rig, not its proxy
    obj.hide_render = True  # a posing aid and the maps' silhouette (passes shows it there), never in a picture
    return obj


def character_meshes(rig):
    """(body meshes, hand meshes) that make this character's silhouette."""
    body, hands = [], []
    for obj in bpy.data.objects:
        if obj.type != "MESH":
            continue
        role = obj.get(ROLE, "")
        deformed = any(m.type == "ARMATURE" and m.object == rig for m in obj.modifiers)
        if obj.parent == rig or deformed:
            (hands if role == "proxy_hands" else body).append(obj)
    return body, hands


def rigs_in_scene(scene):
    return [obj for obj in scene.objects if obj.type == "ARMATURE" and obj.characterforge.is_rig]
