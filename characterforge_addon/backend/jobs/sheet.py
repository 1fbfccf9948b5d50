"""The character sheet job, in three stages as in the seed workflow: the sheet from its
OpenPose (and depth) maps, or a creature's or object's depth, normal and line-art maps; a 2x
upscale done tile by tile (img2img at low strength, so the largest model call is one tile,
whatever the sheet size); a face detail pass for humanoids (each face re-generated at full
model resolution by inpainting, pasted back through a feathered mask). Then the sheet is cut
into its views, faces and detail close-ups: the identity pack's pictures, each whole view with
its appearance embedding (the view's silhouette from the sheet's depth map, cut out)."""

import math

import numpy as np
from PIL import Image

from ...core.characters import kinds, scores
from ..engine.pictures import decode_image_bytes
from ..engine.pipelines import GenerationError
from . import redraw

FACE_GROW = 1.25     # the region re-generated around a face box, as a factor of its size
FACE_SUFFIX = ", detailed face, sharp eyes"


def tile_starts(size, tile, overlap):
    """Tile origins along one axis: tiles of `tile` pixels overlapping by at least `overlap`,
    the last one flush with the end; origins on multiples of 8."""
    if size <= tile:
        return [0]
    n = math.ceil((size - overlap) / (tile - overlap))
    span = size - tile
    return sorted({int(round(span * i / (n - 1) / 8)) * 8 for i in range(n)})


def tile_boxes(width, height, tile, overlap):
    xs, ys = tile_starts(width, tile, overlap), tile_starts(height, tile, overlap)
    return [(x, y, min(x + tile, width), min(y + tile, height)) for y in ys for x in xs]


def feather(w, h, ramp_left, ramp_top, ramp_right, ramp_bottom):
    """Blend weights for a tile: 1 inside, falling linearly towards the sides that overlap a
    neighbour over that many pixels (0 = a hard edge at the image border)."""
    def axis(n, a, b):
        t = np.ones(n)
        if a:
            t[:a] = np.minimum(t[:a], (np.arange(a) + 0.5) / a)
        if b:
            t[n - b:] = np.minimum(t[n - b:], (np.arange(b)[::-1] + 0.5) / b)
        return t
    return np.outer(axis(h, ramp_top, ramp_bottom), axis(w, ramp_left, ramp_right))


def upscale(engine, image, spec, identity, progress, cancel):
    """The sheet at `factor` times its size, refined tile by tile."""
    o = spec["upscale"]
    return refine(engine, image, spec, o["factor"], o["strength"], o["tile"], o["overlap"], identity, progress, cancel,
                  "upscale")


def refine(engine, image, spec, factor, strength, tile, overlap, identity, progress, cancel, label):
    """`image` resized by `factor` (Lanczos), then each tile redrawn by img2img at `strength`
    and the tiles blended with feathered overlaps: no model call is larger than one tile."""
    h, w = image.shape[:2]
    size = (int(round(w * factor / 8)) * 8, int(round(h * factor / 8)) * 8)
    big = redraw.resize(image, size) if size != (w, h) else image
    if strength == 0:
        return big
    width, height = size
    boxes = tile_boxes(width, height, tile, overlap)
    total, sum_weights = np.zeros((height, width, 3)), np.zeros((height, width, 1))
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        progress.stage(f"{label}: tile {i + 1} of {len(boxes)}")
        refined = engine.img2img(spec, big[y0:y1, x0:x1], strength, identity, spec["seed"] + 1 + i, progress.step,
                                 cancel)
        weight = feather(x1 - x0, y1 - y0, overlap if x0 > 0 else 0, overlap if y0 > 0 else 0,
                         overlap if x1 < width else 0, overlap if y1 < height else 0)
        total[y0:y1, x0:x1] += refined * weight[..., None]
        sum_weights[y0:y1, x0:x1] += weight[..., None]
    return np.clip(np.rint(total / np.maximum(sum_weights, 1e-6)), 0, 255).astype(np.uint8)


