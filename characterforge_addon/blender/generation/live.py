"""Live mode: while Live is on, the picture follows the scene.

Any change to what the job would send (the rigs' pose, the camera, the set's objects, the
characters in the shot, the prompt, the identity picks) shows as a new fingerprint of those
inputs, taken on the main thread (a few microseconds: handlers on depsgraph updates and frame
changes, and the live timer as the fallback for settings that update no depsgraph). After a
quiet time (QUIET_S after the last change, so nothing renders while the user drags) the control
maps are rendered at the live size and a draft is handed to the worker thread (live_worker),
which cancels the job still running for an older state. The newest picture replaces the shot's
live plane (live_plane); Keep makes it a normal result. Generate drafts while Live is on."""

import contextlib
import hashlib
import json
import os
import queue
import time
import traceback

import bpy
import numpy as np

from ...core.errors import UserError
from ...core.setup.profile_list import draft_support
from ...core.spec.job_spec import posed_character_spec
from .. import preferences
from ..maps import controls
from ..rig import joints
from ..rig.rig import ROLE, rigs_in_scene
from . import jobs, live_plane, planes
from .job_inputs import (
    active_pack,
    control_inputs,
    identity_inputs,
    lora_files,
    resolve_dir,
    rig_faces,
    rig_keypoints,
)
from .live_worker import LiveWorker, Request

QUIET_S = 0.3  # after the last change: a pose being dragged is never rendered
TICK_S = 0.05  # the live timer: changes looked for, pictures placed
LIVE_DIR = "live"  # <results>/<shot>/live: the live pictures (one at a time) and their maps
# A live picture's time from the last change to its plane, stage by stage (they add up to the whole):
# the quiet time, the maps' render and the spec (main thread), sending pictures and the job, waiting
# in the backend's queue (behind a canceled job's last step), loading models (a cold engine only),
# denoising (with the decode), scoring and saving, noticing it finished (polls), downloading,
# waiting for the live timer, and replacing the plane's picture
STAGES = ("quiet", "render", "upload", "queue", "load", "denoise", "finish", "poll", "download", "hand-over",
          "placement")

# The scene settings a live job reads (steps and guidance are not: a draft runs its own)
SETTINGS = ("prompt", "negative_prompt", "seed", "openpose_strength", "use_depth", "depth_strength", "use_hand_depth",
            "hand_depth_strength", "drop_occluded", "reference_image", "use_character", "active_character",
            "identity_scale", "shot", "live_job", "live_size")
SHOT_SETTINGS = ("background_prompt", "composite_mode", "composite_grow", "composite_feather", "character_strength",
                 "harmonize", "fix_hands", "hand_fix_strength")

HISTORY = 200  # requests a session remembers (their outcomes and times)

_session = None
_support = {}


# ---------------------------------------------------------------------------------------------
# Whether the scene's profile can draft (read from the profile files: drawn on every redraw)

def draft_ready(context):
    """(True, "") when the scene's profile has draft settings, else (False, why and what to
    install): Live and Generate's default draft need them."""
    folders = preferences.profile_folders(preferences.get(context))
    name = preferences.job_profile(context)
    files = tuple((e.path, e.stat().st_mtime_ns) for f in folders if os.path.isdir(f)
                  for e in os.scandir(f) if e.name.endswith(".toml"))
    key = (name, files)
    if key not in _support:
        _support.clear()
        _support[key] = draft_support(folders, name)
    return _support[key]


def generate_drafts(context):
    """Whether Generate makes a draft: the Draft toggle, or Live on with a profile that drafts
    (batch and farm renders take `draft` from their batch file alone)."""
    s = context.scene.characterforge
    return s.draft or (s.live and draft_ready(context)[0])


def session():
    """The running live session, or None."""
    return _session


# ---------------------------------------------------------------------------------------------
# What the job would send, as one fingerprint

def _matrix(obj):
    return np.asarray(obj.matrix_world, dtype=np.float32).tobytes()


def _file_stamp(path):
    try:
        return os.stat(bpy.path.abspath(path)).st_mtime_ns
    except (OSError, ValueError):
        return None


