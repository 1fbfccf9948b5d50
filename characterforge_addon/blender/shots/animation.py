"""An animated shot made by a video model from the rig: the scene's frame range rendered frame
by frame as control videos (the moving-shot renders: OpenPose with hands and face, depth, the
characters' masks, a crop around the face, the painted set as the moving camera sees it), sent
segment by segment (`animation` jobs, each after the first carried over from the one before),
the frames gathered as an image sequence with sequence.json, an MP4 and a camera-filling plane,
as moving shots are. A manifest lists the finished segments with their fingerprints: a run
again redoes only those whose making changed, and those after them (they carry over from them).

Used by the sidebar's Animate Shot (segment after segment through `jobs`) and by batch.py
(`kind = "animation"`)."""

import os
import shutil

import bpy

from ...core.batch import batch_plan
from ...core.characters.identity_pack import load_pack
from ...core.errors import UserError
from ...core.image_io import decode_png, encode_png, write_atomic
from ...core.setup.profile_list import read_profiles
from ...core.shots import animation_maps
from ...core.spec import animation_spec
from ...core.spec.job_spec import animation_segment_spec
from .. import preferences
from ..generation import job_inputs, planes
from ..maps import controls
from ..rig import joints
from ..rig.rig import rigs_in_scene
from . import moving_shots, shots

RESULT = moving_shots.RESULT  # each frame's picture in its frame folder (the flicker reads them there)
MANIFEST = batch_plan.MANIFEST
SAMPLE_NAME = "clip"


def profile_family(profile, prefs=None):
    """The family of a profile, read from the profile files the backend offers."""
    folders = preferences.profile_folders(prefs or preferences.get())
    family = next((f for n, f, _ in read_profiles(folders) if n == profile), None)
    if family is None:
        raise UserError(f"no profile named {profile!r}: choose a video profile (wan-vace, wan-animate) in Shot > "
                        "Animate")
    return family


def settings_of(scene, overrides=None):
    """The animation's settings: the scene's Shot and Animate settings, `overrides` (batch.py's
    [shot] and [animation] tables) over them."""
    s = scene.characterforge
    out = {"prompt": s.prompt, "negative_prompt": s.negative_prompt, "steps": s.steps, "guidance": s.guidance,
           "profile": s.video_profile, "segment": s.animation_segment, "carry": s.animation_carry,
           "mode": s.animation_mode.lower(), "control": s.animation_control.lower(), "height": s.animation_height,
           "strength": s.animation_strength, "grow": s.composite_grow, "video": s.animation_video}
    out.update({k: v for k, v in (overrides or {}).items() if k in out})
    return out


def characters_in_view(scene, manifest, controls_dir):
    """The rigs whose mask shows anything in a frame's maps (`manifest`: theirs)."""
    seen = []
    for rig in rigs_in_scene(scene):
        name = manifest["masks"].get(rig.name)
        if name:
            with open(os.path.join(controls_dir, name), "rb") as f:
                if decode_png(f.read()).any():
                    seen.append(rig)
    return seen


def render_frame(context, camera, frame, controls_dir, mode):
    """Frame `frame` as the video model takes it: {map: PNG bytes}, each also written into
    `controls_dir` (the maps of one control render with the motion pass, the characters' mask,
    the face crop, the set's view). Returns (maps, the maps' manifest)."""
    scene = context.scene
    scene.frame_set(frame)
    manifest = controls.render_controls(context, controls_dir, camera, scene.characterforge.drop_occluded,
                                        preview=False, motion=True)
    maps = {}
    for name in ("openpose", "depth"):
        with open(os.path.join(controls_dir, f"{name}.png"), "rb") as f:
            maps[name] = f.read()
    masks = []
    for file in manifest["masks"].values():
        with open(os.path.join(controls_dir, file), "rb") as f:
            masks.append(decode_png(f.read()))
    if not masks:
        raise UserError("the scene has no rig to animate")
    maps["mask"] = encode_png(animation_maps.union_mask(masks))
    _, _, people = job_inputs.maps_people(controls_dir)
    maps["face"] = encode_png(animation_maps.face_crop(decode_png(maps["openpose"]), people))
    if mode == "replace":
        maps["background"] = moving_shots.background_png(scene, camera)
    for name in ("mask", "face", "background"):
        if name in maps:
            write_atomic(os.path.join(controls_dir, f"{name}.png"), maps[name])
    return maps, manifest


