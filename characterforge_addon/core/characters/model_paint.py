"""Painting a character's model from its sheet, without Blender: the rule that blends the
sheet's views into one texture, the holes no view reached, the cameras that fill them, and
the texture's gutters.

Blender bakes each texel's world position and normal on the model posed as the sheet shows
it; every view is a *projection*: its orthographic camera (known from sheet.json), its part of
the sheet picture, and the model's depth seen from that camera. A texel takes the colours of
the views that see it, each weighted by how well it sees it:

    weight = (quality / best quality of any view) ** POWER  x  facing ramp  x  edge  x  region
    quality = cos(angle between the surface normal and the view) / (world size of one pixel)

so the view that sees a surface most squarely and with the most pixels per unit of surface
wins, smoothly (POWER sets how sharply): face close-ups, with four or more times the body
views' pixels per metre, paint the head wherever they see it, and body views paint the rest.
A view paints nothing beyond MIN_COS (a grazing view smears one pixel over many texels), near
its silhouette (EDGE_PX: the generated figure's outline never matches the rig's exactly), or
(a face view) outside the sphere its frame draws around the head.

What no view paints is a hole: `choose_fill_view` finds the camera that sees most of the
holes most squarely (a z-buffer of the texels in numpy), `frame_fill` frames them with some
painted context; the backend inpaints only the holes, and that picture is projected back
onto the holes alone (`Projection.claimed`).
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import UserError
from ..maps.control_maps import BACKGROUND_DEPTH
from ..rig.projection import CameraModel, in_frame, project
from .sheet_layout import image_right, look_from

HOLE = (255, 0, 255)      # magenta, Blender's colour for a missing texture: nothing painted this texel
MIN_COS = 0.2             # a view paints surfaces it sees within about 78 degrees of square on ...
COS_RAMP = 0.15           # ... fading in over this much cosine above MIN_COS
POWER = 6                 # how sharply the best view wins (4: blends more, 8+: seams show)
EDGE_PX = 3               # a view's paint fades out over this many pixels at its silhouette
DEPTH_TOLERANCE_PX = 1.0  # a texel is the surface a view saw within this many pixels (+ slope, + precision)
DEPTH_PRECISION = 1e-3    # of the depth: the depth render is stored as half floats
REGION_FADE = 0.25        # a face view fades out over the outer quarter of its head sphere
FACE_REGION = 0.5         # a face view's head sphere: this share of its ortho scale as radius
FILL_MIN_COS = 0.45       # a fill camera counts a hole as its own when it sees it within about 63 degrees
FILL_CONTEXT = 0.6        # a fill frames its holes with this much of their extent as painted context each side
FILL_MIN_SHARE = 0.35     # ... and at least this share of the character's size
GUTTER = 4                # texels of colour pushed past each UV island's edge (bilinear and mipmaps read them)
CLOSE_RINGS = 16          # texels closed ring by ring from their neighbours before a smooth fill takes over
THIN_HOLE = 0.03          # metres: holes narrower than this (seams where parts meet) are closed from their neighbours


# The choices a painting takes (the add-on's settings and the script offer the same)
UV_STACKED = 0.05         # a UV map with more of its texels than this under two faces or more is not painted
UV_CHECK_SIZE = 256       # ... counted on a grid this fine (mirrored halves, stacked copies: 30-100 %)
TEXTURE_SIZES = (256, 512, 1024, 2048, 4096)
SHADINGS = (("EMISSION", "As painted", "Emission: the sheet's colours as they are, whatever the lights (its "
             "shading is in the picture); its colour space undoes the scene's view transform"),
            ("PRINCIPLED", "Lit", "Principled BSDF with the texture as base colour: the scene's lights shade it"))
FILLS = (("GENERATE", "Generate", "Holes no view reached are generated from the cameras that see them best, "
          "then what is left is closed from its neighbours"),
         ("NEIGHBOURS", "Neighbours", "Holes are closed from their painted neighbours (no backend)"),
         ("NONE", "Leave magenta", "Holes stay magenta, to see what the sheet did not reach"))
MAX_FILLS = 4


class PaintError(UserError):
    pass


@dataclass
class Projection:
    """One picture projected onto the model. `camera`: a CameraModel whose resolution is the
    picture's; `picture` (H, W, 3) uint8; `depth` (H, W) the model's planar depth from that
    camera (>= BACKGROUND_DEPTH where it shows none); `region`: (centre, radius), paint only
    inside that sphere (a face view: the head); `claimed` (H, W) bool: only these pixels paint
    (a fill: the pixels it made)."""
    name: str
    kind: str  # "body", "face" or "fill"
    camera: CameraModel
    picture: np.ndarray
    depth: np.ndarray
    region: Optional[tuple] = None
    claimed: Optional[np.ndarray] = None

    def __post_init__(self):
        w, h = self.camera.resolution
        if self.picture.shape[:2] != (h, w) or self.depth.shape != (h, w):
            raise PaintError(f"view {self.name}: picture {self.picture.shape[1]}x{self.picture.shape[0]} and depth "
                             f"{self.depth.shape[1]}x{self.depth.shape[0]} must both be the camera's {w}x{h}")
        if self.claimed is not None and self.claimed.shape != (h, w):
            raise PaintError(f"view {self.name}: its claimed pixels must be {w}x{h}")

    def surface(self):
        """(H, W) bool: the pixels whose colour may paint."""
        shown = self.depth < BACKGROUND_DEPTH
        return shown & self.claimed if self.claimed is not None else shown


# ---------------------------------------------------------------------------------------------
# One view's weights and colours

def pixel_size(camera, depth):
    """World size of one pixel at planar `depth` (an orthographic camera: the same everywhere)."""
    _, sensor, viewfac = camera._fit()
    if camera.ortho:
        return np.full(np.shape(depth), camera.ortho_scale / viewfac)
    return np.asarray(depth, float) * sensor / camera.lens / viewfac


def toward_camera(camera, points):
    """(N, 3) unit vectors from each point towards the camera."""
    to_world = np.linalg.inv(camera.world_to_camera)
    if camera.ortho:
        axis = to_world[:3, 2] / np.linalg.norm(to_world[:3, 2])
        return np.broadcast_to(axis, np.shape(points))
    v = to_world[:3, 3] - np.asarray(points, float)
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def inner_distance(mask, steps=EDGE_PX):
    """(H, W) int: how many 4-neighbour erosions each pixel of `mask` survives, capped at
    steps + 1 (1 on the mask's edge, 0 off it); the picture's border counts as outside."""
    inner = np.zeros(mask.shape, np.int32)
    current = mask.copy()
    for _ in range(steps + 1):
        inner += current
        eroded = np.zeros_like(current)
        eroded[1:-1, 1:-1] = (current[1:-1, 1:-1] & current[:-2, 1:-1] & current[2:, 1:-1]
                              & current[1:-1, :-2] & current[1:-1, 2:])
        current = eroded
    return inner


def sample(picture, mask, xy):
    """Bilinear colours (N, 3) of `picture` at pixel coordinates `xy` (top-left origin, pixel
    centres at .5), reading only pixels in `mask`; (colours, whether any such pixel was near)."""
    h, w = mask.shape
    x, y = xy[:, 0] - 0.5, xy[:, 1] - 0.5
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    total = np.zeros((len(xy), 3))
    weights = np.zeros(len(xy))
    for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = np.clip(x0 + dx, 0, w - 1), np.clip(y0 + dy, 0, h - 1)
        ok = mask[yi, xi] * wgt
        total += picture[yi, xi].astype(float) * ok[:, None]
        weights += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        colours = total / weights[:, None]
    return np.where(weights[:, None] > 1e-9, colours, 0.0), weights > 1e-9


def view_weights(points, normals, view, best_density):
    """(weights (N,), colours (N, 3) floats 0-255) of one projection for texels at world
    `points` with unit `normals`; `best_density`: the most pixels per world unit any view has
    (weights are relative to it, so they stay in 0..1)."""
    cam = view.camera
    w, h = cam.resolution
    xy, d = project(cam, points)
    inside = in_frame(xy, d, (w, h))
    ix = np.clip(np.floor(np.nan_to_num(xy[:, 0])).astype(np.int64), 0, w - 1)
    iy = np.clip(np.floor(np.nan_to_num(xy[:, 1])).astype(np.int64), 0, h - 1)
    stored = view.depth[iy, ix]
    cos = np.clip((np.asarray(normals) * toward_camera(cam, points)).sum(axis=1), 0.0, 1.0)
    pix = pixel_size(cam, np.maximum(d, 1e-9))
    slope = np.sqrt(1.0 - cos ** 2) / np.maximum(cos, 0.05)
    tolerance = pix * (DEPTH_TOLERANCE_PX + 0.75 * np.minimum(slope, 20.0)) + DEPTH_PRECISION * np.abs(d)
    seen = inside & (stored < BACKGROUND_DEPTH) & (np.abs(d - stored) <= tolerance)
    surface = view.surface()
    edge = np.clip(inner_distance(surface)[iy, ix] / (EDGE_PX + 1.0), 0.0, 1.0)
    facing = np.clip((cos - MIN_COS) / COS_RAMP, 0.0, 1.0)
    weight = seen * facing * edge * (cos / pix / best_density) ** POWER
    if view.region is not None:
        centre, radius = view.region
        dist = np.linalg.norm(np.asarray(points) - np.asarray(centre), axis=1)
        weight *= np.clip((radius - dist) / (REGION_FADE * radius), 0.0, 1.0)
    colours = np.zeros((len(points), 3))
    some = np.flatnonzero(weight > 0)  # read the picture only where the view paints
    colours[some], near = sample(view.picture, surface, xy[some])
    weight[some[~near]] = 0.0
    return weight, colours


def best_density(views):
    """The most pixels per world unit any of the views has (at its nearest surface)."""
    best = 0.0
    for view in views:
        shown = view.depth[view.depth < BACKGROUND_DEPTH]
        nearest = float(shown.min()) if shown.size else 1.0
        best = max(best, 1.0 / float(pixel_size(view.camera, max(nearest, 1e-6))))
    return best or 1.0


@dataclass
class Blend:
    """The views blended over the texels: `colours` (N, 3) floats 0-255 (meaningful where
    `painted`), `weight` (N,) their summed weights, `painted` (N,), `best` (N,) the index of
    the view with the largest weight (-1: none), `names` the views' names in that order."""
    colours: np.ndarray
    weight: np.ndarray
    painted: np.ndarray
    best: np.ndarray
    names: list

    def shares(self):
        """{view name: share of the painted texels it paints most}."""
        n = max(int(self.painted.sum()), 1)
        return {name: round(float((self.best == i).sum()) / n, 4) for i, name in enumerate(self.names)}


def blend(points, normals, views, only=None, density=None):
    """The views' colours blended by the rule (module docstring) at each texel; `only` (N,)
    bool: texels the views may paint (the holes, for fills); `density`: the reference of the
    weights (default: the best of these views)."""
    points = np.asarray(points, float).reshape(-1, 3)
    normals = np.asarray(normals, float).reshape(-1, 3)
    density = density or best_density(views)
    total = np.zeros((len(points), 3))
    weight = np.zeros(len(points))
    top = np.zeros(len(points))
    best = np.full(len(points), -1, np.int64)
    for i, view in enumerate(views):
        wv, cv = view_weights(points, normals, view, density)
        if only is not None:
            wv = np.where(only, wv, 0.0)
        total += cv * wv[:, None]
        weight += wv
        better = wv > top
        best[better], top[better] = i, wv[better]
    painted = weight > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        colours = np.where(painted[:, None], total / weight[:, None], 0.0)
    return Blend(colours, weight, painted, best, [v.name for v in views])


def combine(base, fills):
    """The sheet views' blend with each fill's blend over the texels the base left unpainted
    (earlier fills first): one Blend."""
    colours, painted, best = base.colours.copy(), base.painted.copy(), base.best.copy()
    names = list(base.names)
    weight = base.weight.copy()
    for fill in fills:
        new = fill.painted & ~painted
        colours[new], weight[new] = fill.colours[new], fill.weight[new]
        best[new] = np.where(fill.best[new] >= 0, fill.best[new] + len(names), -1)
        painted |= new
        names += fill.names
    return Blend(colours, weight, painted, best, names)


# ---------------------------------------------------------------------------------------------
# Fills: the camera that sees the holes best, framed with context

def view_axes(direction, up, front):
    """(right, image up) of an orthographic camera looking along -direction: upright along
    `up`, or along `front` for a camera straight above or below."""
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    hint = np.asarray(up, float) if abs(np.dot(direction, up)) < 0.98 else np.asarray(front, float)
    right = image_right(hint, direction)
    return right, np.cross(right, -direction)


def candidate_directions(up, front):
    """Directions (from the character towards a camera) a fill may look from: straight above
    and below, and eight around at 45 degrees above and below (the sheet's own views are level)."""
    up, front = np.asarray(up, float), np.asarray(front, float)
    side = np.cross(up, front)
    out = [up, -up]
    for elevation in (45.0, -45.0):
        e = np.radians(elevation)
        for yaw in range(0, 360, 45):
            a = np.radians(yaw)
            level = front * np.cos(a) + side * np.sin(a)
            out.append(level * np.cos(e) + up * np.sin(e))
    return np.array(out)


def visible_from(points, normals, direction, up, front, pixel):
    """(N,) bool: which points an orthographic camera looking along -direction sees, by a
    z-buffer of the points themselves splatted into pixels of `pixel` world units (the texels
    are dense enough to close it when `pixel` is about twice their spacing); a point within
    two pixels of the nearest depth, more on surfaces seen at an angle, counts as seen."""
    points = np.asarray(points, float)
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    right, image_up = view_axes(direction, up, front)
    u, v, z = points @ right, points @ image_up, points @ direction
    iu = np.floor((u - u.min()) / pixel).astype(np.int64)
    iv = np.floor((v - v.min()) / pixel).astype(np.int64)
    cell = iv * (iu.max() + 1) + iu
    nearest = np.full(int(cell.max()) + 1, -np.inf)
    np.maximum.at(nearest, cell, z)
    cos = np.clip(np.asarray(normals, float) @ direction, 0.05, 1.0)
    slope = np.minimum(np.sqrt(1.0 - cos ** 2) / cos, 10.0)
    return z >= nearest[cell] - pixel * (2.0 + slope)


def choose_fill_view(points, normals, holes, up, front, pixel, directions=None, min_cos=FILL_MIN_COS):
    """The fill camera for the `holes` (N,) bool among the texels: (direction, the holes it would
    fill: seen within `min_cos` of square on) for the candidate that fills the most, weighted by
    how squarely; (None, None) when none fills any."""
    directions = candidate_directions(up, front) if directions is None else directions
    best, best_score, best_fills = None, 0.0, None
    normals = np.asarray(normals, float)
    for direction in directions:
        cos = normals[holes] @ (direction / np.linalg.norm(direction))
        if not (cos >= min_cos).any():
            continue
        seen = visible_from(points, normals, direction, up, front, pixel)[holes]
        fills = seen & (cos >= min_cos)
        score = float((cos * fills).sum())
        if score > best_score:
            best, best_score = direction, score
            best_fills = np.zeros(len(holes), bool)
            best_fills[np.flatnonzero(holes)[fills]] = True
    return best, best_fills


def reachable(points, normals, up, front, pixel, directions=None, min_cos=MIN_COS):
    """(N,) bool: the texels some candidate fill camera sees within `min_cos` of square on (the
    others are hidden in every direction in this pose: between parts that touch, inside others)."""
    directions = candidate_directions(up, front) if directions is None else directions
    out = np.zeros(len(points), bool)
    for direction in directions:
        cos = np.asarray(normals) @ (direction / np.linalg.norm(direction))
        out |= (cos >= min_cos) & visible_from(points, normals, direction, up, front, pixel)
    return out


def frame_fill(points, targets, direction, up, front):
    """The orthographic fill camera looking along -direction at the `targets` (N,) bool among
    the texel `points`, with painted context around them: (4x4 camera-to-world matrix, ortho
    scale, (clip start, clip end), the world point at the picture's centre)."""
    points = np.asarray(points, float)
    right, image_up = view_axes(direction, up, front)
    u, v = points @ right, points @ image_up
    span = max(np.ptp(u), np.ptp(v))
    tu, tv = u[targets], v[targets]
    extent = max(np.ptp(tu), np.ptp(tv)) * (1.0 + 2.0 * FILL_CONTEXT)
    extent = min(max(extent, FILL_MIN_SHARE * span), 1.05 * span)
    cu, cv = (tu.min() + tu.max()) / 2, (tv.min() + tv.max()) / 2
    direction = np.asarray(direction, float) / np.linalg.norm(direction)
    depth_mid = float((points @ direction).mean())
    target = right * cu + image_up * cv + direction * depth_mid
    radius = float(np.linalg.norm(points - points.mean(axis=0), axis=1).max())
    # upright along `up`, or along `front` for a camera straight above or below (as view_axes)
    matrix = look_from(target, direction, up if abs(np.dot(direction, up)) < 0.98 else front, 3.0 * radius + 1.0)
    return matrix, float(extent), (0.01 * radius, 6.0 * radius + 2.0), tuple(float(t) for t in target)


def ortho_camera(matrix, ortho_scale, resolution, clip_start=0.01):
    """A CameraModel for an orthographic camera with 4x4 camera-to-world `matrix`."""
    return CameraModel(world_to_camera=np.linalg.inv(np.asarray(matrix, float)), resolution=tuple(resolution),
                       ortho=True, ortho_scale=float(ortho_scale), clip_start=clip_start)


# ---------------------------------------------------------------------------------------------
# The texture

def fill_from_neighbours(image, known, max_steps=None, wanted=None):
    """`image` (H, W, C) floats with every texel not `known` given the mean of its known
    8-neighbours, ring by ring (`max_steps` rings; None: until every `wanted` texel, default
    every texel, is known or nothing grows). Returns (image, known after). Each ring works on
    its frontier texels only, so a 4096² texture costs what its holes' edges cost."""
    image, known = image.astype(float).copy(), known.copy()
    wanted = np.ones_like(known) if wanted is None else wanted
    h, w = known.shape
    step = 0
    while not known[wanted].all() and (max_steps is None or step < max_steps):
        ys, xs = np.nonzero(~known & _shifted_any(known, True))
        if not len(ys):
            break
        total = np.zeros((len(ys), image.shape[2]))
        count = np.zeros(len(ys))
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if not (dx or dy):
                    continue
                yy, xx = ys + dy, xs + dx
                inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
                yy, xx = np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)
                take = known[yy, xx] & inside
                total += image[yy, xx] * take[:, None]
                count += take
        image[ys, xs] = total / count[:, None]
        known[ys, xs] = True
        step += 1
    return image, known


