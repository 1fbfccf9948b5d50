"""The sidebar's sections drawn from their own layout code, for the guide (`make docs`).

Headless Blender has no window, so it cannot screenshot its UI. Each panel's `draw()` runs
here against `Recorder`, a stand-in for Blender's `UILayout` (as tests/blender/test_panels.py
does): every `row`, `column`, `box`, `label`, `prop`, `operator`, `menu`, `prop_search`,
`template_list` and `progress` call is kept as a tree, with the property's own name, type and
current value read from Blender's RNA and the operator's own label. `draw()` then lays the
tree out the way Blender does in the broad strokes (rows split their width evenly, columns
stack, boxes inset, aligned rows touch) and paints it in the default dark theme's colours with
Pillow. What it leaves out: icons (Blender's icon sheet is not reachable headless), and
Blender's exact text measuring and widths; the words, the order and the grouping are the
panel's own.
"""

import types

from PIL import Image, ImageDraw

import docs_drawing as d

UNIT = 20       # Blender's UI unit at scale 1: one line
NARROW = 24     # an icon-only button's width in a row
GAP = 2         # between the items of a column
THEME = {
    "region": (48, 48, 48), "header": (61, 61, 61), "panel": (54, 54, 54), "box": (46, 46, 46),
    "button": (84, 84, 84), "field": (29, 29, 29), "menu": (40, 40, 40), "selected": (71, 114, 179),
    "checkbox": (84, 84, 84), "text": (230, 230, 230), "dim": (140, 140, 140), "label": (210, 210, 210),
    "list": (33, 33, 33), "progress": (71, 114, 179),
}


# An icon-only button shows its icon's meaning as one character (Blender's icon sheet is not at hand)
GLYPHS = {"X": "×", "CANCEL": "×", "ADD": "+", "REMOVE": "−", "FILE_REFRESH": "⟳", "IMPORT": "↓", "EXPORT": "↑",
          "GREASEPENCIL": "✎", "COPYDOWN": "❐", "HIDE_ON": "○"}
# ... and a button with words and a state icon, that state before its words
STATES = {"HIDE_OFF": "● ", "HIDE_ON": "○ "}


class Node:
    def __init__(self, kind, **kw):
        self.kind, self.children = kind, []
        self.__dict__.update(kw)


class Recorder:
    """Stands in for bpy.types.UILayout while a panel draws; keeps what it is asked for."""

    def __init__(self, bpy, node, context):
        object.__setattr__(self, "_bpy", bpy)
        object.__setattr__(self, "_node", node)
        object.__setattr__(self, "_context", context)

    def __setattr__(self, name, value):  # enabled, active, alert, scale_y, ...: kept on the node
        setattr(self._node, name, value)

    def _child(self, kind, **kw):
        node = Node(kind, enabled=getattr(self._node, "enabled", True), **kw)
        self._node.children.append(node)
        return node

    def row(self, align=False, heading="", **kw):
        return Recorder(self._bpy, self._child("row", align=align), self._context)

    def column(self, align=False, heading="", **kw):
        return Recorder(self._bpy, self._child("column", align=align), self._context)

    def box(self):
        return Recorder(self._bpy, self._child("box", align=False), self._context)

    def split(self, factor=0.0, align=False):
        return Recorder(self._bpy, self._child("row", align=align), self._context)

    def separator(self, factor=1.0, **kw):
        self._child("separator")

    def label(self, text="", icon="NONE", icon_value=0, **kw):
        self._child("label", text=text, narrow=not text)

    def progress(self, factor=0.0, type="BAR", text=""):
        self._child("progress", text=text, factor=factor)

    def template_icon(self, icon_value=0, scale=1.0):
        self._child("preview", scale=scale)

    def menu(self, menu, text="", icon="NONE", **kw):
        self._child("menu", text=text or getattr(self._bpy.types, menu).bl_label)

    def operator(self, idname, text=None, depress=False, emboss=True, icon="NONE", **kw):
        module, name = idname.split(".")
        label = getattr(getattr(self._bpy.ops, module), name).get_rna_type().name
        label = label if text is None else text
        if icon in ("CHECKBOX_HLT", "CHECKBOX_DEHLT"):  # a toggle drawn as a check box
            self._child("checkbox", text=label, value=icon == "CHECKBOX_HLT", narrow=not label)
        else:
            text = STATES.get(icon, "") + label if label else GLYPHS.get(icon, "·")
            self._child("button", text=text, pressed=depress, emboss=emboss, narrow=not label)
        return types.SimpleNamespace()

    def prop(self, data, name, text=None, expand=False, toggle=-1, slider=False, emboss=True, icon_only=False,
             **kw):
        rna = data.bl_rna.properties[name]
        label = rna.name if text is None else text
        value = getattr(data, name)
        if rna.type == "BOOLEAN":
            if toggle is True or toggle == 1:
                self._child("button", text=label, pressed=value, emboss=True, narrow=False)
            else:
                self._child("checkbox", text=label, value=value, narrow=not label)
        elif rna.type == "ENUM":
            items = [(i.identifier, i.name) for i in rna.enum_items]
            if expand:
                self._child("segments", items=[n for _, n in items],
                            chosen=[n for i, n in items if i == value or (isinstance(value, set) and i in value)])
            else:
                shown = next((n for i, n in items if i == value), str(value))
                self._child("dropdown", label=label, text=shown)
        elif rna.type in ("INT", "FLOAT"):
            self._child("number", label=label, text=_number(rna, value), slider=slider)
        elif rna.type == "STRING":
            self._child("text", label=label, text=value, path=rna.subtype in ("FILE_PATH", "DIR_PATH"))
        elif rna.type == "POINTER":
            self._child("text", label=label, text=getattr(value, "name", "") if value else "", path=False)
        else:
            self._child("label", text=label)

    def prop_search(self, data, name, search_data, search_name, text=None, **kw):
        rna = data.bl_rna.properties[name]
        self._child("text", label=rna.name if text is None else text, text=getattr(data, name), path=False)

    def template_list(self, listtype, list_id, data, propname, active_data, active_propname, rows=5, **kw):
        node = self._child("list", rows=rows, active=getattr(active_data, active_propname))
        cls = getattr(self._bpy.types, listtype)
        for index, item in enumerate(getattr(data, propname)):
            entry = Node("row", align=True, enabled=True)
            node.children.append(entry)
            cls.draw_item(None, self._context, Recorder(self._bpy, entry, self._context), data, item, 0, active_data,
                          active_propname, index)


