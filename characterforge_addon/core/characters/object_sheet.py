"""The sheet of an object or creature: whole views orbiting it (front, 3/4, side, back, a top
view when its footprint is broad) in one or two rows, chosen so the views come out largest,
above a row of detail close-ups of one part. Each whole view fills its cell (at least MIN_FILL
of the cell's width or height, whichever binds): views share one scale when every view still
fills its cell with it, else each view is framed on its own. Sheet pixels, top-left origin.
"""

import math

from . import kinds
from .sheet_layout import MIN_CELL, MIN_FILL, SheetError, SheetLayout, SIZE_STEP, View, YAWS

ELEVATIONS = {"top": (0.0, 90.0), "bottom": (0.0, -90.0)}  # name: (yaw, elevation)
FILL = 0.92       # the share of its cell a view's binding side takes
DETAIL_ROW = 0.3  # the detail row's share of the sheet's height


def parse_views(text, field):
    """'front, side=90, top' -> [(name, yaw, elevation)]: a known name (YAWS, top, bottom) or
    name=degrees (level)."""
    views = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, _, yaw = item.partition("=")
        name = name.strip()
        if not name.replace("_", "").isalnum():
            raise SheetError(f"{field}: view name {name!r} may hold only letters, digits and '_'")
        if yaw:
            try:
                views.append((name, float(yaw), 0.0))
            except ValueError:
                raise SheetError(f"{field}: {item!r}: the angle after '=' must be a number of degrees") from None
        elif name in YAWS:
            views.append((name, YAWS[name], 0.0))
        elif name in ELEVATIONS:
            views.append((name, *ELEVATIONS[name]))
        else:
            raise SheetError(f"{field}: unknown view {name!r}: use one of {', '.join([*YAWS, *ELEVATIONS])} or "
                             "name=degrees")
    if len({n for n, _, _ in views}) != len(views):
        raise SheetError(f"{field}: a view name is used twice in {text!r}")
    return views


def default_views(footprint, height):
    """The whole views of an object `footprint` across and `height` tall: OBJECT_VIEWS, and a
    top view when its footprint is broad."""
    views = [(v, YAWS[v], 0.0) for v in kinds.OBJECT_VIEWS]
    if kinds.wants_top(footprint, height):
        views.append(("top", *ELEVATIONS["top"]))
    return views


def _grid(width, height, views, rows, kind, y0, y1, spacing, margin, prefix=""):
    """Cells for `views` in `rows` rows between y0 and y1."""
    per_row = math.ceil(len(views) / rows)
    row_h = (y1 - y0 - spacing * (rows - 1)) // rows
    cell_w = (width - 2 * margin - spacing * (per_row - 1)) // per_row
    if cell_w < MIN_CELL or row_h < MIN_CELL:
        raise SheetError(f"{len(views)} {kind} views leave cells of {cell_w}x{row_h} pixels (at least {MIN_CELL} "
                         "needed): use fewer views, a bigger sheet or less spacing")
    out = []
    for i, (name, yaw, elevation) in enumerate(views):
        r, c = divmod(i, per_row)
        in_row = min(per_row, len(views) - r * per_row)
        left = margin + (width - 2 * margin - in_row * cell_w - (in_row - 1) * spacing) // 2  # a short row centred
        x0, top = left + c * (cell_w + spacing), y0 + r * (row_h + spacing)
        out.append(View(prefix + name, kind, float(yaw), (x0, top, x0 + cell_w, top + row_h), float(elevation)))
    return out


def plan(width, height, views, details=(), spans=None, spacing=16, margin=16, detail_row=DETAIL_ROW, rows=None):
    """The sheet's cells: `views` [(name, yaw, elevation)] in one or two rows (`rows`, or the
    count at which the views come out largest for their `spans` [(width, height) in world
    units, one per view]; one row without spans), then `details` [(name, yaw, elevation)] in
    a row of `detail_row` of the height, named detail_<name>."""
    for side, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or value % SIZE_STEP or not 256 <= value <= 2048:
            raise SheetError(f"sheet {side} {value!r} must be a multiple of {SIZE_STEP} from 256 to 2048")
    if not views:
        raise SheetError("an object's sheet needs at least one whole view")
    if not 0 <= spacing <= 256 or not 0 <= margin <= 256:
        raise SheetError(f"spacing {spacing} and margin {margin} must be 0 to 256 pixels")
    if details and not 0.1 <= detail_row <= 0.6:
        raise SheetError(f"detail row share {detail_row} must be between 0.1 and 0.6 of the height")
    inner_h = height - 2 * margin - (spacing if details else 0)
    detail_h = int(round(inner_h * detail_row)) if details else 0
    bottom = margin + inner_h - detail_h

    def cells(n_rows):
        return _grid(width, height, views, n_rows, "body", margin, bottom, spacing, margin)

    if rows is None:
        rows = 1
        if spans is not None and len(views) > 1:
            def size(n_rows):  # the shared scale at which every view fits its cell
                try:
                    return min(min(FILL * (v.cell[2] - v.cell[0]) / max(w, 1e-9), FILL * (v.cell[3] - v.cell[1]) /
                                   max(h, 1e-9)) for v, (w, h) in zip(cells(n_rows), spans))
                except SheetError:
                    return 0.0
            rows = max((1, 2), key=size)
    out = cells(rows)
    if details:
        out += _grid(width, height, list(details), 1, "detail", height - margin - detail_h, height - margin, spacing,
                     margin, prefix="detail_")
    if len({v.name for v in out}) != len(out):
        raise SheetError("two views share a name")
    return SheetLayout(width, height, tuple(out))


def fill_of(box, cell):
    """The share of its cell a view's box takes along the side that binds (the larger share)."""
    return max((box[2] - box[0]) / (cell[2] - cell[0]), (box[3] - box[1]) / (cell[3] - cell[1]))


def scales(views, spans, fill=FILL, min_fill=MIN_FILL):
    """(pixels per world unit for each view, shared or not): one scale for every level view
    when each still fills `min_fill` of its cell with it (a turnaround at one size), else each
    view's own; views from above or below always their own."""
    own = [min(fill * v.size[0] / max(w, 1e-9), fill * v.size[1] / max(h, 1e-9)) for v, (w, h) in zip(views, spans)]
    level = [i for i, v in enumerate(views) if v.elevation == 0]
    if not level:
        return own, False
    shared = min(own[i] for i in level)
    fills = [max(shared * spans[i][0] / views[i].size[0], shared * spans[i][1] / views[i].size[1]) for i in level]
    if min(fills) < min_fill:
        return own, False
    return [shared if i in level else own[i] for i in range(len(views))], True


def fill_report(views):
    """(fill, advice): the smallest share of its cell (the binding side) a whole view's box
    takes, and what would help when that is under MIN_FILL ("" otherwise)."""
    shares = [fill_of(v["box"], v["cell"]) for v in views if v["kind"] == "body" and v.get("box")]
    if not shares:
        return None, ""
    fill = round(min(shares), 3)
    if fill >= MIN_FILL:
        return fill, ""
    return fill, (f"a view fills only {fill:.0%} of its cell: the object is thin or hollow from that side; use "
                  "fewer views or a sheet shaped more like the object")
