"""Character sheet geometry: which views, where each sits in the sheet, how each camera frames
the character, and each view's box from its projected keypoints.

A sheet is one image with a row of full-body views (the character seen from several yaw
angles) above a row of face close-ups. Everything here is in sheet pixels, top-left origin.
"""

from dataclasses import dataclass

import numpy as np

from ..errors import UserError

# Named yaw angles, degrees: the camera orbits the character; 90 looks at its left side (+X).
YAWS = {"front": 0.0, "three_quarter": 45.0, "side": 90.0, "three_quarter_back": 135.0, "back": 180.0,
        "three_quarter_right": -45.0, "side_right": -90.0}
BODY_VIEWS = ("front", "three_quarter", "side", "three_quarter_back", "back")
FACE_VIEWS = ("front", "three_quarter", "side", "three_quarter_right")
SIZE_STEP = 64  # SDXL works best at multiples of 64
MIN_CELL = 48
# The pose the sheet's copy of the rig takes (the user's rig is never re-posed); None: as it is
SHEET_POSES = {"relaxed": "STANDING", "a_pose": "A_POSE", "t_pose": "T_POSE", "current": None}
MIN_FILL = 0.8  # a body box under this share of its cell's height wastes the sheet's pixels
BODY_FILL = 0.92   # share of a body cell the character's full extent takes
FACE_EXTENT = 3.6  # head close-up: frame this many face-keypoint radii (hair and chin included)
FACE_LIFT = 0.3    # ... centred this many radii above the face keypoints' centre (the skull is above)


class SheetError(UserError):
    pass


@dataclass(frozen=True)
class View:
    name: str
    kind: str     # "body", "face" or "detail" (an object's or creature's close-up)
    yaw: float    # degrees
    cell: tuple   # (x0, y0, x1, y1) in sheet pixels, x1/y1 exclusive
    elevation: float = 0.0  # degrees above the character's horizon (90: a top view)

    @property
    def size(self):
        return self.cell[2] - self.cell[0], self.cell[3] - self.cell[1]


@dataclass(frozen=True)
class SheetLayout:
    width: int
    height: int
    views: tuple

    def view(self, name):
        return next(v for v in self.views if v.name == name)


def parse_views(text, field):
    """'front, side=90, back' -> [(name, yaw)]: a known name, or name=degrees."""
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
                angle = float(yaw)
            except ValueError:
                raise SheetError(f"{field}: {item!r}: the angle after '=' must be a number of degrees") from None
        elif name in YAWS:
            angle = YAWS[name]
        else:
            raise SheetError(f"{field}: unknown view {name!r}: use one of {', '.join(YAWS)} or name=degrees")
        views.append((name, angle))
    if len({n for n, _ in views}) != len(views):
        raise SheetError(f"{field}: a view name is used twice in {text!r}")
    return views


def plan_sheet(width=1536, height=1024, body_views=BODY_VIEWS, face_views=FACE_VIEWS, spacing=16, margin=16,
               face_row=0.34):
    """The sheet's cells. `body_views`/`face_views`: names from YAWS or (name, yaw) pairs;
    `face_row`: the face row's share of the height (0 when there are no face views)."""
    for side, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or value % SIZE_STEP or not 256 <= value <= 2048:
            raise SheetError(f"sheet {side} {value!r} must be a multiple of {SIZE_STEP} from 256 to 2048")
    body = [(v, YAWS[v]) if isinstance(v, str) else tuple(v) for v in body_views]
    faces = [(v, YAWS[v]) if isinstance(v, str) else tuple(v) for v in face_views]
    if not body and not faces:
        raise SheetError("a sheet needs at least one view")
    if not 0 <= spacing <= 256 or not 0 <= margin <= 256:
        raise SheetError(f"spacing {spacing} and margin {margin} must be 0 to 256 pixels")
    share = face_row if body and faces else (1.0 if faces else 0.0)
    if faces and body and not 0.1 <= share <= 0.7:
        raise SheetError(f"face row share {face_row} must be between 0.1 and 0.7 of the height")
    inner_h = height - 2 * margin - (spacing if body and faces else 0)
    face_h = int(round(inner_h * share))
    rows = []
    if body:
        rows.append(("body", body, margin, margin + inner_h - face_h))
    if faces:
        top = height - margin - face_h
        rows.append(("face", faces, top, height - margin))
    views = []
    for kind, items, y0, y1 in rows:
        n = len(items)
        cell_w = (width - 2 * margin - spacing * (n - 1)) // n
        if cell_w < MIN_CELL or y1 - y0 < MIN_CELL:
            raise SheetError(f"{n} {kind} views leave cells of {cell_w}x{y1 - y0} pixels (at least {MIN_CELL} "
                             "needed): use fewer views, a bigger sheet or less spacing")
        for i, (name, yaw) in enumerate(items):
            x0 = margin + i * (cell_w + spacing)
            full = name if kind == "body" else f"face_{name}"
            views.append(View(full, kind, float(yaw), (x0, y0, x0 + cell_w, y1)))
    if len({v.name for v in views}) != len(views):
        raise SheetError("two views share a name")
    return SheetLayout(width, height, tuple(views))


