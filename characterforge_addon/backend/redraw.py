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


def redraw_box(engine, image, box, spec, strength, seed, references, progress, cancel, size, grow, suffix="",
               controls=(), feather_share=0.15):
    """(image with the region around `box` redrawn, {"square", "changed_within"}) or (image,
    None) when the region is too small. `controls`: [(control name, full-size HxWx3 map)],
    cut and scaled like the picture."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = square(box, grow, width, height)
    side = x1 - x0
    if side < 16:
        return image, None
    scale = size / side
    inner = [(box[0] - x0) * scale, (box[1] - y0) * scale, (box[2] - x0) * scale, (box[3] - y0) * scale]
    feather_px = feather_share * (inner[2] - inner[0])
    mask = ellipse_mask(size, inner, feather_px)
    crop = resize(image[y0:y1, x0:x1], (size, size))
    cut = [(name, Image.fromarray(resize(pixels[y0:y1, x0:x1], (size, size)))) for name, pixels in controls]
    redone = engine.inpaint(spec, crop, mask, strength, references, seed, suffix, progress.step, cancel, controls=cut)
    back = resize(redone, (side, side)).astype(np.float64)
    alpha = np.asarray(mask.resize((side, side), Image.BILINEAR), dtype=np.float64) / 255.0
    # The blur's tail and the resampling must not reach past the feather: clamp to that box.
    reach = int(math.ceil(feather_px / scale)) + 1
    limit = [max(x0, box[0] - reach), max(y0, box[1] - reach), min(x1, box[2] + reach), min(y1, box[3] + reach)]
    keep = np.zeros_like(alpha)
    keep[limit[1] - y0:limit[3] - y0, limit[0] - x0:limit[2] - x0] = 1.0
    alpha = (alpha * keep)[..., None]
    out = image.copy()
    region = out[y0:y1, x0:x1].astype(np.float64)
    out[y0:y1, x0:x1] = np.clip(np.rint(region * (1 - alpha) + back * alpha), 0, 255).astype(np.uint8)
    return out, {"square": [x0, y0, x1, y1], "changed_within": limit}