def _shifted_any(mask, value):
    """Each pixel's 8-neighbourhood (and itself) reduced: any (value True) or all (False)."""
    h, w = mask.shape
    padded = np.pad(mask, 1, constant_values=not value)
    out = np.zeros_like(mask) if value else np.ones_like(mask)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            window = padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
            out = (out | window) if value else (out & window)
    return out


def grow(mask, steps):
    """`mask` (H, W bool) grown by `steps` pixels (8-neighbour)."""
    for _ in range(steps):
        mask = _shifted_any(mask, True)
    return mask


def thin_holes(size, texels, holes, spacing, width=THIN_HOLE):
    """(N,) bool: the `holes` among the `texels` (flat indices in a size x size texture) narrower
    than `width` world units on the texture, given the texels' `spacing` (world units): what a
    morphological opening of the holes removes. Seams like these are closed from their
    neighbours; only the wider holes are worth a generated fill."""
    steps = max(1, int(round((width / max(spacing, 1e-9) - 1) / 2)))
    image = np.zeros(size * size, bool)
    image[texels[holes]] = True
    image = image.reshape(size, size)
    core = image
    for _ in range(steps):
        core = _shifted_any(core, False)
    opened = grow(core, steps)
    return holes & ~(opened & image).ravel()[texels]


