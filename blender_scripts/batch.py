"""Headless batch: control maps (and generations) for frames x cameras x seeds from a TOML file.

  python blender_scripts/batch.py --blend FILE --job batch.toml [--frames A-B] [--ray ADDRESS]
  blender -b FILE -P blender_scripts/batch.py -- --job batch.toml [--frames A-B]

Resumable: finished units are listed in <output>/manifest.json and skipped on a re-run; a unit
left half-done is redone from scratch. Several backend URLs share the generations, each kept as
busy as it runs jobs at once (a `serve-ray` URL: one unit per engine replica). Exits non-zero
with a summary when anything failed.

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
  video = false                   # shot: also sequence.mp4 (H.264, the scene's frame rate) per camera and seed
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
import os
import queue
import shutil
import sys
import threading
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _bootstrap import fail, register_addon, save_blend, script_args  # noqa: E402

SHOT_DEFAULTS = dict(prompt="", negative_prompt="", steps=30, guidance=6.0, draft=False, profile="sdxl",
                     openpose_strength=1.0,
                     use_depth=True, depth_strength=0.4, use_hand_depth=True, hand_depth_strength=0.6)


def progress(done, total, failed, started):
    width = 30
    filled = int(width * done / max(total, 1))
    rate = (time.monotonic() - started) / max(done, 1)
    bar = "#" * filled + "-" * (width - filled)
    print(f"[{bar}] {done}/{total} units, {failed} failed, {rate:.1f} s/unit", flush=True)


def generate(client, spec, unit_dir):
    """Run `spec` on `client` to the end; its results saved in `unit_dir`; returns their paths."""
    from characterforge_addon.client.backend_client import FINISHED, BackendError
    job = client.submit(spec)
    while (status := client.status(job))["status"] not in FINISHED:
        time.sleep(0.2)
    if status["status"] != "completed":
        raise BackendError((status.get("error") or {}).get("message", status["status"]))
    files = []
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
        folder, unit_dir, spec = item
        try:
            results.put((folder, generate(client, spec, unit_dir), None))
        except (BackendError, OSError) as exc:
            results.put((folder, [], str(exc)))


def run_shot_frames(context, plan, shot, cameras, todo, root, manifest, client, report, place=False):
    """A moving shot: every unit is the scene's shot at its frame, one after another (a frame
    carries the one before over), its picture gathered into the camera's and seed's image
    sequence; then each finished sequence's flicker, video (`video`) and, with `place`, a
    plane playing it in the shot's collection."""
    from characterforge_addon.blender import moving_shots, planes
    from characterforge_addon.client.backend_client import BackendError
    from characterforge_addon.core import batch_plan
    from characterforge_addon.core.errors import UserError
    from characterforge_addon.core.image_io import write_atomic
    scene = context.scene
    s = scene.characterforge
    if shot.prompt:  # the batch's prompts over the scene's: the characters' default and the negative
        s.prompt = shot.prompt
    if shot.negative_prompt:
        s.negative_prompt = shot.negative_prompt
    for camera_name, frame, seed, folder in todo:
        unit_dir = os.path.join(root, folder)
        shutil.rmtree(unit_dir, ignore_errors=True)  # half-done before: start clean
        previous = batch_plan.previous_unit(plan, camera_name, frame, seed)
        scene.frame_set(frame)
        try:
            if previous and not manifest.finished(previous, root):
                raise UserError(f"frame {frame - 1}, which this frame carries over, did not finish")
            spec = moving_shots.frame_job(context, scene.objects[camera_name], unit_dir, seed,
                                          os.path.join(root, previous) if previous else None)
            spec.update(name=f"seed{seed}", steps=shot.steps, guidance=shot.guidance, profile=shot.profile,
                        draft=shot.draft)
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
            picture, os.path.join(sequence, f"frame_{frame:04d}.png"))])
        report(folder, None)
    for camera_name in cameras:
        for seed in plan["seeds"]:
            folders = [os.path.join(root, batch_plan.unit_folder(camera_name, f, seed)) for f in plan["frames"]]
            if all(manifest.finished(os.path.relpath(f, root), root) for f in folders):
                sequence = os.path.join(root, batch_plan.sequence_folder(camera_name, seed))
                per_frame, mean = moving_shots.flicker(folders)
                print(f"flicker {camera_name} seed {seed}: {mean:.2f} (mean absolute difference to the frame before, "
                      f"carried over by the motion; {'from the frame before' if plan['temporal'] else 'every frame on its own'})",
                      flush=True)
                record = {"camera": camera_name, "seed": seed, "frames": plan["frames"], "temporal": plan["temporal"],
                          "flicker": mean, "flicker_per_frame": per_frame, "shot": vars(shot)}
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


