"""Headless batch: control maps (and generations) for frames x cameras x seeds from a TOML file.

  python blender_scripts/batch.py --blend FILE --job batch.toml [--frames A-B] [--ray ADDRESS]
                                   [--keep-changed] [--dry-run]
  blender -b FILE -P blender_scripts/batch.py -- --job batch.toml [--frames A-B]

Resumable: finished units are listed in <output>/manifest.json with what made them (a
fingerprint: core.fingerprint). A re-run renders each finished unit's maps again (no
generation), builds the job it would send and keeps the unit when nothing changed; a unit
whose fingerprint changed is made again (in a moving shot, every later frame too: each carries
over the one before), and the closing line says what changed ("12 unchanged, 4 redone because
the prompt changed"). --keep-changed keeps changed units as they are and lists them; --dry-run
prints that plan and makes nothing. A unit left half-done is redone from scratch. Several
backend URLs share the generations, each kept as busy as it runs jobs at once (a `serve-ray`
URL: one unit per engine replica). An animated shot's unit is a segment: with --ray each shot's
segments run in order as Ray tasks, the shots side by side; --frames (a farm's chunk) makes the
segments whose new frames start in it. Exits non-zero with a summary when anything failed.

batch.toml:
  [batch]
  output = "//batch"              # // is the .blend file's folder
  frames = "1-24"                 # or 7, or [1, 5, 9]
  cameras = ["CamA", "CamB"]      # empty: the scene camera
  seeds = [1, 2]                  # one generation per seed (variants)
  generate = true                 # false: control maps only
  backends = ["http://127.0.0.1:7861"]   # empty: the bundled backend
  token = "..."                   # for the URLs above
  retries = 2                     # --ray: how often a failed unit runs again
  kind = "posed"                  # posed: a posed character per unit; shot: the scene's shot (its set,
                                  #   background, characters and identities), a moving shot frame by frame
  temporal = true                 # shot: each frame starts from the one before, carried over by Blender's
                                  #   motion (false: every frame on its own, to compare)
  video = false                   # shot, animation: also sequence.mp4 (H.264, the scene's frame rate) per camera
                                  #   and seed
  relight = false                 # shot: relight every frame with the scene's own lights (a light reference per
                                  #   frame, the Shot section's relight settings); the unlit frame kept beside it
  kind = "animation"              # the shot made by a video model (the frames one run: "1-48"), segment by
                                  #   segment, each carried over from the one before; a segment is the unit
  [animation]                     # kind = "animation" (the [shot] table's prompt, steps and guidance apply)
  profile = "wan-vace"            # a video profile: wan-vace, wan-animate
  segment = 0                     # frames a segment holds (0: the model's window)
  carry = 0                       # frames carried over from the segment before (0: the model's default, 5)
  mode = "replace"                # replace: the painted set kept outside the characters; animate: all drawn
  control = "openpose"            # or depth (VACE)
  height = 480                    # the clip's height (a multiple of 16); the width follows the camera
  strength = 1.0
  [shot]
  prompt = "a knight in silver armour"
  negative_prompt = "blurry"
  steps = 30
  guidance = 6.0
  draft = false                   # true: quick few-step drafts (the profile's draft settings)
  profile = "sdxl"
  depth_strength = 0.4            # also openpose_strength, hand_depth_strength, use_depth, use_hand_depth
"""

import argparse
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bootstrap import fail, register_addon, save_blend, script_args  # noqa: E402
from batch_units import unit_spec  # noqa: E402

SHOT_DEFAULTS = dict(prompt="", negative_prompt="", steps=30, guidance=6.0, draft=False, profile="sdxl",
                     openpose_strength=1.0,
                     use_depth=True, depth_strength=0.4, use_hand_depth=True, hand_depth_strength=0.6)


def progress(done, total, failed, started):
    width = 30
    filled = int(width * done / max(total, 1))
    rate = (time.monotonic() - started) / max(done, 1)
    bar = "#" * filled + "-" * (width - filled)
    print(f"[{bar}] {done}/{total} units, {failed} failed, {rate:.1f} s/unit", flush=True)