def ortho_scale(extent_w, extent_h, cell_w, cell_h, fill=0.9):
    """Blender's ortho_scale (it spans the larger image side) that fits a box of
    extent_w x extent_h world units into a cell, leaving `1 - fill` of the cell free."""
    if cell_w >= cell_h:
        return max(extent_w, extent_h * cell_w / cell_h) / fill
    return max(extent_h, extent_w * cell_h / cell_w) / fill


def body_scale(spans, cells, fill):
    """The one scale (pixels per world unit) for every body view: the largest at which each
    view's span (width, height in world units) fits `fill` of its cell (width, height in
    pixels). Returns (scale, "height" or "width": which limit set it)."""
    by_height = min(fill * h / max(sh, 1e-6) for (_, sh), (_, h) in zip(spans, cells))
    by_width = min(fill * w / max(sw, 1e-6) for (sw, _), (w, _) in zip(spans, cells))
    return (by_height, "height") if by_height <= by_width else (by_width, "width")


def fill_report(views, limited_by, pose):
    """(fill, advice): the smallest share of its cell's height a body view's box takes, and what
    would help when that is under MIN_FILL ("" otherwise)."""
    shares = [(v["box"][3] - v["box"][1]) / (v["cell"][3] - v["cell"][1])
              for v in views if v["kind"] == "body" and v.get("box")]
    if not shares:
        return None, ""
    fill = round(min(shares), 3)
    if fill >= MIN_FILL or limited_by != "width":
        return fill, ""
    poses = " or the relaxed sheet pose" if pose != "relaxed" else ""
    return fill, (f"the figures fill {fill:.0%} of their cells' height: the pose is wider than the cells allow; "
                  f"use fewer body views, a wider sheet{poses}")


def view_box(cell, points=None, mask=None, pad=0.04):
    """A view's box: the union of its visible keypoints (N x 2, sheet pixels) and its mask's
    bounding box (mask: a cell-sized boolean array), padded by `pad` of the box's larger side,
    clipped to the cell. None when the view shows nothing."""
    x0, y0, x1, y1 = cell
    boxes = []
    if points is not None and len(points):
        pts = np.asarray(points, dtype=float)
        boxes.append((pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max() + 1, pts[:, 1].max() + 1))
    if mask is not None and mask.any():
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        boxes.append((x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1))
    if not boxes:
        return None
    bx0, by0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    bx1, by1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
    p = pad * max(bx1 - bx0, by1 - by0)
    return (int(max(x0, np.floor(bx0 - p))), int(max(y0, np.floor(by0 - p))),
            int(min(x1, np.ceil(bx1 + p))), int(min(y1, np.ceil(by1 + p))))


def face_box(cell, face_points, grow=1.6):
    """A square box around a view's visible face keypoints, grown to take in hair and chin,
    clipped to the cell; None with fewer than 5 visible points."""
    pts = np.asarray(face_points, dtype=float)
    if len(pts) < 5:
        return None
    cx, cy = (pts[:, 0].min() + pts[:, 0].max()) / 2, (pts[:, 1].min() + pts[:, 1].max()) / 2
    half = max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 8.0) * grow / 2
    x0, y0, x1, y1 = cell
    return (int(max(x0, np.floor(cx - half))), int(max(y0, np.floor(cy - half))),
            int(min(x1, np.ceil(cx + half))), int(min(y1, np.ceil(cy + half))))