def _number(rna, value):
    if rna.type == "INT":
        return str(value)
    text = f"{value:.{min(rna.precision, 3)}f}"
    return text + (" m" if rna.subtype == "DISTANCE" else "")


def record(bpy, context, panel_class):
    """The tree `panel_class.draw` asks for in `context`."""
    root = Node("column", align=False, enabled=True)
    panel_class.draw(types.SimpleNamespace(layout=Recorder(bpy, root, context)), context)
    return root


# ---- layout and painting ---------------------------------------------------------------------------------------

def _height(node):
    kind = node.kind
    if kind == "separator":
        return UNIT // 2
    if kind == "row":
        return max([_height(c) for c in node.children] or [0])
    if kind == "column":
        items = [c for c in node.children]
        gap = 0 if node.align else GAP
        return sum(_height(c) for c in items) + gap * max(0, len(items) - 1)
    if kind == "box":
        inner = Node("column", align=False, children=node.children)
        inner.children = node.children
        return _height(inner) + 12
    if kind == "list":
        return max(node.rows, len(node.children)) * UNIT + 6
    if kind == "preview":
        return int(UNIT * node.scale)
    return UNIT


def _narrow(node):
    """An icon-only button, or a column of them (the buttons beside a list): a fixed small width."""
    if node.kind == "column":
        return bool(node.children) and all(_narrow(c) for c in node.children)
    return getattr(node, "narrow", False)


