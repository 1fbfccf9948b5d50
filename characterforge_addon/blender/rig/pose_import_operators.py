"""Import Pose's operators: a file (or several: a sequence), a person of the last file, a
limb's depth turned over, and Pose from Picture."""

import os

import bpy
from bpy.props import CollectionProperty, IntProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from ...core.errors import UserError
from ...core.rig.pose_solver import FLIPS
from . import pose_from_picture, pose_import
from ..operator_base import Reporting, StartsJob


def _active_rig(context):
    obj = context.active_object
    return obj if obj is not None and obj.type == "ARMATURE" and obj.characterforge.is_rig else None


def _summary(reports):
    first, last = reports[0], reports[-1]
    if len({r["frame"] for r in reports}) > 1:
        return (f"{len(reports)} poses keyed on frames {first['frame']}-{last['frame']}; last: {last['rig']}: "
                f"{last['line']}")
    return "; ".join(f"{r['rig']}: {r['line']}" for r in reports)


def _print(reports):
    for r in reports:
        print(f"[pose] {r['rig']} frame {r['frame']}: {r['line']}", flush=True)
        for line in r["left"]:
            print(f"[pose]   {line}", flush=True)


class CHARACTERFORGE_OT_import_pose(Reporting, bpy.types.Operator, ImportHelper):
    """Put a 2D pose onto the selected rig as the scene camera sees it: OpenPose JSON (body 18 or
    25, hands, face; ComfyUI's and the pose editors' too), COCO-WholeBody or DWPose. Several
    files make a sequence, one frame each"""
    bl_idname = "characterforge.import_pose"
    bl_label = "Import Pose"
    bl_options = {"REGISTER", "UNDO"}
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})
    files: CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    directory: StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})

    @classmethod
    def poll(cls, context):
        return _active_rig(context) is not None

    def draw(self, context):
        s = context.scene.characterforge.pose_import
        layout = self.layout
        layout.prop(s, "people")
        if s.people == "ONE":
            layout.prop(s, "person")
        layout.prop(s, "keyframe")
        layout.prop(s, "face")
        layout.prop(s, "min_confidence")

    def run(self, context):
        names = [f.name for f in self.files if f.name]
        paths = sorted(os.path.join(self.directory, n) for n in names) if names and self.directory else [self.filepath]
        s = context.scene.characterforge.pose_import
        reports = pose_import.import_files(context, paths, _active_rig(context), s.people, s.person, s.keyframe,
                                           s.face, s.min_confidence)
        _print(reports)
        return _summary(reports)


class CHARACTERFORGE_OT_import_pose_person(Reporting, bpy.types.Operator):
    """Pose the selected rig with this person of the last imported pose file or picture"""
    bl_idname = "characterforge.import_pose_person"
    bl_label = "Use Person"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    number: IntProperty(name="Person", min=1, default=1)

    @classmethod
    def poll(cls, context):
        return _active_rig(context) is not None and bool(context.scene.characterforge.pose_import.last_file)

    def run(self, context):
        s = context.scene.characterforge.pose_import
        s.person = self.number
        reports = pose_import.import_files(context, [s.last_file], _active_rig(context), "ONE", self.number,
                                           s.keyframe, s.face, s.min_confidence)
        _print(reports)
        return _summary(reports)


class CHARACTERFORGE_OT_flip_limb(Reporting, bpy.types.Operator):
    """Turn this limb's depth over (towards or away from the camera: a single view cannot tell)
    and pose the rig again from the same keypoints"""
    bl_idname = "characterforge.flip_limb"
    bl_label = "Flip Limb"
    bl_options = {"REGISTER", "UNDO", "INTERNAL"}

    limb: StringProperty(name="Limb", description=f"One of {', '.join(FLIPS)}")

    @classmethod
    def poll(cls, context):
        rig = _active_rig(context)
        return rig is not None and pose_import.SOURCE in rig

    def run(self, context):
        if self.limb not in FLIPS:
            raise UserError(f"unknown limb {self.limb!r}: use one of {', '.join(FLIPS)}")
        s = context.scene.characterforge.pose_import
        report = pose_import.toggle_flip(context, _active_rig(context), self.limb, s.keyframe, s.face)
        _print([report])
        return report["line"]


class CHARACTERFORGE_OT_pose_from_picture(StartsJob, bpy.types.Operator):
    """Find the pose of the person in the picture (the backend's OpenPose detector, with hands and
    face) and put it onto the selected rig (runs in the background)"""
    bl_idname = "characterforge.pose_from_picture"
    bl_label = "Pose from Picture"

    @classmethod
    def poll(cls, context):
        return super().poll(context) and _active_rig(context) is not None

    def run(self, context):
        picture = context.scene.characterforge.pose_import.picture
        if not picture.strip():
            raise UserError("choose a picture first (Pose > Import Pose > Picture): a photo or drawing of the pose")
        pose_from_picture.start(context, _active_rig(context), picture)
        return f"Finding the pose in {os.path.basename(picture)}…"


classes = (CHARACTERFORGE_OT_import_pose, CHARACTERFORGE_OT_import_pose_person, CHARACTERFORGE_OT_flip_limb,
           CHARACTERFORGE_OT_pose_from_picture)
register, unregister = bpy.utils.register_classes_factory(classes)