def inside(box, points):
    """Which of the points (N x 2) lie inside box (x0, y0, x1, y1)."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    return (pts[:, 0] >= box[0]) & (pts[:, 0] < box[2]) & (pts[:, 1] >= box[1]) & (pts[:, 1] < box[3])


def scale_box(box, factor):
    return tuple(int(round(v * factor)) for v in box)


# ---------------------------------------------------------------------------------------------
# The views' cameras: orthographic, orbiting the character about its own up axis

@dataclass(frozen=True)
class ViewCamera:
    """Where one view's orthographic camera stands: `matrix` (4x4, camera to world; the camera
    looks down its -Z axis, its +Y is the character's up), `ortho_scale` (Blender's: the world
    width of the cell's larger side), `target` (the world point at the cell's centre) and
    `clip` (start, end)."""
    name: str
    matrix: np.ndarray
    ortho_scale: float
    target: tuple
    clip: tuple

    def record(self):
        """The camera as sheet.json keeps it."""
        return {"matrix": [round(float(v), 7) for v in np.asarray(self.matrix).ravel()],
                "ortho_scale": round(float(self.ortho_scale), 7),
                "target": [round(float(v), 7) for v in self.target], "clip": [float(c) for c in self.clip]}

    @classmethod
    def from_record(cls, name, record, moved=None):
        """A camera sheet.json kept; `moved` (4x4): how the character moved since (now @ then^-1)."""
        matrix = np.asarray(record["matrix"], dtype=float).reshape(4, 4)
        target = np.asarray(record["target"], dtype=float)
        if moved is not None:
            matrix = moved @ matrix
            target = moved[:3, :3] @ target + moved[:3, 3]
        return cls(name, matrix, float(record["ortho_scale"]), tuple(target), tuple(record["clip"]))


def orbit(up, front, yaw):
    """The direction from the character towards a camera at `yaw` degrees (counter-clockwise
    seen from above, so 90 looks at the character's left side)."""
    a = np.radians(yaw)
    side = np.cross(up, front)  # front x up would point right; up x front points left (+X)
    return np.asarray(front) * np.cos(a) + side * np.sin(a)


def image_right(up, direction):
    """The image's right for a camera looking along -direction with `up` upright."""
    right = np.cross(-np.asarray(direction), up)
    return right / np.linalg.norm(right)


def look_from(target, direction, up, distance):
    """4x4 camera-to-world matrix of a camera `distance` from `target` along `direction`,
    looking back at it with the image upright along `up`."""
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    right = image_right(up, direction)
    true_up = np.cross(right, -direction)
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2] = right, true_up / np.linalg.norm(true_up), direction
    matrix[:3, 3] = np.asarray(target, float) + direction * distance
    return matrix


def frame_views(points, up, front, views, face_points=None, fill=BODY_FILL):
    """Every view's camera for a character spanned by world `points` (N x 3) with its own `up`
    and `front` unit vectors: body views share one scale (the largest at which each view's own
    silhouette fits `fill` of its cell), each centred on itself; face views frame
    `face_points` (the face keypoints, or the head joints). Returns ({name: ViewCamera},
    "height" or "width": what limited the body scale, or "" without body views)."""
    points = np.asarray(points, float).reshape(-1, 3)
    up, front = np.asarray(up, float), np.asarray(front, float)
    along = points @ up
    bottom, top = float(along.min()), float(along.max())
    height = top - bottom
    center = points.mean(axis=0)
    base = points - np.outer(along, up)
    radius = float(np.linalg.norm(base - base.mean(axis=0), axis=1).max())
    distance = 3.0 * max(height, 2 * radius, 0.1)
    clip = (0.01 * distance, 4.0 * distance)
    bodies = [v for v in views if v.kind == "body"]
    across = {}
    for v in bodies:
        x = points @ image_right(up, orbit(up, front, v.yaw))
        across[v.name] = (float(x.min()), float(x.max()))
    scale, limited_by = body_scale([(hi - lo, height) for lo, hi in across.values()], [v.size for v in bodies],
                                   fill) if bodies else (1.0, "")
    faces = [v for v in views if v.kind != "body"]
    if faces:
        if face_points is None or len(face_points) < 2:
            raise SheetError("face views need the face keypoints or head joints to frame: map the head's bones "
                             "or use body views only")
        face_points = np.asarray(face_points, float).reshape(-1, 3)
        face_center = face_points.mean(axis=0)
        r = float(np.linalg.norm(face_points - face_center, axis=1).max())
    cameras = {}
    for view in views:
        w, h = view.size
        direction = orbit(up, front, view.yaw)
        if view.kind == "body":
            lo, hi = across[view.name]
            scale_here = max(w, h) / scale
            right = image_right(up, direction)
            target = center + right * ((lo + hi) / 2 - center @ right) + up * ((bottom + top) / 2 - center @ up)
        else:
            scale_here = ortho_scale(FACE_EXTENT * r, FACE_EXTENT * r, w, h, 1.0)
            target = face_center + up * FACE_LIFT * r
        cameras[view.name] = ViewCamera(view.name, look_from(target, direction, up, distance), float(scale_here),
                                        tuple(float(t) for t in target), clip)
    return cameras, limited_by
