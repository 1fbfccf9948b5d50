"""Drawing helpers for the guide's pictures (`make docs`): text, tiles, captions, boxes and
small deterministic PNGs. numpy and Pillow only (both in requirements/dev.lock); no bpy."""

import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (43, 43, 43)  # Blender's dark grey, so the pictures sit together on a page
TEXT = (230, 230, 230)
MUTED = (160, 160, 160)


def font(size=12, bold=False):
    """DejaVu Sans from matplotlib's data folder (always there with matplotlib), else Pillow's own."""
    try:
        import matplotlib
        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size)


def image(array):
    """A Pillow RGB image from an (H, W), (H, W, 3) or (H, W, 4) uint8 array (alpha over black)."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.shape[2] == 4:
        alpha = array[..., 3:].astype(np.float32) / 255
        array = (array[..., :3] * alpha).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(array[..., :3]), "RGB")


def fit(img, width=None, height=None):
    """`img` scaled (aspect kept) to `width` or `height`."""
    w, h = img.size
    if width and not height:
        height = max(1, round(h * width / w))
    elif height and not width:
        width = max(1, round(w * height / h))
    return img.resize((width, height), Image.LANCZOS)


def text_width(text, face):
    return face.getlength(text)


def caption(img, text, size=12, lines=1):
    """`img` with `text` under it (wrapped to its width), on the page's grey."""
    face = font(size)
    words, wrapped, line = text.split(), [], ""
    for word in words:
        if line and text_width(f"{line} {word}", face) > img.width - 8:
            wrapped.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    wrapped.append(line)
    wrapped += [""] * (lines - len(wrapped))
    out = Image.new("RGB", (img.width, img.height + 6 + (size + 4) * len(wrapped)), BACKGROUND)
    out.paste(img, (0, 0))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(wrapped):
        draw.text((img.width / 2, img.height + 4 + i * (size + 4)), line, fill=TEXT, font=face, anchor="ma")
    return out


def row(tiles, gap=8, between=None, size=14):
    """Tiles side by side, top-aligned, with `between` (e.g. an arrow) drawn in each gap."""
    gap = max(gap, int(text_width(between, font(size))) + 8) if between else gap
    height = max(t.height for t in tiles)
    out = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), height), BACKGROUND)
    draw, x = ImageDraw.Draw(out), 0
    for i, tile in enumerate(tiles):
        out.paste(tile, (x, 0))
        x += tile.width
        if between and i < len(tiles) - 1:
            y = min(t.height for t in tiles[i:i + 2]) // 2
            draw.text((x + gap / 2, y), between, fill=TEXT, font=font(size, True), anchor="mm")
        x += gap
    return out


def grid(tiles, columns, gap=8):
    """Tiles in rows of `columns`."""
    rows = [row(tiles[i:i + columns], gap) for i in range(0, len(tiles), columns)]
    width = max(r.width for r in rows)
    out = Image.new("RGB", (width, sum(r.height for r in rows) + gap * (len(rows) - 1)), BACKGROUND)
    y = 0
    for r in rows:
        out.paste(r, (0, y))
        y += r.height + gap
    return out


def title(img, text, size=14):
    """`img` with a bold title above it."""
    out = Image.new("RGB", (img.width, img.height + size + 10), BACKGROUND)
    ImageDraw.Draw(out).text((4, 3), text, fill=TEXT, font=font(size, True))
    out.paste(img, (0, size + 10))
    return out


def boxes(img, rects, colour, width=2, labels=None, size=11):
    """Rectangles (x0, y0, x1, y1, in `img`'s pixels) drawn on a copy of `img`, each with its label."""
    out = img.copy()
    draw = ImageDraw.Draw(out)
    for i, rect in enumerate(rects):
        x0, y0, x1, y1 = rect
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=width)
        if labels and labels[i]:
            face = font(size)
            tw = text_width(labels[i], face)
            draw.rectangle((x0, y0, x0 + tw + 6, y0 + size + 4), fill=colour)
            draw.text((x0 + 3, y0 + 1), labels[i], fill=(0, 0, 0), font=face)
    return out


def save(img, path, colours=None):
    """Write `img` as a small PNG: with `colours`, reduced to that many (median cut, no
    dithering), so flat drawings and maps stay a few KB. Same input, same bytes."""
    if colours:
        img = img.quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path, "PNG", optimize=True)