def generate(client, spec, unit_dir, media=None):
    """Run `spec` on `client` to the end (the pictures it names, `media`, sent first); its
    results saved in `unit_dir`; returns their paths."""
    from characterforge_addon.client import pictures
    from characterforge_addon.client.backend_client import FINISHED, BackendError
    pictures.sender_for(client.url).ensure(client, media or {})
    job = client.submit(spec)
    while (status := client.status(job))["status"] not in FINISHED:
        time.sleep(0.2)
    if status["status"] != "completed":
        raise BackendError((status.get("error") or {}).get("message", status["status"]))
    files = []
    os.makedirs(unit_dir, exist_ok=True)
    for name in status["results"]:
        path = os.path.join(unit_dir, f"{name}.png")
        with open(path, "wb") as f:
            f.write(client.result(job, name))
        files.append(path)
    return files


def backend_worker(client, work, results):
    """One backend: take units, generate, save the result next to the unit's control maps."""
    from characterforge_addon.client.backend_client import BackendError
    while True:
        item = work.get()
        if item is None:
            return
        folder, unit_dir, spec, made = item
        try:
            results.put((folder, generate(client, spec, unit_dir), None, made))
        except (BackendError, OSError) as exc:
            results.put((folder, [], str(exc), made))


class Resume:
    """What this run does with each unit: its maps are rendered into a staging folder, its
    fingerprint (what it would send) compared with the manifest's, and the unit either kept
    as it is or moved into place to be made again. `identity`: the backend's record of the
    profile's models (None for maps only)."""

    def __init__(self, root, manifest, identity, keep_changed=False, dry_run=False):
        from characterforge_addon.core.batch import fingerprint
        self.root, self.manifest, self.identity = root, manifest, identity
        self.keep_changed, self.dry_run = keep_changed, dry_run
        self.rerun = fingerprint.Rerun(dry_run)
        # one per manifest (farm chunks share the output folder); a dry run leaves no trace in it
        self.staging = tempfile.mkdtemp(prefix="characterforge-dry-run-") if dry_run else os.path.join(
            root, ".staging-" + os.path.splitext(os.path.basename(manifest.path))[0])
        shutil.rmtree(self.staging, ignore_errors=True)  # a killed run's leftovers

    def stage(self, folder):
        """A clean folder for the unit's maps before it is decided."""
        here = os.path.join(self.staging, folder)
        shutil.rmtree(here, ignore_errors=True)
        os.makedirs(here)
        return here

    def decide(self, folder, made, carried=False):
        """(outcome, whether to make the unit now) for the unit staged in `stage(folder)`,
        whose fingerprint is `made`; `carried`: a moving shot's frame after one made again.
        A unit to make replaces its old folder; any other leaves it untouched."""
        from characterforge_addon.core.batch import fingerprint
        finished = self.manifest.finished(folder, self.root)
        if carried and finished:  # said by its own changes where it has any beyond the frame it carries over
            own = [r for r in fingerprint.changes(self.manifest.fingerprint(folder), made) if r != "frame carried over"]
            what = self.rerun.record(folder, "keep" if self.keep_changed else "redo", own or [fingerprint.CARRIED])
        else:
            what = self.rerun.decide(folder, finished, self.manifest.fingerprint(folder), made, self.keep_changed)
        here, unit_dir = os.path.join(self.staging, folder), os.path.join(self.root, folder)
        if what in ("unchanged", "keep") or self.dry_run:
            shutil.rmtree(here, ignore_errors=True)
            return what, False
        self.manifest.forget(folder)  # killed from here on: not done, made again next time
        shutil.rmtree(unit_dir, ignore_errors=True)
        os.makedirs(os.path.dirname(unit_dir), exist_ok=True)
        os.replace(here, unit_dir)
        return what, True

    def close(self):
        shutil.rmtree(self.staging, ignore_errors=True)
        print(("" if self.dry_run else "batch: ") + self.rerun.summary(), flush=True)


