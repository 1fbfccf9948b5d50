"""A batch's units as Ray tasks (`batch.py --ray ADDRESS`): each task renders one unit's control
maps with the bpy module (the .blend opened once per worker process) and, when the batch
generates, sends the unit's job to the Serve application `serve-ray` deployed, streaming its
results back. A unit finished before is decided in its task by its fingerprint (what it would
send) against the manifest's, and generated only when that changed. The task returns the
unit's files as bytes; batch.py writes them where the manifest expects them, so resume,
"every output exactly once" and the progress bar are the same as on one machine. Ray retries
a failed unit (`[batch] retries`)."""

import os
import sys
import tempfile
import uuid
from types import SimpleNamespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Joining a cluster sends its token (~/.ray/auth_token or RAY_AUTH_TOKEN); Ray reads the mode when
# it is imported, so this module is imported before Ray.
os.environ.setdefault("RAY_AUTH_MODE", "token")
APP = "characterforge-replicas"  # backend/serving/ray_serve.py's application
_opened = {}  # this worker process's .blend: {"path": ...}


def _scene(blend):
    """The scene of `blend`, opened once in this worker, the add-on registered."""
    import bpy
    if _opened.get("path") != blend:
        bpy.ops.wm.open_mainfile(filepath=blend)
        _opened["path"] = blend
    from _bootstrap import register_addon
    register_addon()
    return bpy.context.scene


def unit(blend, camera, frame, seed, shot, generate, identity=None, finished=False, recorded=None,
         keep_changed=False, dry_run=False):
    """One unit, decided here: its control maps rendered and its fingerprint (core.fingerprint;
    `identity`: the profile's, from the replicas) compared with the one `recorded` in the
    manifest when it was `finished` before. Returns {"made": fingerprint, "what": outcome,
    "reasons": [...], "files": None for a unit kept as it is, else {file path relative to the
    unit's folder: bytes}: its control maps, and its generations when `generate`} (`shot`: the
    batch's [shot] settings)."""
    import bpy

    from batch_units import unit_spec
    from characterforge_addon.blender.maps import controls
    from characterforge_addon.core.batch import fingerprint
    scene = _scene(blend)
    scene.frame_set(frame)
    with tempfile.TemporaryDirectory(prefix="characterforge-unit-") as folder:
        maps = controls.render_controls(bpy.context, os.path.join(folder, "controls"), scene.objects[camera],
                                        preview=False)
        if generate:
            spec = unit_spec(SimpleNamespace(**shot), os.path.join(folder, "controls"), maps, seed)
            made = fingerprint.of_job(spec, identity)
        else:
            made = fingerprint.of_files(os.path.join(folder, "controls"), maps["files"])
        what, reasons = fingerprint.outcome(finished, recorded, made, keep_changed)
        answer = {"made": made, "what": what, "reasons": reasons, "files": None}
        if what in ("unchanged", "keep") or dry_run:
            return answer
        files = {}
        for name in maps["files"] + ["controls.json"]:
            path = os.path.join(folder, "controls", name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    files[f"controls/{name}"] = f.read()
        if generate:
            files.update({f"{name}.png": data for name, data in _generate(spec).items()})
    answer["files"] = files
    return answer


def segment(blend, camera, frames, seed, settings, piece, previous, identity):
    """{file path relative to the shot's root: bytes} of one segment of an animated shot (`piece`:
    core.animation_spec's segment): its frames' maps rendered here, the frames it carries over
    (`previous`: {frame: PNG bytes}, made by the segment before) given, the job run on a replica
    (its pictures sent along), the new frames placed as the shot keeps them. Returns {"files": ...,
    "made": the segment's fingerprint against the profile's `identity`}."""
    import bpy

    from characterforge_addon.blender.shots import animation
    from characterforge_addon.core.batch import batch_plan, fingerprint
    from characterforge_addon.core.image_io import write_atomic
    scene = _scene(blend)
    with tempfile.TemporaryDirectory(prefix="characterforge-segment-") as root:
        shot = animation.AnimatedShot(bpy.context, scene.objects[camera], frames, seed, root,
                                      batch_plan.Manifest(root, ".unused.json"), settings)
        os.makedirs(shot.sequence, exist_ok=True)
        for frame, data in previous.items():
            write_atomic(os.path.join(shot.sequence, f"frame_{frame:04d}.png"), data)
        spec, media = shot.job(piece)
        results = os.path.join(root, ".results")
        os.makedirs(results)
        for name, data in _generate(spec, media).items():
            with open(os.path.join(results, f"{name}.png"), "wb") as f:
                f.write(data)
        shot.keep(piece, {n[:-4]: os.path.join(results, n) for n in os.listdir(results)}, record=False)
        files = {}
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                relative = os.path.relpath(path, root)
                if not relative.startswith(".") and not relative.endswith(tuple(
                        f"frame_{f:04d}.png" for f in previous)):
                    with open(path, "rb") as f:
                        files[relative] = f.read()
    return {"files": files, "made": fingerprint.of_job(spec, identity)}


def _generate(spec, media=None):
    """The job on one of the Serve application's replicas (`media`: the pictures it names, sent
    along): {result name: bytes}."""
    from ray import serve
    handle = serve.get_app_handle(APP)
    results = {}
    job = {"id": uuid.uuid4().hex, "spec": spec, **({"pictures": media} if media else {})}
    for kind, *data in handle.options(stream=True).run.remote(job):
        if kind == "result":
            results[data[0]] = data[1]
        elif kind == "failed":
            raise RuntimeError(data[0].get("message", "the generation failed"))
        elif kind == "canceled":
            raise RuntimeError("the generation was canceled")
        elif kind == "done":
            return results
    raise RuntimeError("the replica's stream ended without an answer")


def _identity(profile):
    from ray import serve
    return serve.get_app_handle(APP).identity.remote(profile).result()


def identity(profile):
    """The profile's identity as the Serve application's replicas run it (asked from a task,
    inside the cluster, as the units ask for their generations)."""
    import ray

    from characterforge_addon.core.errors import UserError
    try:
        return ray.get(ray.remote(num_cpus=0)(_identity).remote(profile))
    except ray.exceptions.RayError as exc:
        raise UserError(f"cannot ask the Ray cluster's replicas for profile {profile!r}: "
                        f"{str(exc).strip().splitlines()[-1][:300]}") from None


def start(address, retries, function=None):
    """Join the cluster at `address` (this batch's tasks find the scripts and the add-on by
    path) and return the remote unit function (or `function`: `segment`)."""
    import ray
    ray.init(address=address, namespace="characterforge", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "blender_scripts")]),
                                       "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
                                       # the characters' packs, at a path every worker sees (as the .blend)
                                       **{k: os.environ[k] for k in ("CHARACTERFORGE_CHARACTERS",) if k in os.environ}}})
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    return ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=True)(function or unit)
