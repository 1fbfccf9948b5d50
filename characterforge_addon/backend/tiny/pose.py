"""The test profiles' pose detector: controlnet_aux's own OpenposeDetector (its body-part
association, hand boxes, peak finding and result format) around stand-in networks that read
drawn OpenPose pictures rather than photos: each joint found by its colour, each limb along its
coloured stroke, each hand point by the colours of the finger segments it joins. Nothing is
learned and nothing is downloaded; the stand-ins answer in the networks' own output layout
(heatmaps and part affinity fields at 1/8 of the input), so everything after them is the real
detector's code. Faces are not read (70 white dots carry no order). On a photo or on noise it
finds whatever it finds, usually nobody."""

import numpy as np
import torch
from scipy import ndimage

from ...core.rig import skeleton as sk

STRIDE = 8
JOINT_TOLERANCE = 60.0   # RGB distance to a joint's colour (full intensity)
LIMB_TOLERANCE = 45.0    # ... to a limb's colour (drawn at LIMB_INTENSITY)
EDGE_TOLERANCE = 35.0    # ... to a hand segment's colour (neighbours differ by about 75)
# controlnet_aux body.py: the part affinity field channels (minus 19) of each limb, in its order
PAF_CHANNELS = ((31, 32), (39, 40), (33, 34), (35, 36), (41, 42), (43, 44), (19, 20), (21, 22), (23, 24),
                (25, 26), (27, 28), (29, 30), (47, 48), (49, 50), (53, 54), (51, 52), (55, 56))


def _rgb(x):
    """The network input back in RGB 0-255 (controlnet_aux feeds BGR / 256 - 0.5)."""
    return ((x[0].permute(1, 2, 0).cpu().numpy().astype(np.float64) + 0.5) * 256.0)[:, :, ::-1]


def _near(img, color, tolerance):
    return np.linalg.norm(img - np.asarray(color, dtype=np.float64), axis=2) < tolerance


def _blobs(mask, min_pixels=2):
    """(x, y, pixels) of each connected patch of `mask`, x, y its centre in pixel coordinates."""
    labels, count = ndimage.label(mask)
    out = []
    for i in range(1, count + 1):
        ys, xs = np.nonzero(labels == i)
        if len(xs) >= min_pixels:
            out.append((xs.mean() + 0.5, ys.mean() + 0.5, len(xs)))
    return out


def _bump(shape, x, y, sigma=1.0):
    """A gaussian in output cells peaking where pixel (x, y) lands after the 8x upsampling."""
    u, v = x / STRIDE - 0.5, y / STRIDE - 0.5
    rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
    return np.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2 * sigma * sigma))


class _StandIn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # controlnet_aux asks a parameter for the device


