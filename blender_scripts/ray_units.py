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


def unit(blend, camera, frame, seed, shot, generate):
    """{file path relative to the unit's folder: bytes} of one unit: its control maps, and its
    generations when `generate` (`shot`: the batch's [shot] settings)."""
    import bpy

    from batch_units import unit_spec
    from characterforge_addon.blender.maps import controls
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


def _generate(spec):
    """The job on one of the Serve application's replicas: {result name: bytes}."""
    from ray import serve
    handle = serve.get_app_handle(APP)
    results = {}
    for kind, *data in handle.options(stream=True).run.remote({"id": uuid.uuid4().hex, "spec": spec}):
        if kind == "result":
            results[data[0]] = data[1]
        elif kind == "failed":
            raise RuntimeError(data[0].get("message", "the generation failed"))
        elif kind == "canceled":
            raise RuntimeError("the generation was canceled")
        elif kind == "done":
            return results
    raise RuntimeError("the replica's stream ended without an answer")


def start(address, retries):
    """Join the cluster at `address` (this batch's tasks find the scripts and the add-on by
    path) and return the remote unit function."""
    import ray
    ray.init(address=address, namespace="characterforge", log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "blender_scripts")]),
                                       "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}})
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    return ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=True)(unit)