def character_pictures(scene, rigs):
    """PNG bytes of the characters' pictures (each rig's pack: its front view, faces, other views),
    the rigs' first pictures first, at most the job's limit."""
    lists = []
    for rig in rigs:
        pack = shots.rig_pack(scene, rig, len(rigs) == 1)
        if pack is not None and not pack.problem:
            lists.append(animation_maps.pack_pictures(pack.folder, load_pack(pack.folder)))
    ordered = [path for group in zip(*lists) for path in group] if len(lists) > 1 else (lists[0] if lists else [])
    ordered += [p for group in lists for p in group if p not in ordered]
    out = []
    for path in ordered[:animation_spec.LIMITS["max_references"]]:
        with open(path, "rb") as f:
            out.append(f.read())
    return out


class AnimatedShot:
    """One camera's and seed's animated shot over `frames`, its folders under `root`: per frame
    `<camera>/frame_NNNN/seed_S/` (controls and frame.png), per segment a manifest unit, the
    sequence in `<camera>/seed_S_sequence/`."""

    def __init__(self, context, camera, frames, seed, root, manifest, settings):
        self.context, self.camera, self.frames, self.seed = context, camera, list(frames), seed
        self.root, self.manifest, self.settings = root, manifest, settings
        self.family = profile_family(settings["profile"])
        self.segments = animation_spec.segment_plan(self.family, self.frames, settings["segment"],
                                                    settings["carry"])
        self.sequence = os.path.join(root, batch_plan.sequence_folder(camera.name, seed))

    def unit(self, segment):
        return batch_plan.segment_folder(self.camera.name, segment["index"], self.seed)

    def frame_dir(self, frame):
        return os.path.join(self.root, batch_plan.unit_folder(self.camera.name, frame, self.seed))

    def todo(self):
        return [s for s in self.segments if not self.manifest.finished(self.unit(s), self.root)]

    def job(self, segment, maps_root=None):
        """(the segment's validated spec, {sha256: PNG bytes} it names): its frames rendered (under
        `maps_root` when given: a staging folder, see `adopt_maps`), the frames it carries over
        read from the sequence the segment before wrote."""
        scene = self.context.scene
        maps, rigs = [], []
        for frame in segment["frames"]:
            controls_dir = os.path.join(self._maps_dir(frame, maps_root), "controls")
            frame_maps, manifest = render_frame(self.context, self.camera, frame, controls_dir, self.settings["mode"])
            maps.append(frame_maps)
            rigs += [r for r in characters_in_view(scene, manifest, controls_dir) if r not in rigs]
        previous = []
        for frame in segment["frames"][:segment["carried"]]:
            path = os.path.join(self.sequence, f"frame_{frame:04d}.png")
            if not os.path.isfile(path):
                raise UserError(f"frame {frame}, which segment {segment['index'] + 1} carries over, was not made: "
                                "run the segment before first")
            with open(path, "rb") as f:
                previous.append(f.read())
        if not rigs:
            raise UserError(f"the camera '{self.camera.name}' sees none of the rigs in frames "
                            f"{segment['frames'][0]}-{segment['frames'][-1]}: frame at least one character")
        s = self.settings
        width, height = animation_maps.video_size(scene.render.resolution_x, scene.render.resolution_y, s["height"])
        words = [shots.rig_prompt(scene, rig) for rig in rigs] + [s["prompt"], scene.characterforge.background_prompt]
        prompt = ", ".join(dict.fromkeys(w.strip() for w in words if w and w.strip()))
        return animation_segment_spec(
            prompt, maps, width, height, previous, character_pictures(scene, rigs), s["negative_prompt"], self.seed,
            s["steps"], s["guidance"], s["profile"], SAMPLE_NAME, scene.render.fps, s["mode"],
            s["control"], s["strength"], s["grow"],
            {"index": segment["index"], "count": len(self.segments), "first_frame": segment["frames"][0]})

    def _maps_dir(self, frame, maps_root=None):
        if maps_root is None:
            return self.frame_dir(frame)
        return os.path.join(maps_root, batch_plan.unit_folder(self.camera.name, frame, self.seed))

    def adopt_maps(self, segment, maps_root):
        """The frames' maps rendered under `maps_root` (by `job`) moved into their frame folders:
        a segment decided to be made again."""
        for frame in segment["frames"]:
            staged = os.path.join(self._maps_dir(frame, maps_root), "controls")
            target = os.path.join(self.frame_dir(frame), "controls")
            if os.path.isdir(staged):
                shutil.rmtree(target, ignore_errors=True)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(staged, target)

    def kept(self, segment):
        """The files a finished segment leaves (relative to the root): each new frame's picture in
        its frame folder and in the sequence."""
        return [os.path.relpath(p, self.root) for frame in segment["frames"][segment["carried"]:]
                for p in (os.path.join(self.frame_dir(frame), RESULT),
                          os.path.join(self.sequence, f"frame_{frame:04d}.png"))]

    def keep(self, segment, files, record=True, made=None):
        """The segment's results (`files`: {frame name: path} as the job wrote them) into each
        frame's folder and the sequence; with `record`, the segment recorded as finished, made by
        the fingerprint `made` (core.batch.fingerprint)."""
        os.makedirs(self.sequence, exist_ok=True)
        for frame in segment["frames"][segment["carried"]:]:
            source = files.get(f"{SAMPLE_NAME}_{frame:04d}")
            if source is None:
                raise UserError(f"the backend returned no frame {frame} for segment {segment['index'] + 1}")
            with open(source, "rb") as f:
                data = f.read()
            write_atomic(os.path.join(self.frame_dir(frame), RESULT), data)
            write_atomic(os.path.join(self.sequence, f"frame_{frame:04d}.png"), data)
        if record:
            self.manifest.add(self.unit(segment), self.kept(segment), made)

    def finished(self):
        return not self.todo()

    def finish(self, video=True):
        """The finished sequence's flicker, sequence.json and (`video`) MP4; returns the record."""
        scene = self.context.scene
        per_frame, mean = moving_shots.flicker([self.frame_dir(f) for f in self.frames])
        record = {"camera": self.camera.name, "seed": self.seed, "frames": self.frames, "kind": "animation",
                  "family": self.family, "segments": [{"index": s["index"], "first": s["frames"][0],
                                                       "last": s["frames"][-1], "carried": s["carried"]}
                                                      for s in self.segments],
                  "flicker": mean, "flicker_per_frame": per_frame, "fps": scene.render.fps,
                  "settings": {k: v for k, v in self.settings.items()}}
        if video:
            record["video"] = moving_shots.write_video(self.sequence, self.frames, scene.render.fps,
                                                       os.path.join(self.sequence, "sequence.mp4"))
        moving_shots.write_sequence_record(self.sequence, record)
        return record

    def place(self, collection_name):
        """The sequence on a plane filling the camera, playing with the timeline."""
        camera = self.camera
        name = f"{camera.name} seed {self.seed} animation"
        old = bpy.data.objects.get(name)
        if old is not None and old.get(planes.ROLE) == "result_plane":  # this sequence's plane, made before
            bpy.data.objects.remove(old)
        return moving_shots.sequence_plane(self.context, self.sequence, self.frames, camera,
                                           planes.shot_collection(self.context.scene, collection_name), name)


