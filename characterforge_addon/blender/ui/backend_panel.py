"""The Backend section of the sidebar: running or stopped, set-up progress, and what the doctor says
about the models, each finding with its fix (its operators: blender/backend/operators.py)."""

import bpy

from .. import preferences
from ..backend import backend_process, backend_setup, model_download
from ..backend.operators import doctor, picked_roles
from .panel import _Sidebar


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
            layout.prop(prefs, "memory")  # these two apply when the backend starts
            layout.prop(prefs, "weights")
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
                        text="Checking models…" if doctor["running"] else "Check Models")
        if doctor["error"]:
            layout.label(text=doctor["error"], icon="ERROR")
        report = doctor["report"]
        if report:
            _draw_report(layout, context.window_manager, report)


def _draw_report(layout, wm, report):
    device = report.get("device", {})
    if device:
        layout.label(text=f"{device['device']}: {device['name']} · torch {device['torch_build']} · "
                          f"{device['dtype']} · {device['free_gb']} of {device['total_gb']} GB free",
                     icon="MEMORY")
        for finding in device.get("findings", []):
            box = layout.box()
            box.label(text=finding["message"], icon="ERROR" if finding["level"] == "MISSING" else "INFO")
            if finding["fix"]:
                box.label(text=f"Fix: {finding['fix']}")
    if report.get("cards"):
        fp8 = report["cards"]["fp8"]
        layout.label(text=f"{report['family']}: " + ", ".join(
            f"{card} {mode.replace('_', ' ')}" + (f" (fp8: {fp8[card].replace('_', ' ')})" if fp8[card] != mode else "")
            for card, mode in report["cards"]["native"].items()))
    layout.label(text="Ready" if report["ready"] else "Missing models:", icon="CHECKMARK" if report["ready"]
                 else "ERROR")
    picked = picked_roles(wm)
    for role in report["roles"]:
        if role["status"] == "present":
            continue
        box = layout.box()
        row = box.row()
        if not role["core"] and role.get("source") == "repo":
            row.operator("characterforge.toggle_download_role", text="", emboss=False,
                         icon="CHECKBOX_HLT" if role["role"] in picked else "CHECKBOX_DEHLT").role = role["role"]
        row.label(text=f"{role['role']} ({'needed' if role['core'] else 'optional: ' + role.get('needed_for', '')}, "
                       f"{role.get('size') or '?'}, {role.get('licence') or 'licence not given'})",
                  icon="ERROR" if role["core"] else "INFO")
        box.label(text=f"Looked in {role.get('looked_in', '')}")
        row = box.row()
        row.label(text=role["fix"])
        row.operator("characterforge.copy_text", text="", icon="COPYDOWN").text = role["fix"]
    if any("non-commercial" in (r.get("licence") or "").lower() for r in report["roles"] if r["role"] in picked):
        layout.prop(wm, "characterforge_accept_non_commercial")
    download = model_download.state()
    if download["status"] == "running":
        row = layout.row()
        row.progress(factor=download["progress"], type="BAR", text=download["message"])
        row.operator("characterforge.cancel_download", text="", icon="CANCEL")
    elif not report["ready"] or picked:
        layout.operator("characterforge.download_models", icon="IMPORT")
    if download["status"] in ("failed", "canceled", "done"):
        layout.label(text=download["message"], icon="ERROR" if download["status"] == "failed" else "INFO")


classes = (CHARACTERFORGE_PT_backend,)
register, unregister = bpy.utils.register_classes_factory(classes)