def run_shot_frames(context, plan, shot, cameras, units, root, manifest, client, report, resume, place=False):
    """A moving shot: every unit is the scene's shot at its frame, one after another (a frame
    carries the one before over), its picture gathered into the camera's and seed's image
    sequence; then each finished sequence's flicker, video (`video`) and, with `place`, a
    plane playing it in the shot's collection. A finished frame is kept while its
    fingerprint holds and no frame before it in its sequence was made again (`resume`)."""
    from characterforge_addon.blender.generation import planes
    from characterforge_addon.blender.shots import moving_shots
    from characterforge_addon.client.backend_client import BackendError
    from characterforge_addon.core.batch import batch_plan, fingerprint
    from characterforge_addon.core.errors import UserError
    from characterforge_addon.core.image_io import write_atomic
    scene = context.scene
    s = scene.characterforge
    if shot.prompt:  # the batch's prompts over the scene's: the characters' default and the negative
        s.prompt = shot.prompt
    if shot.negative_prompt:
        s.negative_prompt = shot.negative_prompt
    remade = set()  # (camera, seed) of the sequences with a frame made in this run
    for camera_name, frame, seed, folder in units:
        unit_dir = os.path.join(root, folder)
        previous = batch_plan.previous_unit(plan, camera_name, frame, seed)
        finished = manifest.finished(folder, root)
        carried = bool(previous) and (camera_name, seed) in remade  # each frame starts from the one before
        if resume.dry_run and (not finished or (carried and not manifest.finished(previous, root))):
            resume.rerun.record(folder, "redo" if finished else "new", [fingerprint.CARRIED] if finished else [])
            remade.add((camera_name, seed))  # nothing to compare with (or carry over): nothing rendered
            continue
        scene.frame_set(frame)
        try:
            if previous and not manifest.finished(previous, root):
                raise UserError(f"frame {frame - 1}, which this frame carries over, did not finish")
            here = resume.stage(folder)
            spec = moving_shots.frame_job(context, scene.objects[camera_name], here, seed,
                                          os.path.join(root, previous) if previous else None, plan["relight"])
            spec.update(name=f"seed{seed}", steps=shot.steps, guidance=shot.guidance, profile=shot.profile,
                        draft=shot.draft)
            made = fingerprint.of_job(spec, resume.identity)
            what, make = resume.decide(folder, made, carried)
            if what in ("redo", "new"):
                remade.add((camera_name, seed))
            if not make:
                if not resume.dry_run:
                    report(folder, None)
                continue
            files = generate(client, spec, unit_dir)
            picture = os.path.join(unit_dir, moving_shots.RESULT)
            os.replace(files[0], picture)
            sequence = os.path.join(root, batch_plan.sequence_folder(camera_name, seed))
            os.makedirs(sequence, exist_ok=True)
            with open(picture, "rb") as f:
                write_atomic(os.path.join(sequence, f"frame_{frame:04d}.png"), f.read())
        except (UserError, BackendError, OSError) as exc:
            report(folder, str(exc))
            continue
        manifest.add(folder, [os.path.relpath(p, root) for p in (
            picture, os.path.join(sequence, f"frame_{frame:04d}.png"))], made)
        report(folder, None)
    if resume.dry_run:
        return
    for camera_name in cameras:
        for seed in plan["seeds"]:
            folders = [os.path.join(root, batch_plan.unit_folder(camera_name, f, seed)) for f in plan["frames"]]
            if all(manifest.finished(os.path.relpath(f, root), root) for f in folders):
                sequence = os.path.join(root, batch_plan.sequence_folder(camera_name, seed))
                settings = {"frames": plan["frames"], "temporal": plan["temporal"], "fps": scene.render.fps,
                            "relight": plan["relight"]}
                try:
                    with open(os.path.join(sequence, "sequence.json"), encoding="utf-8") as f:
                        before = json.load(f)
                except (OSError, ValueError):
                    before = {}
                # a sequence none of whose frames was made again keeps its record and video
                kept = ((camera_name, seed) not in remade and all(before.get(k) == v for k, v in settings.items())
                        and bool(before.get("video")) == plan["video"]
                        and (not plan["video"] or os.path.isfile(os.path.join(sequence, "sequence.mp4"))))
                per_frame, mean = (before["flicker_per_frame"], before["flicker"]) if kept else \
                    moving_shots.flicker(folders)
                print(f"flicker {camera_name} seed {seed}: {mean:.2f} (mean absolute difference to the frame before, "
                      f"carried over by the motion; {'from the frame before' if plan['temporal'] else 'every frame on its own'})"
                      + ("; sequence unchanged" if kept else ""), flush=True)
                if not kept:
                    record = {"camera": camera_name, "seed": seed, **settings, "flicker": mean,
                              "flicker_per_frame": per_frame, "shot": vars(shot)}
                    if plan["video"]:
                        record["video"] = moving_shots.write_video(sequence, plan["frames"], scene.render.fps,
                                                                   os.path.join(sequence, "sequence.mp4"))
                        print(f"video {record['video']}", flush=True)
                    moving_shots.write_sequence_record(sequence, record)
                frames = plan["frames"]
                if place and frames == list(range(frames[0], frames[-1] + 1)):
                    camera = scene.objects[camera_name]
                    moving_shots.sequence_plane(context, sequence, frames, camera,
                                                planes.shot_collection(scene, f"{camera_name} seed {seed}"),
                                                f"{camera_name} seed {seed} sequence")