class Painter:
    def __init__(self, width, height):
        self.img = Image.new("RGB", (width, height), THEME["panel"])
        self.draw = ImageDraw.Draw(self.img)
        self.face = d.font(11)

    def text(self, x, y, w, text, colour, centre=False):
        """`text` in the box x..x+w at line y, clipped with an ellipsis as Blender does."""
        text = str(text)
        if d.text_width(text, self.face) > w - 8:
            while text and d.text_width(text + "…", self.face) > w - 8:
                text = text[:-1]
            text += "…"
        if centre:
            self.draw.text((x + w / 2, y + UNIT / 2), text, fill=colour, font=self.face, anchor="mm")
        else:
            self.draw.text((x + 4, y + UNIT / 2), text, fill=colour, font=self.face, anchor="lm")

    def widget(self, x, y, w, fill, radius=4):
        self.draw.rounded_rectangle((x + 1, y + 1, x + w - 1, y + UNIT - 2), radius=radius, fill=fill)

    def paint(self, node, x, y, w):
        kind = node.kind
        colour = THEME["text"] if getattr(node, "enabled", True) else THEME["dim"]
        if kind == "column":
            gap = 0 if node.align else GAP
            for child in node.children:
                self.paint(child, x, y, w)
                y += _height(child) + gap
        elif kind == "row":
            items = node.children
            if not items:
                return
            gap = 0 if node.align else 4
            narrow = [_narrow(c) for c in items]
            free = w - gap * (len(items) - 1) - NARROW * sum(narrow)
            each = free / max(1, len(items) - sum(narrow))
            for child, small in zip(items, narrow):
                width = NARROW if small else each
                self.paint(child, x, y, width)
                x += width + gap
        elif kind == "box":
            h = _height(node)
            self.draw.rounded_rectangle((x, y, x + w - 1, y + h - 2), radius=5, fill=THEME["box"],
                                        outline=(70, 70, 70))
            inner = Node("column", align=False)
            inner.children = node.children
            self.paint(inner, x + 6, y + 6, w - 12)
        elif kind == "label":
            self.text(x, y, w, node.text, THEME["label"] if colour == THEME["text"] else colour)
        elif kind == "button":
            if node.emboss or node.pressed:
                self.widget(x, y, w, THEME["selected"] if node.pressed else THEME["button"])
            self.text(x, y, w, node.text, colour, centre=node.emboss)
        elif kind == "checkbox":
            self.draw.rounded_rectangle((x + 4, y + 4, x + 15, y + 15), radius=3,
                                        fill=THEME["selected"] if node.value else THEME["checkbox"])
            if node.value:
                self.draw.line((x + 6, y + 10, x + 9, y + 13, x + 14, y + 6), fill=(255, 255, 255), width=2)
            self.text(x + 16, y, w - 16, node.text, colour)
        elif kind == "segments":
            each = w / len(node.items)
            for i, name in enumerate(node.items):
                chosen = name in node.chosen
                self.draw.rectangle((x + i * each + 1, y + 1, x + (i + 1) * each - 1, y + UNIT - 2),
                                    fill=THEME["selected"] if chosen else THEME["button"])
                self.text(x + i * each, y, each, name, colour, centre=True)
        elif kind == "dropdown":
            split = w * 0.4 if node.label else 0
            if node.label:
                self.text(x, y, split, f"{node.label}:", colour)
            self.widget(x + split, y, w - split, THEME["menu"])
            self.text(x + split, y, w - split - 12, node.text, colour)
            ax, ay = x + w - 12, y + UNIT / 2
            self.draw.polygon([(ax - 4, ay - 2), (ax + 4, ay - 2), (ax, ay + 3)], fill=colour)
        elif kind == "menu":
            self.widget(x, y, w, THEME["menu"])
            self.text(x, y, w - 12, node.text, colour)
            ax, ay = x + w - 12, y + UNIT / 2
            self.draw.polygon([(ax - 4, ay - 2), (ax + 4, ay - 2), (ax, ay + 3)], fill=colour)
        elif kind == "number":
            self.widget(x, y, w, THEME["button"], radius=8)
            label = f"{node.label}: {node.text}" if node.label else node.text
            self.text(x, y, w, label, colour, centre=True)
        elif kind == "text":
            split = w * 0.4 if node.label else 0
            if node.label:
                self.text(x, y, split, f"{node.label}:", colour)
            self.widget(x + split, y, w - split, THEME["field"])
            self.text(x + split, y, w - split, node.text, colour)
        elif kind == "progress":
            self.widget(x, y, w, THEME["field"])
            self.draw.rounded_rectangle((x + 1, y + 1, x + 1 + (w - 2) * node.factor, y + UNIT - 2), radius=4,
                                        fill=THEME["progress"])
            self.text(x, y, w, node.text, colour, centre=True)
        elif kind == "list":
            h = _height(node)
            self.draw.rectangle((x + 1, y + 1, x + w - 1, y + h - 4), fill=THEME["list"])
            for i, child in enumerate(node.children):
                if i == node.active:
                    self.draw.rectangle((x + 2, y + 3 + i * UNIT, x + w - 2, y + 2 + (i + 1) * UNIT),
                                        fill=(60, 80, 110))
                self.paint(child, x + 3, y + 3 + i * UNIT, w - 6)
        elif kind == "preview":
            side = _height(node)
            self.draw.rectangle((x + 4, y, x + 4 + side, y + side - 1), outline=THEME["dim"])


def draw(tree, title, width=340, subpanels=()):
    """The panel `tree` (from `record`) as a Pillow image `width` wide, under its header
    `title`; `subpanels`: (title, tree) pairs drawn inside it, below, as Blender nests them."""
    header = UNIT + 6
    parts = [(title, tree)] + list(subpanels)
    heights = [_height(t) + 10 for _, t in parts]
    height = sum(heights) + header * len(parts) + 4 * (len(parts) - 1) + 4
    painter = Painter(width, height)
    painter.draw.rectangle((0, 0, width, height), fill=THEME["region"])
    y = 0
    for i, ((name, part), h) in enumerate(zip(parts, heights)):
        inset = 0 if i == 0 else 6
        painter.draw.rectangle((inset, y, width - 1 - inset, y + header - 1), fill=THEME["header"])
        ax, ay = inset + 12, y + header / 2
        painter.draw.polygon([(ax - 4, ay - 2), (ax + 4, ay - 2), (ax, ay + 3)], fill=THEME["text"])
        painter.draw.text((inset + 22, y + header / 2), name, fill=THEME["text"], font=d.font(12, True), anchor="lm")
        y += header
        painter.draw.rectangle((inset, y, width - 1 - inset, y + h - 1), fill=THEME["panel"])
        painter.paint(part, inset + 8, y + 5, width - 2 * inset - 16)
        y += h + 4
    return painter.img