def texture(size, texels, colours, painted, hole=HOLE, gutter=GUTTER):
    """The (size, size, 3) uint8 texture: `colours` at the `texels` (flat indices of the texels
    the model covers) that are `painted`, HOLE at those that are not, and each painted
    island's colours pushed `gutter` texels past its edge."""
    image = np.zeros((size * size, 3))
    known = np.zeros(size * size, bool)
    image[texels[painted]] = colours[painted]
    known[texels[painted]] = True
    image, known = fill_from_neighbours(image.reshape(size, size, 3), known.reshape(size, size), gutter)
    out = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    holes = np.zeros(size * size, bool)
    holes[texels[~painted]] = True
    out.reshape(-1, 3)[holes] = hole
    return out


def push_pull(image, known):
    """`image` (H, W, C) with every texel not `known` given a smooth blend of the known ones
    around it: a pyramid of known-weighted means, each level filling the finer one's gaps."""
    levels = [(image * known[..., None], known.astype(float))]
    while max(levels[-1][1].shape) > 1:
        colour, weight = levels[-1]
        h, w = weight.shape
        colour = np.pad(colour, ((0, h % 2), (0, w % 2), (0, 0)))
        weight = np.pad(weight, ((0, h % 2), (0, w % 2)))
        colour = colour.reshape(colour.shape[0] // 2, 2, colour.shape[1] // 2, 2, -1).sum(axis=(1, 3))
        weight = weight.reshape(weight.shape[0] // 2, 2, weight.shape[1] // 2, 2).sum(axis=(1, 3))
        levels.append((colour, weight))
    colour, weight = levels[-1]
    filled = colour / np.maximum(weight, 1e-12)[..., None]
    for colour, weight in reversed(levels[:-1]):
        h, w = weight.shape
        coarse = np.repeat(np.repeat(filled, 2, axis=0), 2, axis=1)[:h, :w]
        with np.errstate(invalid="ignore", divide="ignore"):
            filled = np.where(weight[..., None] > 0, colour / weight[..., None], coarse)
    return np.where(known[..., None], image, filled)


def close_holes(size, texels, colours, painted, only=None):
    """Unpainted texels given their painted neighbours' colours in the texture, ring by ring
    (`only`: just these; None: every unpainted texel): (colours, the texels closed so)."""
    image = np.zeros((size * size, 3))
    known = np.zeros(size * size, bool)
    image[texels[painted]] = colours[painted]
    known[texels[painted]] = True
    if not known.any():
        raise PaintError("no view of the sheet painted any part of the model: check that the sheet belongs to this "
                         "character (its cameras must see the model)")
    wanted = np.zeros(size * size, bool)
    wanted[texels[~painted if only is None else (~painted & only)]] = True
    # ring by ring from the painted edge for a few texels (seams take their neighbours' colours),
    # then the pyramid for whatever wider hole is left (hidden texels: any smooth colour will do)
    filled, reached = fill_from_neighbours(image.reshape(size, size, 3), known.reshape(size, size),
                                           max_steps=CLOSE_RINGS, wanted=wanted.reshape(size, size))
    if only is None and not reached.ravel()[wanted].all():
        filled = push_pull(filled, reached)
        reached = np.ones_like(reached)
    closed = ~painted & reached.ravel()[texels]
    if only is not None:
        closed &= only
    out = colours.copy()
    out[closed] = filled.reshape(-1, 3)[texels[closed]]
    return out, closed


def compare(render, picture, mask):
    """(mean, 95th percentile) of the per-pixel mean |difference| in levels inside `mask`."""
    diff = np.abs(render.astype(float) - picture.astype(float)).mean(axis=-1)[mask]
    if not diff.size:
        return None, None
    return round(float(diff.mean()), 2), round(float(np.percentile(diff, 95)), 2)


def stacked_share(uv_triangles, size=UV_CHECK_SIZE):
    """The share of the texels a UV map covers (texel centres on a `size` grid over 0..1) that
    two faces or more claim: mirrored halves and stacked copies, which a painted texture cannot
    tell apart (each such texel would show what one face saw on every face). `uv_triangles`
    (T, 3, 2): each triangle's UVs. Triangles are rasterised in batches by the size of their
    box, so a mesh of many small faces costs a few array operations, not a loop per face."""
    tri = np.asarray(uv_triangles, np.float64).reshape(-1, 3, 2) * size - 0.5  # texel centres at integers
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    keep = np.abs(area) > 1e-9
    tri, area = tri[keep], area[keep]
    lo = np.clip(np.ceil(tri.min(axis=1)), 0, size).astype(np.int64)
    hi = np.clip(np.floor(tri.max(axis=1)), -1, size - 1).astype(np.int64)
    extent = np.maximum(hi - lo + 1, 0).max(axis=1)
    counts = np.zeros(size * size, np.int32)
    k = 1
    while True:
        batch = np.flatnonzero((extent > k // 2) & (extent <= k)) if k > 1 else np.flatnonzero(extent == 1)
        if len(batch):
            offsets = np.stack(np.meshgrid(np.arange(k), np.arange(k), indexing="xy"), -1).reshape(-1, 2)
            points = lo[batch, None, :] + offsets[None]  # (B, k*k, 2) candidate texel centres
            t, inside = tri[batch], np.ones(points.shape[:2], bool)
            for i in range(3):  # the same side of each edge as the triangle's own winding
                p0, p1 = t[:, i, None], t[:, (i + 1) % 3, None]
                cross = (p1[..., 0] - p0[..., 0]) * (points[..., 1] - p0[..., 1]) - \
                        (p1[..., 1] - p0[..., 1]) * (points[..., 0] - p0[..., 0])
                inside &= cross * np.sign(area[batch])[:, None] > 0  # a centre on a shared edge: neither, not both
            inside &= (points <= hi[batch, None, :]).all(-1)
            np.add.at(counts, (points[..., 1] * size + points[..., 0])[inside], 1)
        if k >= size:
            break
        k *= 2
    covered = counts > 0
    return float((counts > 1).sum() / covered.sum()) if covered.any() else 0.0