def _overlaps(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def face_regions(spec, factor, image, face_tools):
    """(boxes in the upscaled sheet, source): the faces the detector finds, and the faces of the
    rig's keypoints it missed (small faces in the body views are easy to miss)."""
    rig = [tuple(int(round(v * factor)) for v in view["face_box"]) for view in spec["views"] if view["face_box"]]
    if face_tools is None or spec["faces"]["detector"] == "rig":
        return rig, "rig"
    found = [f.box for f in face_tools.find(image)]
    missed = [b for b in rig if not any(_overlaps(b, f) for f in found)]
    if not found:
        return rig, "rig (the detector found no face)"
    return found + missed, "detector" + (f" + {len(missed)} from the rig" if missed else "")


def detail_faces(engine, image, boxes, spec, identity, progress, cancel):
    """Each face re-generated at the model's size through inpainting and pasted back."""
    size = spec["faces"]["size"] or engine.profile.native_size
    for i, box in enumerate(boxes):
        progress.stage(f"faces: face {i + 1} of {len(boxes)}")
        image, _ = redraw.redraw_box(engine, image, box, spec, spec["faces"]["strength"], spec["seed"] + 100 + i,
                                     identity, progress, cancel, size, FACE_GROW, FACE_SUFFIX)
    return image


def cut(image, spec, factor):
    """(name, pixels, record) for each view's box and each face-row view's face, from the
    finished sheet."""
    height, width = image.shape[:2]
    pieces = []
    for view in spec["views"]:
        box = tuple(int(round(v * factor)) for v in view["box"])
        record = {"view": view["name"], "kind": view["kind"], "yaw": view["yaw"], "elevation": view["elevation"],
                  "box": list(box)}
        if view["kind"] == "body":
            pieces.append((f"view_{view['name']}", image[box[1]:box[3], box[0]:box[2]], record))
        elif view["kind"] == "detail":
            record["part"] = view["part"]
            name = view["name"] if view["name"].startswith("detail_") else f"detail_{view['name']}"
            pieces.append((name, image[box[1]:box[3], box[0]:box[2]], record))
        else:
            source = view["face_box"] or view["box"]
            square = redraw.square(tuple(int(round(v * factor)) for v in source), FACE_GROW, width, height, step=1)
            record["box"] = list(square)
            pieces.append((view["name"] if view["name"].startswith("face_") else f"face_{view['name']}",
                           image[square[1]:square[3], square[0]:square[2]], record))
    return pieces


def run(engine, spec, pngs, progress, cancel, face_tools=None, no_detector_reason=None):
    """[(result name, pixels, metadata)] of a character sheet job: the finished sheet, the sheet
    before upscaling, and the cut views and faces (with their insightface embedding)."""
    identity = [decode_image_bytes(p, f"identity.images[{i}]") for i, p in enumerate(pngs.get("identity", []))]
    progress.stage("sheet")
    base = engine.draw(spec, pngs, identity, progress.step, cancel)[0]
    factor = spec["upscale"]["factor"]
    sheet = upscale(engine, base, spec, identity, progress, cancel) if factor > 1 else base
    factor = sheet.shape[1] / base.shape[1]
    humanoid = kinds.is_humanoid(spec["subject"])
    faces = {"enabled": humanoid and spec["faces"]["enabled"] and spec["faces"]["strength"] > 0,
             "source": None if humanoid else f"none: {kinds.TEXT[spec['subject']]} has no face", "boxes": [],
             "size": spec["faces"]["size"] or engine.profile.native_size}
    if faces["enabled"]:
        progress.stage("faces: finding faces")
        boxes, faces["source"] = face_regions(spec, factor, sheet, face_tools)
        if no_detector_reason:
            faces["source"] += f" ({no_detector_reason})"
        faces["boxes"] = [list(b) for b in boxes]
        sheet = detail_faces(engine, sheet, boxes, spec, identity, progress, cancel)
    progress.stage("cutting views and faces" if humanoid else "cutting views and details")
    followed, skipped = engine.steering(spec)
    results = [("sheet", sheet, {"stage": "final", "upscale": factor, "faces": faces, "kind": spec["subject"],
                                 "maps": {"followed": followed, **({"not_followed": skipped} if skipped else {})}}),
               ("sheet_base", base, {"stage": "before upscale"})]
    embeddings = {}
    pieces = cut(sheet, spec, factor)
    looks = _appearance(engine, sheet, pngs, pieces, progress)
    for name, pixels, record in pieces:
        if record["kind"] == "body":
            record["appearance"] = looks.get(name)
        if record["kind"] == "face":
            embedding = face_tools.embed(pixels) if face_tools is not None and face_tools.has_recogniser else None
            record["embedding"] = None if embedding is None else [round(float(v), 6) for v in embedding]
            embeddings[name] = record["embedding"]
        results.append((name, np.ascontiguousarray(pixels), record))
    results[0][2]["scores"] = {"identity": scores.pairwise_identity(embeddings) if face_tools is not None else
                               scores.unavailable(f"insightface ({no_detector_reason or 'not loaded'})")}
    if not humanoid:
        results[0][2]["scores"]["identity"] = scores.unavailable(
            f"{kinds.TEXT[spec['subject']]} has no face: see appearance")
    results[0][2]["scores"]["appearance"] = (scores.unavailable(engine.appearance.missing) if engine.appearance.missing
                                             else scores.pairwise_appearance(looks))
    if looks:
        results[0][2]["appearance_model"] = engine.appearance.model_name()
    if not any(r[2].get("kind") for r in results):
        raise GenerationError("the sheet has no view boxes to cut: render the sheet's maps again")
    return results


def _appearance(engine, sheet, pngs, pieces, progress):
    """{view result name: appearance embedding} of the sheet's whole views, each cut out by its
    silhouette in the sheet's depth map (the whole box without one); {} without an image encoder."""
    if engine.appearance.missing:
        return {}
    progress.stage("appearance of the views")
    h, w = sheet.shape[:2]
    silhouette = None
    if "depth" in pngs:
        depth = decode_image_bytes(pngs["depth"], "controls.depth.image").convert("L").resize((w, h), Image.NEAREST)
        silhouette = np.asarray(depth) > 0
    views = [(name, pixels, record) for name, pixels, record in pieces if record["kind"] == "body"]
    masks = []
    for _, _, record in views:
        x0, y0, x1, y1 = record["box"]
        masks.append(None if silhouette is None or not silhouette[y0:y1, x0:x1].any() else silhouette[y0:y1, x0:x1])
    found = engine.appearance.of_regions([pixels for _, pixels, _ in views], masks)
    return {name: vector for (name, _, _), vector in zip(views, found) if vector is not None}