def animated_shots(context, plan, cameras, root, manifest):
    """The batch's animated shots (one per camera and seed), each with its segments."""
    from characterforge_addon.blender.shots import animation
    scene = context.scene
    settings = animation.settings_of(scene, {**{k: v for k, v in plan["shot"].items() if k in (
        "prompt", "negative_prompt", "steps", "guidance")}, **plan["animation"], "video": plan["video"]})
    if "profile" not in plan["animation"]:
        settings["profile"] = scene.characterforge.video_profile
    return [animation.AnimatedShot(context, scene.objects[camera], plan["frames"], seed, root, manifest, settings)
            for camera in cameras for seed in plan["seeds"]]


def run_animation(context, plan, shots_todo, client, report, resume, place=False, chunk=None):
    """Animated shots: each shot's segments in order (a segment carries the one before over), its
    frames gathered into the sequence; then each finished shot's flicker, sequence.json, video and,
    with `place`, a plane playing it. A finished segment is kept while its fingerprint holds and
    no segment before it was made again (`resume`). `chunk`: only the segments whose new frames
    start there (a farm's task)."""
    from characterforge_addon.client.backend_client import BackendError
    from characterforge_addon.core.errors import UserError
    for shot in shots_todo:
        remade = False  # a segment made again: every later one carries its new frames over
        for segment in shot.segments:
            if chunk is not None and segment["frames"][segment["carried"]] not in chunk:
                continue
            unit = shot.unit(segment)
            try:
                made = decide_segment(shot, segment, resume, remade)
                if made is None:
                    if not resume.dry_run:
                        report(unit, None)
                    continue
                remade = True
                if resume.dry_run:
                    continue
                unit_dir = os.path.join(shot.root, unit)
                shot.adopt_maps(segment, unit_dir)
                spec, media = made
                files = generate(client, spec, unit_dir, media)
                shot.keep(segment, {os.path.splitext(os.path.basename(f))[0]: f for f in files},
                          made=fingerprint_of(spec, resume))
            except (UserError, BackendError, OSError) as exc:
                report(unit, str(exc))
                break  # the shot's later segments carry this one over
            report(unit, None)
        if shot.finished() and not resume.dry_run:
            finish_animated(shot, plan, place, remade)