def fingerprint(scene, meshes=None, profile=""):
    """A digest of everything a live job of `scene` sends with `profile`; `meshes`: the set's
    digest (see `mesh_digest`: recomputed only after a geometry change)."""
    s = scene.characterforge
    h = hashlib.blake2b(digest_size=16)

    def add(*values):
        h.update(repr(values).encode("utf-8", "replace"))

    add(profile, *(getattr(s, name) for name in SETTINGS),
        _file_stamp(s.reference_image) if s.reference_image else None)
    if s.live_job == "SHOT":
        add(*(getattr(s, name) for name in SHOT_SETTINGS), *_background_stamp(scene, s.shot or "Shot"))
    pack = active_pack(scene, required=False)
    if pack is not None and (s.use_character or s.live_job == "SHOT"):
        add(pack.name, pack.problem, pack.lora_weight, *(face.use for face in pack.faces))
    render = scene.render
    add(render.resolution_x, render.resolution_y, render.resolution_percentage, render.pixel_aspect_x,
        render.pixel_aspect_y)
    camera = scene.camera
    if camera is not None:
        c = camera.data
        add(camera.name, c.type, c.lens, c.ortho_scale, c.sensor_width, c.sensor_height, c.sensor_fit, c.shift_x,
            c.shift_y, c.clip_start, c.clip_end)
        h.update(_matrix(camera))
    for rig in rigs_in_scene(scene):
        add(rig.name, rig.characterforge.character, rig.characterforge.prompt, len(rig.pose.bones))
        played = s.characters.get(rig.characterforge.character) if rig.characterforge.character else None
        if played is not None:  # the identity faces picked for the character this rig plays
            add(played.problem, played.lora_weight, *(face.use for face in played.faces))
        h.update(_matrix(rig))
        bones = np.empty(len(rig.pose.bones) * 16, dtype=np.float32)
        rig.pose.bones.foreach_get("matrix", bones)
        h.update(bones.tobytes())
    h.update(meshes if meshes is not None else mesh_digest(scene))
    return h.hexdigest()


def mesh_digest(scene):
    """Where the set's meshes stand (they make the depth map and hide joints); our planes left out."""
    h = hashlib.blake2b(digest_size=16)
    for obj in scene.objects:
        if obj.type == "MESH" and obj.get(ROLE) != "result_plane" and not obj.hide_render:
            h.update(obj.name.encode("utf-8", "replace"))
            h.update(_matrix(obj))
    return h.digest()


def _background_stamp(scene, shot):
    from ..shots import shots
    try:
        path = shots.background_file(scene, shot)
    except UserError:
        return (None,)
    return path, _file_stamp(path)


# ---------------------------------------------------------------------------------------------
# A live request from the scene (main thread)

@contextlib.contextmanager
def live_resolution(scene, size):
    """The render resolution scaled so its longer side is at most `size` (aspect kept), for
    the maps of a live job; the user's setting is back afterwards."""
    render = scene.render
    percentage = render.resolution_percentage
    longest = max(render.resolution_x, render.resolution_y) * percentage / 100
    if longest > size:
        render.resolution_percentage = max(1, int(percentage * size / longest))
    try:
        yield
    finally:
        if render.resolution_percentage != percentage:
            render.resolution_percentage = percentage


def build(context, generation):
    """(the live Request, what placing its picture needs) for the scene as it is: the maps
    rendered at the live size, the draft spec of the chosen kind."""
    scene = context.scene
    s = scene.characterforge
    camera = joints.find_camera(scene)
    shot = s.shot or "Shot"
    out_dir = os.path.join(resolve_dir(s.results_dir), shot, LIVE_DIR)
    controls_dir = os.path.join(out_dir, "controls")
    with live_resolution(scene, s.live_size):
        if s.live_job == "SHOT":
            from ..shots import shots
            from .job_inputs import picture_png
            background = picture_png(shots.background_file(scene, shot), "background")
            spec, _, (w, h) = shots.shot_job(context, camera, background, controls_dir, s.seed)
        else:
            if not s.prompt.strip() and not s.use_character and not s.reference_image:
                raise UserError("write a prompt first: what does the character look like?")
            manifest = controls.render_controls(context, controls_dir, camera, s.drop_occluded, preview=False)
            w, h = manifest["resolution"]
            references, embedding, lora = identity_inputs(context)
            spec = posed_character_spec(
                s.prompt, control_inputs(s, controls_dir), w, h, s.negative_prompt, s.seed, s.steps, s.guidance,
                preferences.job_profile(context), name=f"seed{s.seed}", references=references,
                identity_scale=s.identity_scale, identity_embedding=embedding, lora=lora)
    spec["draft"] = True
    spec.pop("keypoints", None)  # no pose score for a live picture: it is kept on the plane instead
    extra = planes.pose_props({"keypoints": rig_keypoints(controls_dir, w, h)}, rig_faces(controls_dir, w, h))
    request = Request(generation, spec, out_dir, lora_files(scene, spec))
    distance = planes.distance_for(camera, planes.PICTURE)
    return request, {"shot": shot, "camera": camera.name, "distance": distance, "spec": spec, "extra": extra}