# ---------------------------------------------------------------------------------------------
# Animate Shot in the sidebar: segment after segment, each started when the one before is in

def animate_shot(context, seed=None):
    """Start the scene's animated shot (its frame range, the scene camera); a shot whose segments
    are partly made (same seed) goes on from the first unfinished one."""
    from ..generation import jobs
    scene = context.scene
    s = scene.characterforge
    camera = joints.find_camera(scene)
    if seed is None:
        seed = job_inputs.pick_seed(s)
    s.seed = seed
    root = os.path.join(job_inputs.resolve_dir(s.results_dir), s.shot or "Shot", "animation")
    os.makedirs(root, exist_ok=True)
    shot = AnimatedShot(context, camera, range(scene.frame_start, scene.frame_end + 1), seed, root,
                        batch_plan.Manifest(root), settings_of(scene))
    return _next_segment(context, shot, jobs)


def _next_segment(context, shot, jobs, start=0, remade=False):
    """Start the first segment from `start` on that must be made: never finished, or finished with
    other makings than its fingerprint now says (another prompt, pose, profile, ...), or after a
    segment made again (`remade`: the frames it carries over change)."""
    from ...core.batch import fingerprint
    for index in range(start, len(shot.segments)):
        segment = shot.segments[index]
        unit = shot.unit(segment)
        spec, media = shot.job(segment)
        made = fingerprint.of_job(spec, None)
        unchanged = not fingerprint.changes(shot.manifest.fingerprint(unit), made)
        if shot.manifest.finished(unit, shot.root) and unchanged and not (remade and segment["carried"]):
            continue  # made before by the same settings, pose and pictures: kept
        break
    else:
        record = shot.finish(shot.settings["video"])
        plane = shot.place(context.scene.characterforge.shot or "Shot")
        return (f"animated shot: {len(shot.frames)} frames in {shot.sequence} (flicker {record['flicker']:.2f}); "
                f"plays on '{plane.name}'")
    unit_dir = os.path.join(shot.root, shot.unit(segment))
    shot.manifest.forget(shot.unit(segment))  # stopped from here on: not done, made again next time

    def place(scene, files, job_id):
        shot.keep(segment, {os.path.splitext(os.path.basename(f))[0]: f for f in files}, made=made)
        follow = _next_segment(bpy.context, shot, jobs, index + 1, True)
        return f"segment {index + 1} of {len(shot.segments)} made; {follow}"

    jobs.start(context, spec, unit_dir, place, media)
    return f"segment {segment['index'] + 1} of {len(shot.segments)} started (frames {segment['frames'][0]}-" \
           f"{segment['frames'][-1]})"
