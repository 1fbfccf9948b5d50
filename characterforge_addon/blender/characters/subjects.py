"""What a character is in the scene: a humanoid rig, a creature (any other armature with
meshes) or an object (a mesh, or a collection of them), the meshes that make it, its parts
(for detail close-ups) and the checks that refuse what cannot be one (an empty collection, a
mesh with no faces)."""

from dataclasses import dataclass, field

import bpy
import numpy as np

from ...core.characters import kinds
from ...core.errors import UserError
from ..rig.rig import character_meshes


@dataclass
class Subject:
    name: str
    kind: str
    meshes: list             # the mesh objects whose surfaces make it
    obj: object = None       # the armature or mesh object (None for a collection)
    collection: object = None
    hands: list = field(default_factory=list)  # a humanoid's hand meshes (in `meshes` too)

    @property
    def frame_object(self):
        """The object whose own axes are the character's (front -Y, up +Z): its armature or
        mesh; a collection uses the world's."""
        return self.obj


def _has_faces(obj, depsgraph):
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        return len(mesh.polygons) > 0
    finally:
        evaluated.to_mesh_clear()


def _checked(subject, depsgraph):
    """`subject` with only meshes that have faces; refused when none has any."""
    with_faces = [o for o in subject.meshes if _has_faces(o, depsgraph)]
    if not with_faces:
        names = ", ".join(f"'{o.name}'" for o in subject.meshes)
        raise UserError(f"{names} {'has' if len(subject.meshes) == 1 else 'have'} no faces (only vertices or "
                        "edges): depth, normals and outlines need surfaces; fill it (F in Edit Mode) or add a "
                        "Skin or Solidify modifier")
    subject.meshes = with_faces
    subject.hands = [o for o in subject.hands if o in with_faces]
    return subject


def subject_of(thing, depsgraph=None):
    """The Subject an Object (armature or mesh) or a Collection makes, checked."""
    depsgraph = depsgraph or bpy.context.evaluated_depsgraph_get()
    if isinstance(thing, bpy.types.Collection):
        meshes = [o for o in thing.all_objects if o.type == "MESH" and not o.hide_render]
        if not meshes:
            raise UserError(f"collection '{thing.name}' holds no mesh to render: put the object's meshes in it, "
                            "or pick another collection or object")
        return _checked(Subject(thing.name, kinds.OBJECT, meshes, collection=thing), depsgraph)
    if thing is None:
        raise UserError("pick the character: a rig, an armature with meshes, a mesh or a collection")
    if thing.type == "ARMATURE":
        body, hands = character_meshes(thing)
        kind = kinds.HUMANOID if thing.characterforge.is_rig else kinds.CREATURE
        if not body + hands:
            raise UserError(f"armature '{thing.name}' has no meshes (children or deformed by it): a "
                            f"{kind} needs its body: parent its meshes to it or give them an Armature modifier")
        return _checked(Subject(thing.name, kind, body + hands, obj=thing, hands=hands), depsgraph)
    if thing.type == "MESH":
        return _checked(Subject(thing.name, kinds.OBJECT, [thing], obj=thing), depsgraph)
    raise UserError(f"'{thing.name}' is a {thing.type.lower()}: a character is an armature with meshes, a mesh or a "
                    "collection of meshes")


def find(name):
    """The object or collection named `name` (an object first)."""
    thing = bpy.data.objects.get(name) or bpy.data.collections.get(name)
    if thing is None:
        raise UserError(f"no object or collection named {name!r}")
    return thing


def marked_collections(scene):
    """The collections in `scene` marked as playing a character (unchecked: cheap enough to draw)."""
    return [c for c in scene.collection.children_recursive if c.characterforge.is_character]


def marked_in_scene(scene):
    """The creatures and objects marked as characters that are in `scene` (objects, then
    collections), as Subjects; a mark on something that cannot be one is refused by name."""
    objects = [o for o in scene.objects if o.type in ("ARMATURE", "MESH") and not o.characterforge.is_rig
               and o.characterforge.is_character]
    return [subject_of(t) for t in objects + marked_collections(scene)]


def world_points(subject, depsgraph):
    """(N, 3) world positions of the subject's posed vertices."""
    out = []
    for obj in subject.meshes:
        evaluated = obj.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        try:
            co = np.empty(len(mesh.vertices) * 3)
            mesh.vertices.foreach_get("co", co)
            m = np.array(evaluated.matrix_world)
            out.append(co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3])
        finally:
            evaluated.to_mesh_clear()
    return np.concatenate(out) if out else np.zeros((0, 3))


# ---------------------------------------------------------------------------------------------
# Parts: what a detail close-up shows

def parts(subject, depsgraph):
    """{part name: (N, 3) world points} a detail close-up can frame: a collection's meshes, a
    creature's bones (the vertices each moves most), a mesh's vertex groups, else its loose
    pieces when it has several."""
    if subject.collection is not None:
        return {o.name: world_points(Subject(o.name, subject.kind, [o]), depsgraph) for o in subject.meshes}
    out = {}
    for obj in subject.meshes:
        evaluated = obj.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        try:
            co = np.empty(len(mesh.vertices) * 3)
            mesh.vertices.foreach_get("co", co)
            m = np.array(evaluated.matrix_world)
            world = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
            same = len(obj.data.vertices) == len(world)  # only deforming modifiers: the indices hold
            groups = _group_members(obj) if same and obj.vertex_groups else {}
            if subject.kind == kinds.CREATURE:
                bones = {b.name for b in subject.obj.data.bones}
                groups = {g: idx for g, idx in groups.items() if g in bones}
            for name, idx in groups.items():
                if len(idx):
                    out[name] = np.concatenate([out[name], world[idx]]) if name in out else world[idx]
            if not groups and subject.kind == kinds.OBJECT:
                islands = _islands(mesh)
                if len(islands) > 1:
                    for i, idx in enumerate(sorted(islands, key=len, reverse=True), start=1):
                        out[f"{obj.name} part {i}"] = world[idx]
        finally:
            evaluated.to_mesh_clear()
    return out


def _group_members(obj):
    """{vertex group: indices of the vertices it weighs most}."""
    best = {}
    for v in obj.data.vertices:
        if v.groups:
            g = max(v.groups, key=lambda e: e.weight)
            if g.weight > 0:
                best.setdefault(obj.vertex_groups[g.group].name, []).append(v.index)
    return {name: np.asarray(idx) for name, idx in best.items()}


def _islands(mesh):
    """Vertex indices of each connected piece of `mesh` (labels spread along edges until stable)."""
    n = len(mesh.vertices)
    edges = np.empty(len(mesh.edges) * 2, dtype=np.int64)
    mesh.edges.foreach_get("vertices", edges)
    a, b = edges.reshape(-1, 2).T
    labels = np.arange(n)
    while True:
        low = np.minimum(labels[a], labels[b])
        new = labels.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]  # jump to the label's own label
        if np.array_equal(new, labels):
            break
        labels = new
    return [np.flatnonzero(labels == root) for root in np.unique(labels)]


def pick_part(found, wanted=""):
    """(name, points) of the detail close-ups' part: `wanted`, else the largest (the widest
    extent); None when there is no part to show."""
    if wanted:
        if wanted not in found:
            raise UserError(f"no part named {wanted!r}: parts are {', '.join(sorted(found)) or 'none'} (meshes of a "
                            "collection, bones of a creature, vertex groups or loose pieces of a mesh)")
        return wanted, found[wanted]
    if not found:
        return None
    name = max(found, key=lambda n: float(np.linalg.norm(np.ptp(found[n], axis=0))) if len(found[n]) else 0.0)
    return name, found[name]
