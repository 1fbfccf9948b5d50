"""Operators of the Backend section: set up its environment in one step, start and stop it, ask the
doctor about the models (in the backend's own Python, on a worker thread) and download them."""

import json
import os
import subprocess
import threading

import bpy
from bpy.props import BoolProperty, StringProperty

from ...core.errors import UserError
from ...core.setup import install_plan
from .. import preferences
from . import backend_process, backend_setup, model_download

doctor = {"running": False, "report": None, "error": ""}  # the doctor's last look, for the panel


def env_dir():
    """Where the one-step set-up puts the backend's environment: the add-on's user folder."""
    return os.path.join(os.path.dirname(preferences.data_dir(preferences.get())), "backend-env")


def run_doctor(python, data, profile):
    """The backend's doctor in its own Python, on a worker thread; the panel shows the result."""
    package_parent, package = os.path.split(backend_process.ADDON_DIR)

    def work():
        env = dict(os.environ, PYTHONPATH=package_parent, HF_HUB_OFFLINE="1")
        try:
            run = subprocess.run([python, "-m", f"{package}.backend", "doctor", "--json", "--profile", profile,
                                  "--data", data], capture_output=True, text=True, env=env, timeout=300)
            if run.returncode not in (0, 3):  # 3: the doctor ran and found models missing
                raise UserError((run.stderr.strip().splitlines() or ["the doctor failed"])[-1])
            doctor.update(report=json.loads(run.stdout), error="")
        except (OSError, ValueError, UserError, subprocess.TimeoutExpired) as exc:
            doctor.update(report=None, error=f"the doctor could not run with {python}: {exc}")
        finally:
            doctor["running"] = False

    doctor["running"] = True
    thread = threading.Thread(target=work, name="characterforge-doctor", daemon=True)
    thread.start()
    return thread


def _redraw():
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            area.tag_redraw()


def _follow_doctor():
    _redraw()
    return 0.5 if doctor["running"] else None


def _follow_setup():
    """Timer: redraw while the set-up runs; when it is done, point the preferences at the new
    environment and start the backend with it."""
    _redraw()
    current = backend_setup.state()
    if current["status"] == "running":
        return 0.5
    if current["status"] == "done":
        prefs = preferences.get()
        if hasattr(prefs, "bl_rna"):  # real preferences (saved with Blender's); headless defaults are not
            prefs.python = current["python"]
        backend_process.start(current["python"], prefs.port, preferences.data_dir(prefs), prefs.profile,
                              preferences.serve_options(prefs))
    return None


class CHARACTERFORGE_OT_setup_backend(bpy.types.Operator):
    """Create the backend's own Python environment in the add-on's user folder with the PyTorch
    build for this computer's GPU and the pinned packages (several GB from PyPI and PyTorch's
    index), then start it"""
    bl_idname = "characterforge.setup_backend"
    bl_label = "Set Up Backend"

    def execute(self, context):
        if not bpy.app.online_access:
            self.report({"ERROR"}, "Online access is off: allow it in Preferences > System > Network, then press "
                                   "Set Up Backend again (it downloads the backend's packages from PyPI)")
            return {"CANCELLED"}
        prefs = preferences.get(context)
        try:
            tgt, seen = backend_setup.choose_target(prefs.gpu)
            tools = os.path.join(os.path.dirname(env_dir()), "tools")
            uv = install_plan.uv_in(tools, tgt.system)
            backend_setup.start(env_dir(), tgt, uv=uv if os.path.isfile(uv) else None, tools_dir=tools)
        except UserError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Setting up the backend: {tgt.label} (found: {seen})")
        bpy.app.timers.register(_follow_setup, first_interval=0.5)
        return {"FINISHED"}


def picked_roles(wm):
    return [r for r in wm.characterforge_download_roles.split(",") if r]


def _status_bar(text):
    """Text in Blender's status bar (None clears it); headless sessions have none."""
    workspace = getattr(bpy.context, "workspace", None)
    if workspace is not None:
        workspace.status_text_set(text)


def _follow_download():
    """Timer: progress in the status bar while downloading; afterwards the doctor looks again."""
    _redraw()
    current = model_download.state()
    if current["status"] == "running":
        _status_bar(f"CharacterForge models: {current['message']}")
        return 0.5
    _status_bar(None)
    if current["status"] == "done":
        _check_models(preferences.get())
    return None


def _check_models(prefs):
    """The doctor on a worker thread, the panel redrawn until it answers."""
    run_doctor(preferences.backend_python(prefs), preferences.data_dir(prefs), prefs.profile)
    if not bpy.app.timers.is_registered(_follow_doctor):
        bpy.app.timers.register(_follow_doctor, first_interval=0.5)