def decide_segment(shot, segment, resume, remade, render_new=True):
    """None when the segment is kept as it is (unchanged, or changed and kept on purpose; a dry
    run's plan recorded), else its (spec, media) to make: its maps are rendered into the staging
    folder and its fingerprint compared with the manifest's (`remade`: a segment before it in
    the shot is made again, so the frames it carries over change). Without `render_new`, a
    segment never finished is only recorded as new (("new", None): a Ray task renders it)."""
    from characterforge_addon.core.batch import fingerprint
    unit = shot.unit(segment)
    finished = shot.manifest.finished(unit, shot.root)
    carried = remade and segment["carried"] > 0
    if not finished and not render_new and not resume.dry_run:
        resume.rerun.record(unit, "new")
        return ("new", None)
    if resume.dry_run and (not finished or carried):  # nothing to compare with: nothing rendered
        resume.rerun.record(unit, "redo" if finished else "new", [fingerprint.CARRIED] if finished else [])
        return ("dry run", None)
    here = resume.stage(unit)
    spec, media = shot.job(segment, maps_root=here)
    what, make = resume.decide(unit, fingerprint_of(spec, resume), carried)
    if not make:
        if what in ("redo", "new"):  # a dry run: what a run would do
            return ("dry run", None)
        return None
    return spec, media


def fingerprint_of(spec, resume):
    from characterforge_addon.core.batch import fingerprint
    return fingerprint.of_job(spec, resume.identity)


def run_animation_on_ray(address, plan, animated, blend, report, resume, place=False):
    """Animated shots on a Ray cluster: each shot's segments in order (a segment is a Ray task
    rendering its frames' maps on a worker and generating on a replica, given the frames it
    carries over), the shots side by side; every finished segment written and recorded here. A
    finished segment is decided here first, as on one machine (`decide_segment`)."""
    import ray_units  # before Ray: it sets how Ray authenticates
    from characterforge_addon.core.image_io import write_atomic
    remote = ray_units.start(address, plan["retries"], ray_units.segment)
    import ray
    pending, position, remade = {}, {id(s): 0 for s in animated}, {id(s): False for s in animated}

    def submit(shot):
        """The shot's next segment to make sent as a task (finished ones decided on the way);
        False when none is left."""
        while position[id(shot)] < len(shot.segments):
            piece = shot.segments[position[id(shot)]]
            position[id(shot)] += 1
            if decide_segment(shot, piece, resume, remade[id(shot)], render_new=False) is None:
                if not resume.dry_run:
                    report(shot.unit(piece), None)
                continue
            remade[id(shot)] = True
            if resume.dry_run:
                continue
            previous = {}
            for frame in piece["frames"][:piece["carried"]]:
                with open(os.path.join(shot.sequence, f"frame_{frame:04d}.png"), "rb") as f:
                    previous[frame] = f.read()
            pending[remote.remote(blend, shot.camera.name, shot.frames, shot.seed, shot.settings, piece, previous,
                                  resume.identity)] = (shot, piece)
            return True
        return False

    try:
        resume.identity = ray_units.identity(animated[0].settings["profile"]) if animated else None
        for shot in animated:
            if not submit(shot) and not resume.dry_run:
                finish_animated(shot, plan, place, remade[id(shot)])
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            shot, piece = pending.pop(ready[0])
            try:
                answer = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # after its retries: the shot's later segments wait for it
                report(shot.unit(piece), str(exc).strip().splitlines()[-1][:300])
                continue
            for relative, data in answer["files"].items():
                os.makedirs(os.path.dirname(os.path.join(shot.root, relative)), exist_ok=True)
                write_atomic(os.path.join(shot.root, relative), data)
            shot.manifest.add(shot.unit(piece), shot.kept(piece), answer["made"])
            report(shot.unit(piece), None)
            if not submit(shot):
                finish_animated(shot, plan, place, True)
    finally:
        ray.shutdown()


def finish_animated(shot, plan, place, remade=True):
    """A finished shot's flicker, sequence.json, video and plane; a shot none of whose segments
    was made in this run keeps its record and video."""
    import json
    record_path = os.path.join(shot.sequence, "sequence.json")
    record = None
    if not remade:
        try:
            with open(record_path, encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError):
            record = None
        if record is not None and bool(record.get("video")) != plan["video"]:
            record = None
    kept = record is not None
    if not kept:
        record = shot.finish(plan["video"])
    print(f"flicker {shot.camera.name} seed {shot.seed}: {record['flicker']:.2f} (mean absolute difference "
          f"to the frame before, carried over by the motion; a video model, {len(shot.segments)} segment(s))"
          + ("; sequence unchanged" if kept else ""), flush=True)
    if plan["video"] and not kept:
        print(f"video {record['video']}", flush=True)
    if place:
        shot.place(f"{shot.camera.name} seed {shot.seed}")