class BodyReader(_StandIn):
    """In bodypose_model's place: (part affinity fields: 38 channels, heatmaps: 19)."""

    def forward(self, x):
        img = _rgb(x)
        h, w = img.shape[:2]
        shape = (h // STRIDE, w // STRIDE)
        heat, paf = np.zeros((19,) + shape), np.zeros((38,) + shape)
        joints = [_blobs(_near(img, color, JOINT_TOLERANCE)) for color in sk.BODY_COLORS[:len(sk.BODY_JOINTS)]]
        self._wrists_under_hands(img, joints)
        for j, found in enumerate(joints):
            for bx, by, _ in found:
                heat[j] = np.maximum(heat[j], _bump(shape, bx, by))
        heat[18] = 1.0 - heat[:18].max(axis=0)
        rows, cols = np.mgrid[0:shape[0], 0:shape[1]]
        centres = np.stack([(cols + 0.5) * STRIDE, (rows + 0.5) * STRIDE], axis=-1)
        for k, (a, b) in enumerate(sk.BODY_LIMBS):
            stroke = _near(img, np.asarray(sk.BODY_COLORS[k]) * sk.LIMB_INTENSITY, LIMB_TOLERANCE)
            for ax, ay, _ in joints[a]:
                for bx, by, _ in joints[b]:
                    t = np.linspace(0.2, 0.8, 13)
                    xs = np.clip((ax + t * (bx - ax)).astype(int), 0, w - 1)
                    ys = np.clip((ay + t * (by - ay)).astype(int), 0, h - 1)
                    if stroke[ys, xs].mean() < 0.6:
                        continue  # no stroke of this limb's colour joins the two
                    seg = np.array([bx - ax, by - ay])
                    length = np.linalg.norm(seg)
                    if length < 1e-6:
                        continue
                    along = np.clip(((centres - (ax, ay)) @ seg) / (length * length), 0.0, 1.0)
                    dist = np.linalg.norm(centres - ((ax, ay) + along[..., None] * seg), axis=-1)
                    band = dist <= 1.25 * STRIDE
                    cx, cy = PAF_CHANNELS[k][0] - 19, PAF_CHANNELS[k][1] - 19
                    paf[cx][band], paf[cy][band] = seg[0] / length, seg[1] / length
        return torch.from_numpy(paf[None]).float(), torch.from_numpy(heat[None]).float()


    @staticmethod
    def _wrists_under_hands(img, joints):
        """A drawn hand covers the body's wrist: the far end of the forearm's stroke (from the
        elbow) stands in for it."""
        for limb, elbow, wrist in ((3, 3, 4), (5, 6, 7)):
            if joints[wrist] or len(joints[elbow]) != 1:
                continue
            labels, count = ndimage.label(_near(img, np.asarray(sk.BODY_COLORS[limb]) * sk.LIMB_INTENSITY,
                                                LIMB_TOLERANCE), structure=np.ones((3, 3)))
            ex, ey, _ = joints[elbow][0]
            best = None  # the largest stroke starting at this elbow (not a stray pixel of its colour)
            for i in range(1, count + 1):
                ys, xs = np.nonzero(labels == i)
                touches = np.min((xs + 0.5 - ex) ** 2 + (ys + 0.5 - ey) ** 2) <= 16
                if touches and (best is None or len(xs) > len(best[0])):
                    best = (xs, ys)
            if best is None or len(best[0]) < 3:
                continue
            xs, ys = best
            far = np.argmax((xs + 0.5 - ex) ** 2 + (ys + 0.5 - ey) ** 2)
            joints[wrist].append((xs[far] + 0.5, ys[far] + 0.5, 1))


def _edge_colors():
    return [np.asarray(sk.hand_edge_color(e)) for e in range(len(sk.HAND_EDGES))]


def _edge_masks(img):
    """Each hand segment's pixels: nearest to its colour (among the segments' and the dots'
    colours, some only 25 apart) and near enough."""
    palette = np.array(_edge_colors() + [np.asarray(sk.HAND_POINT_COLOR, dtype=np.float64)])
    dist = np.linalg.norm(img[:, :, None, :] - palette[None, None], axis=-1)
    nearest = dist.argmin(axis=-1)
    close = dist.min(axis=-1) < EDGE_TOLERANCE
    return [close & (nearest == e) for e in range(len(sk.HAND_EDGES))]


def _segment_ends(mask):
    """The two ends of a drawn straight segment (its pixels' extremes along their main axis)."""
    ys, xs = np.nonzero(mask)
    if len(xs) < 3:
        return None
    pts = np.column_stack([xs + 0.5, ys + 0.5])
    centre = pts.mean(axis=0)
    axis = np.linalg.svd(pts - centre, full_matrices=False)[2][0]
    t = (pts - centre) @ axis
    return centre + t.min() * axis, centre + t.max() * axis


class HandReader(_StandIn):
    """In handpose_model's place: 22 heatmaps (21 points, background). Each finger segment is
    drawn in a colour of its own, so the points are where the segments end: the wrist where the
    five palm segments meet, each knuckle where its two segments meet, a tip at its segment's
    far end (the dots drawn over the ends may merge in a small hand; the segments do not)."""

    def forward(self, x):
        img = _rgb(x)
        h, w = img.shape[:2]
        shape = (h // STRIDE, w // STRIDE)
        heat = np.zeros((22,) + shape)
        ends = [_segment_ends(mask) for mask in _edge_masks(img)]
        points = {}
        palm = [ends[e] for e in (0, 4, 8, 12, 16) if ends[e] is not None]
        if len(palm) >= 2:  # each palm segment's end nearest the others' is the wrist
            wrist_ends = []
            for i, seg in enumerate(palm):
                others = [q for j, other in enumerate(palm) if j != i for q in other]
                wrist_ends.append(min(seg, key=lambda q: min(np.linalg.norm(q - o) for o in others)))
            points[0] = np.mean(wrist_ends, axis=0)
        for f in range(5):
            for k in range(1, 5):
                p = 4 * f + k
                seg = ends[p - 1]  # from the point before to p
                parent = points.get(0 if k == 1 else p - 1)
                if seg is None or parent is None:
                    break
                child = max(seg, key=lambda q: np.linalg.norm(q - parent))
                nxt = ends[p] if k < 4 else None
                if nxt is not None:  # a knuckle: between this segment's end and the next one's start
                    child = (child + min(nxt, key=lambda q: np.linalg.norm(q - child))) / 2.0
                points[p] = child
        for p, (px, py) in points.items():
            heat[p] = _bump(shape, px, py)
        heat[21] = 1.0 - heat[:21].max(axis=0)
        return torch.from_numpy(heat[None]).float()


class FaceBlank(_StandIn):
    """In FaceNet's place: no face (its 70 identical white dots cannot be told apart)."""

    def forward(self, x):
        return [torch.zeros((1, 71, x.shape[2] // STRIDE, x.shape[3] // STRIDE))]


def detector():
    """controlnet_aux's OpenposeDetector with the stand-ins in place of its networks."""
    from controlnet_aux.open_pose import Body, Face, Hand, OpenposeDetector
    from controlnet_aux.open_pose.face import params

    body, hand, face = Body.__new__(Body), Hand.__new__(Hand), Face.__new__(Face)
    body.model, hand.model, face.model = BodyReader().eval(), HandReader().eval(), FaceBlank().eval()
    face.inference_size, face.sigma, face.threshold = (params["inference_img_size"], params["gaussian_sigma"],
                                                       params["heatmap_peak_thresh"])
    return OpenposeDetector(body, hand, face)
