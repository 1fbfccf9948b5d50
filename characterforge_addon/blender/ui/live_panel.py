"""Live mode in the sidebar's Shot section and in the 3D viewport's header: the Live toggle
(greyed, with the reason and what to install, on a profile that cannot draft), what it makes
and at what size, what it says (each picture's latency), Keep."""

import bpy

from ..generation import live, live_plane


def draw(layout, context):
    """The Shot section's Live box."""
    s = context.scene.characterforge
    box = layout.box()
    row = box.row(align=True)
    row.operator("characterforge.live", text="Live", icon="REC" if s.live else "PLAY", depress=s.live)
    row.prop(s, "live_job", text="")
    row.prop(s, "live_size", text="")
    ok, why = live.draft_ready(context)
    if not ok and not s.live:
        col = box.column(align=True)
        col.label(text="Live needs a profile with a draft setting:", icon="ERROR")
        for line in _wrapped(why, 60):
            col.label(text=line)
    if s.live_message:
        box.label(text=s.live_message, icon="ERROR" if s.live_failed else "TIME")
    if s.live and ok:
        box.label(text="Generate makes drafts while Live is on", icon="SHADERFX")
    if live_plane.live_plane(context.scene, s.shot or "Shot") is not None:
        box.operator("characterforge.live_keep", icon="PINNED")


def _wrapped(text, width):
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def header(self, context):
    """The Live toggle in the 3D viewport's header, wherever the sidebar is."""
    if not hasattr(context.scene, "characterforge"):
        return
    s = context.scene.characterforge
    self.layout.operator("characterforge.live", text="Live", icon="REC" if s.live else "PLAY", depress=s.live)


def register():
    bpy.types.VIEW3D_HT_header.append(header)


def unregister():
    bpy.types.VIEW3D_HT_header.remove(header)