def run_on_ray(address, plan, shot, units, root, manifest, blend, report, resume):
    """Every unit as a Ray task (ray_units.py): maps rendered on the cluster's CPUs, the unit
    decided there by its fingerprint against the manifest's (`resume`), generations on the
    Serve application's replicas; each unit's files written here as it finishes.
    `report(folder, error or None)` counts it."""
    import ray_units  # before Ray: it sets how Ray authenticates
    from characterforge_addon.core.image_io import write_atomic
    remote_unit = ray_units.start(address, plan["retries"])
    import ray
    try:
        if plan["generate"]:
            resume.identity = ray_units.identity(shot.profile)
        pending = {}
        for camera, frame, seed, folder in units:
            finished = manifest.finished(folder, root)
            if resume.dry_run and not finished:
                resume.rerun.record(folder, "new")
                continue
            pending[remote_unit.remote(blend, camera, frame, seed, vars(shot), plan["generate"], resume.identity,
                                       finished, manifest.fingerprint(folder), resume.keep_changed,
                                       resume.dry_run)] = folder
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            folder = pending.pop(ready[0])
            try:
                answer = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # after its retries
                report(folder, str(exc).strip().splitlines()[-1][:300])
                continue
            resume.rerun.record(folder, answer["what"], answer["reasons"])
            files = answer["files"]
            if files is None:  # kept as it is (or a dry run)
                if not resume.dry_run:
                    report(folder, None)
                continue
            unit_dir = os.path.join(root, folder)
            manifest.forget(folder)
            shutil.rmtree(unit_dir, ignore_errors=True)  # half-done before: start clean
            for relative, data in files.items():
                os.makedirs(os.path.dirname(os.path.join(unit_dir, relative)), exist_ok=True)
                write_atomic(os.path.join(unit_dir, relative), data)
            kept = [r for r in files if not r.startswith("controls/")] if plan["generate"] else \
                [r for r in files if r != "controls/controls.json"]
            manifest.add(folder, [os.path.relpath(os.path.join(unit_dir, r), root) for r in kept], answer["made"])
            report(folder, None)
    finally:
        ray.shutdown()


def connect_backends(plan):
    from characterforge_addon.blender.backend import backend_process
    from characterforge_addon.blender import preferences
    from characterforge_addon.client.backend_client import BackendClient
    if plan["backends"]:
        clients = [BackendClient(url, plan["token"]) for url in plan["backends"]]
        for client in clients:
            client.health()  # a clear error now rather than per unit
        return clients
    prefs = preferences.get()
    data = preferences.data_dir(prefs)
    profile = plan["animation"].get("profile", "wan-vace") if plan["kind"] == "animation" else \
        plan["shot"].get("profile", prefs.profile)
    backend_process.start(preferences.backend_python(prefs), prefs.port, data, profile,
                          preferences.serve_options(prefs))
    return [backend_process.wait_ready(f"http://127.0.0.1:{prefs.port}", data)]


def backend_identity(clients, profile):
    """The profile's identity (what pins its models' weights) as the backends run it; backends
    that would make the batch's units with different models are refused."""
    from characterforge_addon.core.errors import UserError
    found = {client.url: client.models(profile).get("identity") for client in clients}
    first_url, first = next(iter(found.items()))
    for url, other in found.items():
        if other != first:
            ours, theirs = (first or {}).get("models", {}), (other or {}).get("models", {})
            roles = sorted(r for r in set(ours) | set(theirs) if ours.get(r) != theirs.get(r))
            raise UserError(f"the backends at {first_url} and {url} run profile {profile!r} with different models"
                            f" ({', '.join(roles) or 'their settings differ'}): one batch's units would mix them; "
                            "give every backend the same model files, or list only one")
    return first


