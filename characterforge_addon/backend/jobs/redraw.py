"""Redrawing one region of a picture (a face, a hand) at the model's own size: a square around
its box is cut out and scaled up, inpainted inside a feathered ellipse, scaled back and pasted
through the same ellipse. Nothing outside the ellipse's box grown by the feather changes."""

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def resize(pixels, size, resample=Image.LANCZOS):
    return np.asarray(Image.fromarray(pixels).resize(size, resample))


def square(box, grow, width, height, step=8):
    """A square around box, grown, shifted inside the image, on whole multiples of `step`."""
    x0, y0, x1, y1 = box
    side = int(math.ceil(max(x1 - x0, y1 - y0) * grow / step) * step)
    side = min(side, width // step * step, height // step * step)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(min(max(0, round(cx - side / 2)), width - side))
    top = int(min(max(0, round(cy - side / 2)), height - side))
    return left, top, left + side, top + side


def ellipse_mask(size, box_in_crop, feather_px):
    """An ellipse over the box, feathered: 255 inside, falling to 0 over `feather_px`."""
    mask = Image.new("L", (size, size), 0)
    x0, y0, x1, y1 = box_in_crop
    ImageDraw.Draw(mask).ellipse((x0, y0, x1, y1), fill=255)
    return mask.filter(ImageFilter.GaussianBlur(max(feather_px, 1) / 2))


class Region:
    """One box of a picture cut out for a redraw: the square around it scaled to `size`, the
    feathered ellipse over the box, the maps cut the same way."""

    def __init__(self, image, box, size, grow, controls=(), feather_share=0.15):
        height, width = image.shape[:2]
        self.box, self.size = box, size
        self.square = square(box, grow, width, height)
        x0, y0, x1, y1 = self.square
        self.side = x1 - x0
        if self.side < 16:
            return
        self.scale = size / self.side
        inner = [(box[0] - x0) * self.scale, (box[1] - y0) * self.scale, (box[2] - x0) * self.scale,
                 (box[3] - y0) * self.scale]
        self.feather_px = feather_share * (inner[2] - inner[0])
        self.mask = ellipse_mask(size, inner, self.feather_px)
        self.crop = resize(image[y0:y1, x0:x1], (size, size))
        self.controls = [(name, Image.fromarray(resize(pixels[y0:y1, x0:x1], (size, size)))) for name, pixels in controls]

    @property
    def usable(self):
        return self.side >= 16

    def paste(self, image, redone):
        """(image with `redone` pasted through the ellipse, the box it changed within)."""
        x0, y0, x1, y1 = self.square
        box, side = self.box, self.side
        back = resize(redone, (side, side)).astype(np.float64)
        alpha = np.asarray(self.mask.resize((side, side), Image.BILINEAR), dtype=np.float64) / 255.0
        # The blur's tail and the resampling must not reach past the feather: clamp to that box.
        reach = int(math.ceil(self.feather_px / self.scale)) + 1
        limit = [max(x0, box[0] - reach), max(y0, box[1] - reach), min(x1, box[2] + reach), min(y1, box[3] + reach)]
        keep = np.zeros_like(alpha)
        keep[limit[1] - y0:limit[3] - y0, limit[0] - x0:limit[2] - x0] = 1.0
        alpha = (alpha * keep)[..., None]
        out = image.copy()
        region = out[y0:y1, x0:x1].astype(np.float64)
        out[y0:y1, x0:x1] = np.clip(np.rint(region * (1 - alpha) + back * alpha), 0, 255).astype(np.uint8)
        return out, limit


def redraw_box(engine, image, box, spec, strength, seed, references, progress, cancel, size, grow, suffix="",
               controls=(), feather_share=0.15):
    """(image with the region around `box` redrawn, {"square", "changed_within"}) or (image,
    None) when the region is too small. `controls`: [(control name, full-size HxWx3 map)],
    cut and scaled like the picture."""
    region = Region(image, box, size, grow, controls, feather_share)
    if not region.usable:
        return image, None
    redone = engine.inpaint(spec, region.crop, region.mask, strength, references, seed, suffix, progress.step, cancel,
                            controls=region.controls)
    out, limit = region.paste(image, redone)
    return out, {"square": region.square, "changed_within": limit}


def size_needed(box, grow, width, height, native):
    """The side a box's redraw needs: its square at twice its size, on multiples of 64, from
    half the model's native size up to it (a small hand need not be drawn at 1024x1024)."""
    x0, _, x1, _ = square(box, grow, width, height)
    return int(min(native, max(native // 2, math.ceil((x1 - x0) * 2 / 64) * 64)))


def redraw_boxes(engine, image, boxes, spec, strength, seed, progress, cancel, native, grow, suffix="", controls=()):
    """Every box redrawn in one batch (box i with seed + i), all at the size the largest needs,
    cut from `image` and pasted back in order: ([changed_within per box, None when too small], image)."""
    height, width = image.shape[:2]
    size = max(size_needed(b, grow, width, height, native) for b in boxes)
    regions = [Region(image, box, size, grow, controls) for box in boxes]
    usable = [r for r in regions if r.usable]
    if not usable:
        return image, [None] * len(boxes)
    redone = engine.inpaint_batch(spec, [r.crop for r in usable], [r.mask for r in usable], strength,
                                  [seed + i for i, r in enumerate(regions) if r.usable], suffix, progress.step, cancel,
                                  [[im for _, im in r.controls] for r in usable], [n for n, _ in controls])
    changed, pictures = [], iter(redone)
    for region in regions:
        if not region.usable:
            changed.append(None)
            continue
        image, limit = region.paste(image, next(pictures))
        changed.append(limit)
    return image, changed
