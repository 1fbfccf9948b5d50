"""What an animated shot's frames are made of, from the maps the rig renders (pure): the size
the video model works at, the characters' mask, the crop around a face the face video shows,
and the character's pictures from its pack in the order a video model takes them."""

import os

import numpy as np

FACE_SIDE = 512  # Wan-Animate's face video is 512x512 (its motion encoder's size)


def video_size(render_width, render_height, height):
    """(width, height) of the clip: the camera's aspect at `height` lines, both multiples of 16."""
    h = max(64, int(height) // 16 * 16)
    w = max(64, int(round(render_width / render_height * h / 16)) * 16)
    return w, h


def union_mask(masks):
    """The characters' pixels in one mask (uint8 0/255) from their own masks (H x W arrays)."""
    out = np.zeros(masks[0].shape[:2], bool)
    for mask in masks:
        out |= (mask[..., 0] if mask.ndim == 3 else mask) > 127
    return np.where(out, np.uint8(255), np.uint8(0))


def face_square(person, width, height, pad=0.35):
    """(x0, y0, x1, y1): the square around a person's face keypoints (or, without them, the head
    joints: nose, eyes, ears) in its pixels, however small; None when no head point shows."""
    points = person.face[person.face[:, 2] > 0]
    if len(points) < 2:
        head = person.body[[0, 14, 15, 16, 17]]
        points, pad = head[head[:, 2] > 0], pad * 2
    if len(points) < 2:
        return None
    xs, ys = points[:, 0], points[:, 1]
    side = max(np.ptp(xs), np.ptp(ys), 2.0) * (1 + 2 * pad)
    cx, cy = (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2
    x0, y0 = max(0, int(np.floor(cx - side / 2))), max(0, int(np.floor(cy - side / 2)))
    x1, y1 = min(width, int(np.ceil(cx + side / 2))), min(height, int(np.ceil(cy + side / 2)))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def face_crop(picture, people, side=FACE_SIDE):
    """The square around the largest face of `people` (keypoints.Person, in the picture's pixels)
    cut from `picture` and brought to `side` (nearest, to keep drawn lines crisp), or a black
    square when no face shows."""
    h, w = picture.shape[:2]
    boxes = [b for b in (face_square(p, w, h) for p in people) if b]
    if not boxes:
        return np.zeros((side, side, 3), np.uint8)
    x0, y0, x1, y1 = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    crop = picture[y0:y1, x0:x1, :3]
    ys = np.minimum(np.arange(side) * crop.shape[0] // side, crop.shape[0] - 1)
    xs = np.minimum(np.arange(side) * crop.shape[1] // side, crop.shape[1] - 1)
    return crop[ys][:, xs]


def pack_pictures(folder, manifest, limit=4):
    """Paths of a pack's pictures for a video model, best first: the front view (a whole,
    front-facing figure: what Wan-Animate animates), the faces picked as identity references,
    then the other views."""
    views = sorted(manifest.get("views", ()), key=lambda v: abs(((v.get("yaw", 0.0) + 180) % 360) - 180))
    faces = [f for f in manifest.get("faces", ()) if f.get("use_as_identity", True)]
    files = [v["file"] for v in views[:1]] + [f["file"] for f in faces] + [v["file"] for v in views[1:]]
    return [os.path.join(folder, f) for f in files][:limit]