def main(argv=None):
    parser = argparse.ArgumentParser(prog="batch.py", description=__doc__.splitlines()[0])
    parser.add_argument("--blend", help=".blend file to open (not needed under blender -b FILE)")
    parser.add_argument("--job", required=True, help="batch TOML file")
    parser.add_argument("--ray", metavar="ADDRESS", help="run the units as tasks on this Ray cluster (the address "
                                                          "serve-ray prints): maps on its CPUs, generations on its "
                                                          "engine replicas")
    parser.add_argument("--frames", help="only these frames (\"A-B\", \"3, 5-10\"): one chunk of a farm's job, with "
                                         "its own manifest (manifest.frames-A-B.json), so chunks on several machines "
                                         "never write one file")
    parser.add_argument("--save", help="kind = \"shot\": save the .blend here with a plane playing each finished "
                                       "sequence in front of its camera")
    parser.add_argument("--keep-changed", action="store_true",
                        help="keep finished units whose fingerprint changed (made with other settings) as they are, "
                             "and list them")
    parser.add_argument("--dry-run", action="store_true",
                        help="print what a run would keep, redo and make, and why; generate nothing, change no file")
    args = parser.parse_args(script_args(argv))
    import bpy
    if args.blend:
        if not os.path.isfile(args.blend):
            fail(f"--blend {args.blend}: no such file")
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend))
    register_addon()
    from characterforge_addon.blender.backend import backend_process
    from characterforge_addon.blender.generation import job_inputs
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.blender.rig import joints
    from characterforge_addon.core.batch import batch_plan, fingerprint
    from characterforge_addon.core.errors import UserError

    clients = []
    try:
        plan = batch_plan.load_plan(args.job)
        if args.frames:
            plan["frames"] = batch_plan.parse_frames(args.frames, "--frames")
        scene = bpy.context.scene
        cameras = [joints.find_camera(scene, name) for name in plan["cameras"]] or [joints.find_camera(scene)]
        root = job_inputs.resolve_dir(plan["output"])
        if not args.dry_run:
            os.makedirs(root, exist_ok=True)
        manifest = batch_plan.Manifest(root, batch_plan.MANIFEST if not args.frames else
                                       "manifest.frames-{}.json".format(args.frames.replace(" ", "").replace(",", "_")))
        if plan["kind"] == "animation":  # the units are segments; --frames picks the segments a farm task makes
            chunk = set(plan["frames"]) if args.frames else None
            plan["frames"] = batch_plan.load_plan(args.job)["frames"]  # segments are planned over the whole shot
            animated = animated_shots(bpy.context, plan, [c.name for c in cameras], root, manifest)
            mine = [(a, s) for a in animated for s in a.segments
                    if chunk is None or s["frames"][s["carried"]] in chunk]
            units = []
            total = len(mine)
            finished = sum(manifest.finished(a.unit(s), root) for a, s in mine)
        else:
            mine, units = [], batch_plan.units(plan, [c.name for c in cameras])
            total = len(units)
            finished = sum(manifest.finished(u[3], root) for u in units)
        print(f"batch: {total} units, {finished} already done, {total - finished} to do -> {root}"
              + ("; each done unit is kept only if what makes it is unchanged" if finished else ""), flush=True)
        shot = SimpleNamespace(**{**SHOT_DEFAULTS, **plan["shot"]})
        if args.ray and not bpy.data.filepath:
            raise UserError("--ray needs the batch's .blend saved (--blend FILE): every worker opens it")
        if args.ray and plan["kind"] == "shot":
            raise UserError("kind = \"shot\" runs on one machine (each frame carries the one before over): run "
                            "it without --ray, or split the frames between machines with --frames")
        if plan["kind"] in ("shot", "animation") and not plan["generate"]:
            raise UserError(f"kind = \"{plan['kind']}\" generates the shot: set generate = true, or kind = \"posed\" "
                            "for maps only")
        clients = connect_backends(plan) if plan["generate"] and (units or mine) and not args.ray else []
        profile = animated[0].settings["profile"] if plan["kind"] == "animation" and animated else shot.profile
        resume = Resume(root, manifest, backend_identity(clients, profile) if clients else None,
                        args.keep_changed, args.dry_run)
    except UserError as exc:
        if clients and not plan["backends"]:
            backend_process.stop()
        fail(str(exc))

    work, results = queue.Queue(), queue.Queue()
    # as many units in flight per backend as it runs at once (serve: 1; serve-ray: one per replica)
    threads = [threading.Thread(target=backend_worker, args=(c, work, results), daemon=True)
               for c in (clients if not args.dry_run else ())
               for _ in range(max(1, int(c.health().get("workers", 1))))]
    for t in threads:
        t.start()
    failed, done, started = [], 0, time.monotonic()

    def report(folder, error):
        nonlocal done
        if error:
            failed.append(f"{folder}: {error}")
            resume.rerun.fail(folder)
        else:
            done += 1
        progress(done, total, len(failed), started)

    def collect(block=False):
        while True:
            try:
                folder, files, error, made = results.get(block=block, timeout=600 if block else None)
            except queue.Empty:
                return
            if not error:
                manifest.add(folder, [os.path.relpath(f, root) for f in files], made)
            report(folder, error)
            if block:
                return

    if args.ray and plan["kind"] != "animation":
        try:
            run_on_ray(args.ray, plan, shot, units, root, manifest, bpy.data.filepath, report, resume)
        except UserError as exc:
            fail(str(exc))
        units = []
    if plan["kind"] == "animation":
        try:
            if args.ray:
                run_animation_on_ray(args.ray, plan, animated, bpy.data.filepath, report, resume,
                                     place=bool(args.save))
            else:
                run_animation(bpy.context, plan, animated, clients[0] if clients else None, report, resume,
                              place=bool(args.save), chunk=chunk)
        finally:
            if not plan["backends"] and clients:
                backend_process.stop()
        if args.save and not args.dry_run:
            save_blend(bpy, args.save)
    if plan["kind"] == "shot":
        try:
            run_shot_frames(bpy.context, plan, shot, [c.name for c in cameras], units, root, manifest,
                            clients[0] if clients else None, report, resume, place=bool(args.save))
        finally:
            if not plan["backends"] and clients:
                backend_process.stop()
        if args.save and not args.dry_run:
            save_blend(bpy, args.save)
        units = []
    try:
        for camera_name, frame, seed, folder in units:
            unit_dir = os.path.join(root, folder)
            if args.dry_run and not manifest.finished(folder, root):
                resume.rerun.record(folder, "new")  # nothing to render to know
                continue
            here = resume.stage(folder)
            scene.frame_set(frame)
            try:
                manifest_maps = controls.render_controls(bpy.context, os.path.join(here, "controls"),
                                                         scene.objects[camera_name], preview=False)
            except UserError as exc:
                report(folder, str(exc))
                continue
            if plan["generate"]:
                spec = unit_spec(shot, os.path.join(here, "controls"), manifest_maps, seed)
                made = fingerprint.of_job(spec, resume.identity)
            else:
                made = fingerprint.of_files(os.path.join(here, "controls"), manifest_maps["files"])
            what, make = resume.decide(folder, made)
            if not make:
                if not args.dry_run:
                    report(folder, None)
                continue
            if not plan["generate"]:
                files = [os.path.join(unit_dir, "controls", f) for f in manifest_maps["files"]]
                results.put((folder, files, None, made))
            else:
                work.put((folder, unit_dir, spec, made))
            collect()
        for _ in threads:
            work.put(None)
        while done + len(failed) < total and any(t.is_alive() for t in threads):
            collect(block=True)
        collect()
    finally:
        if not plan["backends"] and clients:
            backend_process.stop()
    resume.close()
    if failed:
        print(f"batch finished with {len(failed)} failed unit(s) of {total}:", file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)
        sys.exit(1)
    if args.dry_run:
        return
    print(f"batch complete: {total} units in {root}", flush=True)


if __name__ == "__main__":
    main()
