"""The Backend section: set up its environment in one step, start and stop it, and what the
doctor says about the models, each finding with its fix."""

import json
import os
import subprocess
import threading

import bpy
from bpy.props import StringProperty

from ..core import install_plan
from ..core.errors import UserError
from . import backend_process, backend_setup, preferences
from .panel import _Sidebar

_doctor = {"running": False, "report": None, "error": ""}


def env_dir():
    """Where the one-step set-up puts the backend's environment: the add-on's user folder."""
    return os.path.join(os.path.dirname(preferences.data_dir(preferences.get())), "backend-env")


def run_doctor(python, data, profile):
    """The backend's doctor in its own Python, on a worker thread; the panel shows the result."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    package = os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def work():
        env = dict(os.environ, PYTHONPATH=package_parent, HF_HUB_OFFLINE="1")
        try:
            run = subprocess.run([python, "-m", f"{package}.backend", "doctor", "--json", "--profile", profile,
                                  "--data", data], capture_output=True, text=True, env=env, timeout=300)
            if run.returncode not in (0, 3):  # 3: the doctor ran and found models missing
                raise UserError((run.stderr.strip().splitlines() or ["the doctor failed"])[-1])
            _doctor.update(report=json.loads(run.stdout), error="")
        except (OSError, ValueError, UserError, subprocess.TimeoutExpired) as exc:
            _doctor.update(report=None, error=f"the doctor could not run with {python}: {exc}")
        finally:
            _doctor["running"] = False

    _doctor["running"] = True
    thread = threading.Thread(target=work, name="characterforge-doctor", daemon=True)
    thread.start()
    return thread


def _redraw():
    for window in getattr(bpy.context.window_manager, "windows", []):
        for area in window.screen.areas:
            area.tag_redraw()


def _follow_doctor():
    _redraw()
    return 0.5 if _doctor["running"] else None


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
        backend_process.start(current["python"], prefs.port, preferences.data_dir(prefs), prefs.profile, prefs.memory)
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


class CHARACTERFORGE_OT_start_backend(bpy.types.Operator):
    """Start the bundled backend with the Python set in the preferences"""
    bl_idname = "characterforge.start_backend"
    bl_label = "Start Backend"

    def execute(self, context):
        prefs = preferences.get(context)
        try:
            backend_process.start(preferences.backend_python(prefs), prefs.port, preferences.data_dir(prefs),
                                  prefs.profile, prefs.memory)
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
        prefs = preferences.get(context)
        run_doctor(preferences.backend_python(prefs), preferences.data_dir(prefs), prefs.profile)
        if not bpy.app.timers.is_registered(_follow_doctor):
            bpy.app.timers.register(_follow_doctor, first_interval=0.5)
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


class CHARACTERFORGE_PT_backend(_Sidebar, bpy.types.Panel):
    bl_label = "Backend"
    bl_idname = "CHARACTERFORGE_PT_backend"
    bl_order = 0

    def draw(self, context):
        layout = self.layout
        prefs = preferences.get(context)
        running = backend_process.is_running()
        row = layout.row()
        row.label(text=f"{'Running' if running else 'Stopped'} · profile {prefs.profile} · port {prefs.port} · "
                       f"memory {prefs.memory}",
                  icon="CHECKMARK" if running else "PAUSE")
        if hasattr(prefs, "bl_rna"):
            layout.prop(prefs, "memory")  # applies when the backend starts
            layout.prop(prefs, "gpu")  # applies to the next set-up
        row = layout.row(align=True)
        row.operator("characterforge.start_backend", icon="PLAY")
        row.operator("characterforge.stop_backend", icon="QUIT", text="Stop (free GPU memory)")
        setup = backend_setup.state()
        if setup["status"] == "running":
            layout.progress(factor=setup["progress"], type="BAR", text=setup["message"])
        else:
            layout.operator("characterforge.setup_backend", icon="CONSOLE")
            if setup["message"]:
                layout.label(text=setup["message"], icon="ERROR" if setup["status"] == "failed" else "INFO")
        if setup["log"]:
            layout.label(text=f"Log: {setup['log']}", icon="TEXT")
        layout.operator("characterforge.check_models", icon="VIEWZOOM",
                        text="Checking models…" if _doctor["running"] else "Check Models")
        if _doctor["error"]:
            layout.label(text=_doctor["error"], icon="ERROR")
        report = _doctor["report"]
        if report:
            layout.label(text="Ready" if report["ready"] else "Missing models:", icon="CHECKMARK" if report["ready"]
                         else "ERROR")
            for role in report["roles"]:
                if role["status"] == "ok":
                    continue
                box = layout.box()
                box.label(text=f"{role['role']} ({'needed' if role['core'] else 'optional'}, {role.get('size', '')})",
                          icon="ERROR" if role["core"] else "INFO")
                box.label(text=f"Looked in {role.get('looked_in', '')}")
                row = box.row()
                row.label(text=role["fix"])
                row.operator("characterforge.copy_text", text="", icon="COPYDOWN").text = role["fix"]


classes = (CHARACTERFORGE_OT_setup_backend, CHARACTERFORGE_OT_start_backend, CHARACTERFORGE_OT_check_models,
           CHARACTERFORGE_OT_copy_text, CHARACTERFORGE_PT_backend)
_register, _unregister = bpy.utils.register_classes_factory(classes)
register = _register


def unregister():
    for timer in (_follow_setup, _follow_doctor):  # no timer may outlive the add-on
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    _unregister()