# ---------------------------------------------------------------------------------------------
# The session

class Session:
    """One Live run on one scene: the fingerprint seen and sent, the requests in flight, the
    live plane's picture, and every request's outcome and times (`history`)."""

    def __init__(self, scene, connect, clock=time.monotonic):
        self.scene_name = scene.name
        self.clock = clock  # what the quiet time is measured on (tests step one by hand)
        self.messages = queue.Queue()
        self.worker = LiveWorker(connect, self.messages)
        self.seen = None  # the scene's fingerprint when last looked at
        self.changed_at = None  # when it last changed (monotonic seconds)
        self.sent = None  # the fingerprint of the state last sent
        self.generation = 0  # requests made
        self.shown = 0  # the generation on the live plane
        self.pending = {}  # generation -> what placing its picture needs
        self.history = []  # {"generation", "fingerprint", "outcome", "job_id", "seconds", "total"} per request
        self.busy = False  # rendering a request: our own changes are no change
        self.geometry_changed = True  # the set's meshes may have moved: their digest is taken again
        self._meshes = None

    def note(self, scene, now):
        """Look at the scene; a new fingerprint restarts the quiet time."""
        if self.busy:
            return
        if self.geometry_changed or self._meshes is None:
            self._meshes, self.geometry_changed = mesh_digest(scene), False
        seen = fingerprint(scene, self._meshes, scene.characterforge.profile or preferences.get().profile)
        if seen != self.seen:
            self.seen, self.changed_at = seen, now

    def due(self, now):
        """Whether the scene has changed since the last request and stayed still for QUIET_S."""
        return self.seen != self.sent and self.changed_at is not None and now - self.changed_at >= QUIET_S

    def tick(self, context, now):
        """The live timer's work: place finished pictures, look for changes, send when due."""
        self.drain(context)
        self.note(context.scene, now)
        if self.due(now):
            self.launch(context, now)

    def launch(self, context, now):
        ok, why = draft_ready(context)
        if not ok:
            stop(context, f"Live stopped: {why}")
            return
        self.busy = True
        started = time.monotonic()
        try:
            request, place = build(context, self.generation + 1)
        except UserError as exc:
            self.sent = self.seen  # wait for the next change
            say(context, f"Live: {exc}", error=True)
            return
        finally:
            self.busy = False
        self.generation += 1
        self.sent = self.seen
        self.pending[self.generation] = dict(place, changed_at=self.changed_at, launched=now,
                                             render=time.monotonic() - started)
        self.history.append({"generation": self.generation, "fingerprint": self.seen, "outcome": "sent"})
        del self.history[:-HISTORY]
        self.worker.want(request)
        say(context, "Live: drawing…")

    def record(self, generation):
        return next((r for r in self.history if r["generation"] == generation), {})

    def drain(self, context):
        """Main thread: apply the worker's reports; the newest finished picture goes on the plane."""
        while True:
            try:
                kind, generation, data = self.messages.get_nowait()
            except queue.Empty:
                return
            record = self.record(generation)
            if kind == "submitted":
                record["job_id"] = data["job_id"]
                record["pictures"] = data["pictures"]
            elif kind == "progress" and generation == self.generation:
                say(context, f"Live: {data.get('stage') or data['status']} {data.get('step', 0)}/{data.get('total', 0)}")
            elif kind == "completed":
                self._place(context, generation, data, record)
            elif kind in ("canceled", "dropped"):  # dropped: replaced by a newer state before it was sent
                record["outcome"] = kind
                self.pending.pop(generation, None)
            elif kind == "failed":
                record["outcome"] = "failed"
                self.pending.pop(generation, None)
                if data.get("status") == 400 and data.get("type") == "invalid_job":
                    stop(context, f"Live stopped: {data['message']}")  # a profile or models it lacks
                    return
                say(context, f"Live: {data['message']}", error=True)

    def _place(self, context, generation, data, record):
        place = self.pending.pop(generation, None)
        files = data["files"]
        camera = context.scene.objects.get(place["camera"]) if place else None
        if place is None or generation < self.shown or camera is None:
            for path in files:  # an older state finished late: the newer one is shown already
                os.remove(path)
            record["outcome"] = "superseded"
            return
        handed = time.monotonic()
        obj = live_plane.show(context, place["shot"], camera, place["distance"], files[0], place["spec"],
                              data["job_id"], place["extra"])
        placed = time.monotonic()
        for path in files[1:]:
            os.remove(path)
        seconds = {"quiet": place["launched"] - place["changed_at"], "render": place["render"], **data["seconds"],
                   "hand-over": handed - data["done"], "placement": placed - handed}
        total = sum(seconds.values())
        obj["characterforge_live_seconds"] = json.dumps({k: round(v, 4) for k, v in seconds.items()})
        self.shown = generation
        record.update(outcome="shown", seconds=seconds, total=total)
        say(context, f"Live: {total:.1f} s from the change (" +
            ", ".join(f"{k} {seconds[k]:.2f}" for k in STAGES) + ")")