def unit_spec(shot, controls_dir, manifest_maps, seed):
    """The posed-character job of one unit from its control maps (in `controls_dir`)."""
    from characterforge_addon.blender import job_inputs
    from characterforge_addon.core.job_spec import posed_character_spec
    w, h = manifest_maps["resolution"]
    spec = posed_character_spec(shot.prompt, job_inputs.control_inputs(shot, controls_dir), w, h, shot.negative_prompt,
                                seed, shot.steps, shot.guidance, shot.profile, name=f"seed{seed}")
    spec["draft"] = shot.draft
    return spec


def run_on_ray(address, plan, shot, todo, root, manifest, blend, report):
    """Every unit as a Ray task (ray_units.py): maps rendered on the cluster's CPUs, generations
    on the Serve application's replicas; each unit's files written here as it finishes.
    `report(folder, error or None)` counts it."""
    import ray_units  # before Ray: it sets how Ray authenticates
    from characterforge_addon.core.image_io import write_atomic
    remote_unit = ray_units.start(address, plan["retries"])
    import ray
    pending = {remote_unit.remote(blend, camera, frame, seed, vars(shot), plan["generate"]): folder
               for camera, frame, seed, folder in todo}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            folder = pending.pop(ready[0])
            try:
                files = ray.get(ready[0])
            except ray.exceptions.RayError as exc:  # after its retries
                report(folder, str(exc).strip().splitlines()[-1][:300])
                continue
            unit_dir = os.path.join(root, folder)
            shutil.rmtree(unit_dir, ignore_errors=True)  # half-done before: start clean
            for relative, data in files.items():
                os.makedirs(os.path.dirname(os.path.join(unit_dir, relative)), exist_ok=True)
                write_atomic(os.path.join(unit_dir, relative), data)
            kept = [r for r in files if not r.startswith("controls/")] if plan["generate"] else \
                [r for r in files if r != "controls/controls.json"]
            manifest.add(folder, [os.path.relpath(os.path.join(unit_dir, r), root) for r in kept])
            report(folder, None)
    finally:
        ray.shutdown()