class CHARACTERFORGE_OT_download_models(bpy.types.Operator):
    """Download the profile's needed models and the optional ones ticked, only the files the
    backend reads, into the Hugging Face cache (several GB; resumes where it stopped)"""
    bl_idname = "characterforge.download_models"
    bl_label = "Download Models"

    def execute(self, context):
        if not bpy.app.online_access:
            self.report({"ERROR"}, "Online access is off: allow it in Preferences > System > Network, then press "
                                   "Download Models again (it downloads from huggingface.co)")
            return {"CANCELLED"}
        prefs, wm = preferences.get(context), context.window_manager
        try:
            model_download.start(preferences.backend_python(prefs), preferences.data_dir(prefs), prefs.profile,
                                 picked_roles(wm), wm.characterforge_accept_non_commercial)
        except UserError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        bpy.app.timers.register(_follow_download, first_interval=0.5)
        return {"FINISHED"}


class CHARACTERFORGE_OT_cancel_download(bpy.types.Operator):
    """Stop the download; pressing Download Models again continues it"""
    bl_idname = "characterforge.cancel_download"
    bl_label = "Cancel Download"

    def execute(self, context):
        model_download.cancel()
        return {"FINISHED"}


class CHARACTERFORGE_OT_toggle_download_role(bpy.types.Operator):
    """Download this optional model too"""
    bl_idname = "characterforge.toggle_download_role"
    bl_label = "Download This Model Too"
    bl_options = {"INTERNAL"}

    role: StringProperty()

    def execute(self, context):
        wm = context.window_manager
        picked = picked_roles(wm)
        picked = [r for r in picked if r != self.role] if self.role in picked else picked + [self.role]
        wm.characterforge_download_roles = ",".join(picked)
        return {"FINISHED"}


class CHARACTERFORGE_OT_start_backend(bpy.types.Operator):
    """Start the bundled backend with the Python set in the preferences"""
    bl_idname = "characterforge.start_backend"
    bl_label = "Start Backend"

    def execute(self, context):
        prefs = preferences.get(context)
        try:
            backend_process.start(preferences.backend_python(prefs), prefs.port, preferences.data_dir(prefs),
                                  prefs.profile, preferences.serve_options(prefs))
        except Exception as exc:  # BackendError: the Python cannot be started
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        self.report({"INFO"}, f"Backend starting on port {prefs.port}")
        return {"FINISHED"}


class CHARACTERFORGE_OT_check_models(bpy.types.Operator):
    """Ask the backend's doctor which models are there, where it looked and how to get the rest"""
    bl_idname = "characterforge.check_models"
    bl_label = "Check Models"

    def execute(self, context):
        _check_models(preferences.get(context))
        return {"FINISHED"}


class CHARACTERFORGE_OT_copy_text(bpy.types.Operator):
    """Copy this command to the clipboard"""
    bl_idname = "characterforge.copy_text"
    bl_label = "Copy"
    bl_options = {"INTERNAL"}

    text: StringProperty()

    def execute(self, context):
        context.window_manager.clipboard = self.text
        self.report({"INFO"}, f"Copied: {self.text}")
        return {"FINISHED"}


class CHARACTERFORGE_OT_stop_backend(bpy.types.Operator):
    """Stop the bundled backend (frees its GPU memory)"""
    bl_idname = "characterforge.stop_backend"
    bl_label = "Stop Backend"

    def execute(self, context):
        self.report({"INFO"}, "Backend stopped" if backend_process.stop() else "The backend was not running")
        return {"FINISHED"}


classes = (CHARACTERFORGE_OT_setup_backend, CHARACTERFORGE_OT_start_backend, CHARACTERFORGE_OT_stop_backend,
           CHARACTERFORGE_OT_check_models, CHARACTERFORGE_OT_download_models, CHARACTERFORGE_OT_cancel_download,
           CHARACTERFORGE_OT_toggle_download_role, CHARACTERFORGE_OT_copy_text)
_register, _unregister = bpy.utils.register_classes_factory(classes)


def register():
    _register()
    # per machine, not per .blend: the window manager's properties are not saved with scenes
    bpy.types.WindowManager.characterforge_download_roles = StringProperty(default="")
    bpy.types.WindowManager.characterforge_accept_non_commercial = BoolProperty(
        name="I accept the non-commercial licence of the ticked models",
        description="FaceID and insightface's models are for non-commercial research use only")


def unregister():
    for timer in (_follow_setup, _follow_doctor, _follow_download):  # no timer may outlive the add-on
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    model_download.cancel()
    del bpy.types.WindowManager.characterforge_download_roles
    del bpy.types.WindowManager.characterforge_accept_non_commercial
    _unregister()