def say(context, message, error=False):
    s = context.scene.characterforge
    s.live_message = message
    s.live_failed = error
    redraw()


def redraw():
    """The sidebar and the viewports drawn again (from a timer, no area is the context's)."""
    for window in getattr(bpy.context.window_manager, "windows", ()):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


# ---------------------------------------------------------------------------------------------
# On and off; the timer and the handlers

def start(context):
    """Live on: refused, with the reason, when the profile cannot draft or the scene has no
    camera or rig. The first picture is asked for at once (it also warms the engine)."""
    global _session
    if _session is not None:
        return _session
    ok, why = draft_ready(context)
    if not ok:
        raise UserError(f"Live needs a profile with a draft setting: {why}")
    scene = context.scene
    joints.find_camera(scene)
    if not rigs_in_scene(scene):
        raise UserError("Live needs an OpenPose rig in the scene: add one with Pose > Add rig")
    _session = Session(scene, jobs._connector(preferences.get(context)))
    scene.characterforge.live = True
    _session.note(scene, _session.clock() - QUIET_S)  # due now
    for handlers, handler in _HANDLERS:
        if handler not in handlers:
            handlers.append(handler)
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=0.0)
    say(context, "Live: starting…")
    return _session


def stop(context=None, message="Live off"):
    """Live off: the running live job is canceled (within one step); the live plane stays."""
    global _session
    session, _session = _session, None
    if session is not None:
        session.worker.stop()
    for handlers, handler in _HANDLERS:
        if handler in handlers:
            handlers.remove(handler)
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    context = context or bpy.context
    scene = getattr(context, "scene", None)
    if scene is not None and hasattr(scene, "characterforge"):
        scene.characterforge.live = False
        say(context, message, error=message.startswith("Live stopped"))
    return session


def _timer():
    session = _session
    if session is None:
        return None
    context = bpy.context
    try:
        if context.scene.name != session.scene_name:
            stop(context, "Live stopped: the scene changed")
            return None
        session.tick(context, session.clock())
    except Exception as exc:  # noqa: BLE001 - a timer that raises is dropped by Blender without a word
        traceback.print_exc()
        stop(context, f"Live stopped: {type(exc).__name__}: {exc}")
        return None
    return TICK_S if _session is session else None


def _on_depsgraph(scene, depsgraph):
    session = _session
    if session is None or session.busy or scene.name != session.scene_name:
        return
    for update in depsgraph.updates:  # a set's object moved (rigs' proxies follow their rig: not needed)
        target = update.id
        if (update.is_updated_transform and isinstance(target, bpy.types.Object) and target.type == "MESH"
                and not str(target.get(ROLE, "")).startswith(("proxy_", "result_plane"))):
            session.geometry_changed = True
            break
    session.note(scene, session.clock())


def _on_frame(scene, depsgraph=None):
    session = _session
    if session is not None and not session.busy and scene.name == session.scene_name:
        session.geometry_changed = True  # animated objects moved too
        session.note(scene, session.clock())


_HANDLERS = ((bpy.app.handlers.depsgraph_update_post, _on_depsgraph), (bpy.app.handlers.frame_change_post, _on_frame))


@bpy.app.handlers.persistent
def on_load(*args):
    if _session is not None:
        stop(message="Live off (another file was opened)")
