"""What kind of thing a character is, and what the kind decides: the maps rendered for it, the
rows of its sheet, how its identity is kept and how its outputs are scored.

  humanoid  an OpenPose rig (CharacterForge's, Rigify, Mixamo, or mapped by hand): OpenPose,
            hands and face maps, face close-ups, ArcFace identity, IP-Adapter plus-face
  creature  any other armature with meshes (a dragon, a horse, a robot): its posed meshes
  object    a mesh or a collection of meshes (a prop, a vehicle, a teardrop)

Creatures and objects are steered by their shape alone (depth, normal and line-art maps from
the mesh itself: no pose detector knows their skeleton), their sheets show detail close-ups in
place of faces, and they are kept and scored by their appearance (a CLIP image embedding of
the pack's views, which every kind has: for humans it is the outfit score).
"""

HUMANOID, CREATURE, OBJECT = "humanoid", "creature", "object"
KINDS = (HUMANOID, CREATURE, OBJECT)
TEXT = {HUMANOID: "a humanoid (OpenPose rig)", CREATURE: "a creature (an armature with meshes)",
        OBJECT: "an object (a mesh or a collection: a prop, a vehicle)"}

# The maps each kind's sheets and shots are steered by (ControlNet-Union modes on SDXL: OpenPose
# 0, depth 1, line art 3 (thin lines), normal 4; edit families take them as pictures).
SHAPE_MAPS = ("depth", "normal", "lineart")
MAPS = {HUMANOID: ("openpose", "depth", "hand_depth"), CREATURE: SHAPE_MAPS, OBJECT: SHAPE_MAPS}

# An object or creature's sheet: whole views around it, a top view when its footprint is broad
# (a car, a lying dragon: the top tells its layout), and detail close-ups of one part.
OBJECT_VIEWS = ("front", "three_quarter", "side", "back")
DETAIL_VIEWS = ("front", "three_quarter")
TOP_WHEN_BROADER = 1.2  # a top view is added when the footprint is this many times the height
STYLE = {HUMANOID: "character sheet, turnaround, same character in every view, plain white background, full body, "
                   "concept art",
         CREATURE: "creature design sheet, turnaround, the same creature in every view, plain white background, "
                   "orthographic views, concept art",
         OBJECT: "design sheet, turnaround, the same object in every view, plain white background, orthographic "
                 "views, product concept art"}


def is_humanoid(kind):
    return kind == HUMANOID


def wants_top(footprint, height):
    """Whether a sheet of something `footprint` across (its larger horizontal extent) and
    `height` tall gains a top view."""
    return footprint >= TOP_WHEN_BROADER * max(height, 1e-9)