def connect_backends(plan):
    from characterforge_addon.blender import backend_process, preferences
    from characterforge_addon.client.backend_client import BackendClient
    if plan["backends"]:
        clients = [BackendClient(url, plan["token"]) for url in plan["backends"]]
        for client in clients:
            client.health()  # a clear error now rather than per unit
        return clients
    prefs = preferences.get()
    data = preferences.data_dir(prefs)
    backend_process.start(preferences.backend_python(prefs), prefs.port, data, plan["shot"].get("profile", prefs.profile),
                          preferences.serve_options(prefs))
    return [backend_process.wait_ready(f"http://127.0.0.1:{prefs.port}", data)]


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
    args = parser.parse_args(script_args(argv))
    import bpy
    if args.blend:
        if not os.path.isfile(args.blend):
            fail(f"--blend {args.blend}: no such file")
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(args.blend))
    register_addon()
    from characterforge_addon.blender import backend_process, controls, job_inputs, joints
    from characterforge_addon.core import batch_plan
    from characterforge_addon.core.errors import UserError

    try:
        plan = batch_plan.load_plan(args.job)
        if args.frames:
            plan["frames"] = batch_plan.parse_frames(args.frames, "--frames")
        scene = bpy.context.scene
        cameras = [joints.find_camera(scene, name) for name in plan["cameras"]] or [joints.find_camera(scene)]
        root = job_inputs.resolve_dir(plan["output"])
        os.makedirs(root, exist_ok=True)
        manifest = batch_plan.Manifest(root, batch_plan.MANIFEST if not args.frames else
                                       "manifest.frames-{}.json".format(args.frames.replace(" ", "").replace(",", "_")))
        todo = [u for u in batch_plan.units(plan, [c.name for c in cameras]) if not manifest.finished(u[3], root)]
        total = len(batch_plan.units(plan, [c.name for c in cameras]))
        print(f"batch: {total} units, {total - len(todo)} already done, {len(todo)} to do -> {root}", flush=True)
        shot = SimpleNamespace(**{**SHOT_DEFAULTS, **plan["shot"]})
        if args.ray and not bpy.data.filepath:
            raise UserError("--ray needs the batch's .blend saved (--blend FILE): every worker opens it")
        if args.ray and plan["kind"] == "shot":
            raise UserError("kind = \"shot\" runs on one machine (each frame carries the one before over): run "
                            "it without --ray, or split the frames between machines with --frames")
        if plan["kind"] == "shot" and not plan["generate"]:
            raise UserError("kind = \"shot\" generates the shot: set generate = true, or kind = \"posed\" for maps only")
        clients = connect_backends(plan) if plan["generate"] and todo and not args.ray else []
    except UserError as exc:
        fail(str(exc))

    work, results = queue.Queue(), queue.Queue()
    # as many units in flight per backend as it runs at once (serve: 1; serve-ray: one per replica)
    threads = [threading.Thread(target=backend_worker, args=(c, work, results), daemon=True)
               for c in clients for _ in range(max(1, int(c.health().get("workers", 1))))]
    for t in threads:
        t.start()
    failed, done, started = [], total - len(todo), time.monotonic()

    def report(folder, error):
        nonlocal done
        if error:
            failed.append(f"{folder}: {error}")
        else:
            done += 1
        progress(done, total, len(failed), started)

    def collect(block=False):
        while True:
            try:
                folder, files, error = results.get(block=block, timeout=600 if block else None)
            except queue.Empty:
                return
            if not error:
                manifest.add(folder, [os.path.relpath(f, root) for f in files])
            report(folder, error)
            if block:
                return

    if args.ray:
        run_on_ray(args.ray, plan, shot, todo, root, manifest, bpy.data.filepath, report)
        todo = []
    if plan["kind"] == "shot":
        try:
            run_shot_frames(bpy.context, plan, shot, [c.name for c in cameras], todo, root, manifest,
                            clients[0] if clients else None, report, place=bool(args.save))
        finally:
            if not plan["backends"] and clients:
                backend_process.stop()
        if args.save:
            save_blend(bpy, args.save)
        todo = []
    try:
        for camera_name, frame, seed, folder in todo:
            unit_dir = os.path.join(root, folder)
            shutil.rmtree(unit_dir, ignore_errors=True)  # half-done before: start clean
            scene.frame_set(frame)
            try:
                manifest_maps = controls.render_controls(bpy.context, os.path.join(unit_dir, "controls"),
                                                         scene.objects[camera_name], preview=False)
            except UserError as exc:
                failed.append(f"{folder}: {exc}")
                continue
            if not plan["generate"]:
                files = [os.path.join(unit_dir, "controls", f) for f in manifest_maps["files"]]
                results.put((folder, files, None))
            else:
                work.put((folder, unit_dir, unit_spec(shot, os.path.join(unit_dir, "controls"), manifest_maps, seed)))
            collect()
        for _ in threads:
            work.put(None)
        while done + len(failed) < total and any(t.is_alive() for t in threads):
            collect(block=True)
        collect()
    finally:
        if not plan["backends"] and clients:
            backend_process.stop()
    if failed:
        print(f"batch finished with {len(failed)} failed unit(s) of {total}:", file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)
        sys.exit(1)
    print(f"batch complete: {total} units in {root}", flush=True)


if __name__ == "__main__":
    main()
