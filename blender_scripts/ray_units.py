"""A batch's units as Ray tasks (`batch.py --ray ADDRESS`): each task renders one unit's control
maps with the bpy module (the .blend opened once per worker process) and, when the batch
generates, sends the unit's job to the Serve application `serve-ray` deployed, streaming its
results back. The task returns the unit's files as bytes; batch.py writes them where the
manifest expects them, so resume, "every output exactly once" and the progress bar are the
same as on one machine. Ray retries a failed unit (`[batch] retries`)."""

import os
import sys
import tempfile
import uuid
from types import SimpleNamespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Joining a cluster sends its token (~/.ray/auth_token or RAY_AUTH_TOKEN); Ray reads the mode when
# it is imported, so this module is imported before Ray.
os.environ.setdefault("RAY_AUTH_MODE", "token")
APP = "characterforge-replicas"  # backend/ray_serve.py's application
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


def unit(blend, camera, frame, seed, shot, generate):
    """{file path relative to the unit's folder: bytes} of one unit: its control maps, and its
    generations when `generate` (`shot`: the batch's [shot] settings)."""
    import bpy

    from batch import unit_spec
    from characterforge_addon.blender import controls
    scene = _scene(blend)
    scene.frame_set(frame)
    with tempfile.TemporaryDirectory(prefix="characterforge-unit-") as folder:
        maps = controls.render_controls(bpy.context, os.path.join(folder, "controls"), scene.objects[camera],
                                        preview=False)
        files = {}
        for name in maps["files"] + ["controls.json"]:
            path = os.path.join(folder, "controls", name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    files[f"controls/{name}"] = f.read()
        if generate:
            spec = unit_spec(SimpleNamespace(**shot), os.path.join(folder, "controls"), maps, seed)
            files.update({f"{name}.png": data for name, data in _generate(spec).items()})
    return files


def segment(blend, camera, frames, seed, settings, piece, previous):
    """{file path relative to the shot's root: bytes} of one segment of an animated shot (`piece`:
    core.animation_spec's segment): its frames' maps rendered here, the frames it carries over
    (`previous`: {frame: PNG bytes}, made by the segment before) given, the job run on a replica
    (its pictures sent along), the new frames placed as the shot keeps them."""
    import bpy

    from characterforge_addon.blender import animation
    from characterforge_addon.core import batch_plan
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
    return files


def _generate(spec, media=None):
    """The job on one of the Serve application's replicas (`media`: the pictures it names, sent
    along): {result name: bytes}."""
    from ray import serve
    handle = serve.get_app_handle(APP)
    results = {}
    job = {"id": uuid.uuid4().hex, "spec": spec, **({"media": media} if media else {})}
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
