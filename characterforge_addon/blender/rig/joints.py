"""Where each rig's OpenPose joints land in a camera's image, and which of them the body hides.

Joints are projected in numpy (core.projection); visibility is a scene ray cast from the
camera that looks through the joint's own flesh (core.rig_layout.see_through_bones).
"""

import functools

import numpy as np
from mathutils import Vector

from ...core.errors import UserError
from ...core.rig import keypoints, projection, rig_layout, rig_mapping
from .rig import character_meshes, ROLE

MAX_SIDE = 8192
OUTPUT_ROLES = ("result_plane",)  # our own image planes never hide a joint


# ---------------------------------------------------------------------------------------------
# Cameras and rigs

def camera_model(scene, camera):
    render = scene.render
    scale = render.resolution_percentage / 100.0
    w, h = int(render.resolution_x * scale), int(render.resolution_y * scale)
    try:
        projection.validate_resolution(w, h, MAX_SIDE)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    cam = camera.data
    return projection.CameraModel(
        world_to_camera=np.array(camera.matrix_world.inverted()),
        resolution=(w, h), ortho=cam.type == "ORTHO", lens=cam.lens, ortho_scale=cam.ortho_scale,
        sensor_width=cam.sensor_width, sensor_height=cam.sensor_height, sensor_fit=cam.sensor_fit,
        shift=(cam.shift_x, cam.shift_y), pixel_aspect=(render.pixel_aspect_x, render.pixel_aspect_y),
        clip_start=cam.clip_start)


def find_camera(scene, name=None):
    if name:
        camera = scene.objects.get(name)
        if camera is None or camera.type != "CAMERA":
            cams = ", ".join(o.name for o in scene.objects if o.type == "CAMERA") or "none"
            raise UserError(f"no camera named '{name}' in scene '{scene.name}' (cameras: {cams})")
        return camera
    if scene.camera is None:
        raise UserError(f"scene '{scene.name}' has no active camera: add one (Add > Camera) and set it "
                        "active (Ctrl+Numpad 0), or pass --camera NAME")
    if scene.camera.type != "CAMERA":
        raise UserError(f"the scene camera '{scene.camera.name}' is a {scene.camera.type.lower()}, not a camera")
    return scene.camera


def mapping_for(rig):
    overrides = [(row.joint, row.bone, row.end) for row in rig.characterforge.joint_overrides]
    names = [b.name for b in rig.data.bones]
    return rig_mapping.resolve(names, overrides, rig_name=f"armature '{rig.name}'")


@functools.lru_cache(maxsize=16)
def _layout_see_through(height, preset):
    sets = rig_layout.see_through_bones(rig_layout.build_layout(height, preset))
    return {f"{part}.{j}": s for part in rig_mapping.PARTS for j, s in zip(rig_mapping.PART_JOINTS[part], sets[part])}


def _see_through_for(rig, convention, mapping):
    """{joint key: bones a ray may pass to reach it}; the layout knows more for our own rigs."""
    if convention == "CHARACTERFORGE":
        return _layout_see_through(round(rig.characterforge.height, 6), rig.characterforge.preset)
    hierarchy = _Hierarchy(rig)
    out = {}
    for key, (bone, end) in mapping.items():
        part = key.split(".", 1)[0]
        out[key] = set() if rig_layout.is_surface_joint(part, bone) else rig_layout.own_bones(hierarchy, bone, end)
    return out


class _Hierarchy:
    """Bone parents by name, in the shape rig_layout.own_bones reads."""

    def __init__(self, rig):
        self._parents = {b.name: (b.parent.name if b.parent else "") for b in rig.data.bones}

    def items(self):
        return ((name, _Parent(parent)) for name, parent in self._parents.items())

    def __getitem__(self, name):
        return _Parent(self._parents[name])


class _Parent:
    def __init__(self, parent):
        self.parent = parent


def _face_bone(obj, face_index, cache):
    """The bone a face of a skinned mesh follows (its first vertex's strongest group)."""
    key = (obj.name, face_index)
    if key not in cache:
        mesh = obj.data
        bone = ""
        if face_index < len(mesh.polygons):
            groups = mesh.vertices[mesh.polygons[face_index].vertices[0]].groups
            if len(groups):
                bone = obj.vertex_groups[max(groups, key=lambda g: g.weight).group].name
        cache[key] = bone
    return cache[key]


def check_camera_outside(scene, depsgraph, camera):
    """Refuse a camera sitting inside a closed mesh: every map would be that mesh's inside."""
    origin = camera.matrix_world.translation
    forward = -camera.matrix_world.col[2].xyz.normalized()
    hits = []
    for direction in (forward, -forward, camera.matrix_world.col[0].xyz, camera.matrix_world.col[1].xyz):
        hit, location, normal, _, obj, _ = scene.ray_cast(depsgraph, origin, direction.normalized())
        hits.append(hit and normal.dot(direction) > 0 and obj)
    if all(hits):
        raise UserError(f"camera '{camera.name}' is inside '{hits[0].name}': move the camera out of the mesh "
                        "or hide that object from render")


def _visible(scene, depsgraph, origin, target, slack, see_through):
    """Is `target` seen from `origin`? Rays pass our own output planes and what
    `see_through(obj, face_index)` allows (the joint's own limbs); the joint may lie up to
    `slack` behind the first surface left."""
    direction = target - origin
    distance = direction.length
    if distance < 1e-9:
        return True
    direction /= distance
    start, travelled = origin, 0.0
    for _ in range(16):
        hit, location, _, face, obj, _ = scene.ray_cast(depsgraph, start, direction, distance=distance - travelled + slack)
        if not hit:
            return True
        travelled += (location - start).length
        if obj.get(ROLE) not in OUTPUT_ROLES and not see_through(obj, face):
            return travelled >= distance - slack
        start = location + direction * 1e-5
    return True


def project_rig(scene, depsgraph, camera, cam, rig):
    """(Person, mean depth) for one rig seen through `camera`."""
    convention, mapping = mapping_for(rig)
    through = _see_through_for(rig, convention, mapping)
    slack = 0.01 * max(max(rig.dimensions), 0.1)  # a joint on a surface is seen
    own_meshes = {o.name for o in sum(character_meshes(rig), [])}
    face_bones = {}
    person = keypoints.Person(rig.name)
    cam_origin = camera.matrix_world.translation
    forward = -camera.matrix_world.col[2].xyz.normalized()
    depths = []
    for part in rig_mapping.PARTS:
        keys = rig_mapping.joint_keys(part)
        world = np.full((len(keys), 3), np.nan)
        for i, key in enumerate(keys):
            if key in mapping:
                bone, end = mapping[key]
                pb = rig.pose.bones[bone]
                world[i] = rig.matrix_world @ (pb.head if end == "head" else pb.tail)
        xy, depth = projection.project(cam, world)
        points = np.zeros((len(keys), 3))
        present = ~np.isnan(world[:, 0]) & projection.in_frame(xy, depth, cam.resolution)
        for i in np.flatnonzero(present):
            def see_through(obj, face, own=through[keys[i]]):
                return obj.name in own_meshes and _face_bone(obj, face, face_bones) in own

            target = Vector(world[i])
            origin = cam_origin if not cam.ortho else target - forward * depth[i]
            seen = _visible(scene, depsgraph, origin, target, slack, see_through)
            points[i] = (xy[i, 0], xy[i, 1], 1.0 if seen else keypoints.OCCLUDED_CONFIDENCE)
            depths.append(depth[i])
        setattr(person, part, points)
    return person, (float(np.mean(depths)) if depths else float("inf"))


