"""The arithmetic of relighting, shared by the add-on (which renders the light reference) and the
backend (which relights with it): how a light reference travels as a PNG, a picture's luminance
re-shaded by it, how much a picture's shading agrees with it, and a light's direction in words.

A light reference is the diffuse light (Cycles' Diffuse Direct + Indirect) falling on a grey
clay version of the set and the characters, seen from the shot's camera: linear RGB (the
lights' colours), in Blender's units divided by `white` (the light that maps to full white),
a coverage (where a surface was hit at all: the sky has no light to show), and the surfaces'
normals in camera space (as normal ControlNets take them: RGB = (n + 1) x 127.5).
"""

import math

import numpy as np

LUMA = np.array([0.2126, 0.7152, 0.0722])  # Rec. 709 / sRGB primaries
WHITE_PERCENTILE = 99.5  # the light reference's white: this share of the lit pixels is no brighter
SHADOW_FLOOR = 0.03  # of the white: light never goes below this (a shadow keeps some bounce)
DETAIL_SHARE = 0.03  # without normals, the old shading is the luminance blurred over this share of the size
MAX_CHANGE = 8.0  # a pixel's luminance is changed by at most this factor either way


# ---------------------------------------------------------------------------------------------
# Colour

def srgb_to_linear(pixels):
    """uint8 sRGB -> float linear 0..1."""
    c = np.asarray(pixels, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _srgb_table(steps=65536):
    c = np.linspace(0.0, 1.0, steps)
    c = np.where(c <= 0.0031308, c * 12.92, 1.055 * np.power(c, 1 / 2.4) - 0.055)
    return np.clip(np.rint(c * 255), 0, 255).astype(np.uint8)


_SRGB = _srgb_table()  # linear in 1/65535 steps (20 times finer than sRGB's darkest level) -> 8-bit sRGB


def linear_to_srgb(linear):
    """float linear -> uint8 sRGB (clipped), through a table: a megapixel in milliseconds."""
    index = np.clip(np.asarray(linear, dtype=np.float32), 0.0, 1.0) * np.float32(len(_SRGB) - 1) + np.float32(0.5)
    return _SRGB[index.astype(np.uint16)]


def luminance(linear):
    return np.asarray(linear, dtype=np.float64)[..., :3] @ LUMA


# ---------------------------------------------------------------------------------------------
# The light reference as a PNG: sRGB-coded light / white in RGB, coverage in alpha

def white_point(light, coverage):
    """The light (luminance, Blender's units) that becomes white in the PNG: a high percentile of
    the lit surfaces, so one hot spot does not make the rest dark; 0 when nothing is lit."""
    lum = luminance(light)[coverage]
    lum = lum[lum > 0]
    return float(np.percentile(lum, WHITE_PERCENTILE)) if lum.size else 0.0


def light_picture(light, coverage, white):
    """RGBA uint8: the light (H, W, 3 linear) over `white` in sRGB, alpha 255 where a surface is."""
    if white <= 0:
        raise ValueError("white must be above 0: no light to show")
    rgb = linear_to_srgb(np.asarray(light, dtype=np.float64) / white)
    alpha = np.where(coverage, np.uint8(255), np.uint8(0))
    return np.dstack([rgb, alpha])


def light_from_picture(rgba):
    """(light H, W, 3 linear in units of the white, coverage bool) from `light_picture`'s pixels
    (an RGB picture: coverage everywhere)."""
    rgba = np.asarray(rgba)
    coverage = rgba[..., 3] > 127 if rgba.shape[-1] == 4 else np.ones(rgba.shape[:2], bool)
    return srgb_to_linear(rgba[..., :3]), coverage


def normal_picture(normals, coverage):
    """RGB uint8 of camera-space unit normals (x right, y up, z towards the camera), black where
    no surface is: the encoding of normal ControlNets (core.maps.control_maps.normal_image)."""
    encoded = np.clip(np.rint((np.asarray(normals, dtype=np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)
    return np.where(coverage[..., None], encoded, np.uint8(0))


def normals_from_picture(rgb):
    """(unit normals H, W, 3, where they are) from `normal_picture`'s pixels."""
    rgb = np.asarray(rgb)[..., :3]
    shown = rgb.any(axis=-1)
    n = rgb.astype(np.float64) / 127.5 - 1.0
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.where(length > 1e-6, n / np.maximum(length, 1e-6), 0.0), shown & (length[..., 0] > 0.5)


# ---------------------------------------------------------------------------------------------
# Blurs (numpy only): three box passes make a close Gaussian

def _box(values, radius, axis):
    if radius < 1:
        return values
    n = values.shape[axis]
    pad = [(0, 0)] * values.ndim
    pad[axis] = (radius + 1, radius)
    sums = np.cumsum(np.pad(values, pad), axis=axis)
    upper = np.take(sums, np.arange(2 * radius + 1, n + 2 * radius + 1), axis=axis)
    lower = np.take(sums, np.arange(0, n), axis=axis)
    return (upper - lower) / (2 * radius + 1)


def blur(values, sigma):
    """`values` (H, W[, C]) blurred by about a Gaussian of `sigma` pixels, zeros beyond the edges."""
    radius = int(round((math.sqrt(4 * sigma * sigma + 1) - 1) / 2)) if sigma > 0 else 0
    out = np.asarray(values, dtype=np.float64)
    for _ in range(3):
        for axis in (0, 1):
            out = _box(out, radius, axis)
    return out


def masked_blur(values, weights, sigma):
    """A blur that reads only where `weights` > 0 (normalised convolution): no value from outside
    a character's mask, or the sky, bleeds into it."""
    weights = np.asarray(weights, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    w = weights[..., None] if values.ndim == 3 else weights
    total = blur(weights, sigma)
    total = total[..., None] if values.ndim == 3 else total
    return blur(values * w, sigma) / np.maximum(total, 1e-9)


# ---------------------------------------------------------------------------------------------
# Re-shading and how well a picture agrees with a light

def _basis(n):
    """The nine second-order spherical harmonics of unit normals (N, 3): how a Lambert surface's
    shading depends on its normal under any distant light, shadows aside."""
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    return np.stack([np.ones_like(x), x, y, z, x * y, y * z, x * z, x * x - y * y, 3 * z * z - 1], axis=1)


def old_shading(lum, normals, where, segments=(), samples=200_000):
    """The picture's own shading read off the geometry: its luminance fitted (least squares) by
    the normals' second-order spherical harmonics over `where` (each of `segments`, the
    characters, fitted on its own for its shape, at the level of the shared fit so one character's
    colours do not become another's light), so the fit holds the light's shape and leaves the
    colours, texture and cast shadows to the detail. None with too few pixels."""
    together = _fit(lum, normals, where, samples)
    if together is None:
        return None
    for part in (np.asarray(s, bool) & where for s in segments):
        one = _fit(lum, normals, part, samples)
        if one is not None:  # its own light's shape, at the level the shared fit gives it (not its colours')
            fitted = one[part] * (together[part].mean() / max(one[part].mean(), 1e-6))
            together[part] = fitted
    return together


def _fit(lum, normals, where, samples):
    index = np.flatnonzero(where)
    if index.size < 64:
        return None
    if index.size > samples:  # a fit of nine numbers needs no million pixels
        index = index[np.linspace(0, index.size - 1, samples).astype(np.int64)]
    flat_n, flat_lum = normals.reshape(-1, 3), lum.reshape(-1)
    coefficients, *_ = np.linalg.lstsq(_basis(flat_n[index]), flat_lum[index], rcond=None)
    fitted = np.ones(lum.shape)
    fitted[where] = _basis(normals[where]) @ coefficients
    floor = max(0.05 * float(np.median(flat_lum[index])), 1e-4)  # a fit may dip below zero at its edges
    return np.maximum(fitted, floor)


def reshade(picture, light, coverage, region, amount=1.0, normals=None, segments=()):
    """(uint8 picture, record): `picture`'s luminance re-shaded by the light reference inside
    `region` (H, W weights 0..1: a feathered mask, or ones), where a surface was hit.

    In log luminance the picture's own shading (read off the geometry's `normals` by
    `old_shading`; without normals, its luminance blurred over DETAIL_SHARE of the picture's size
    inside the region) is replaced by the light's, `amount` of the way; what the old shading does
    not explain (colours, texture, detail) stays, the region keeps its mean brightness (the light
    decides where it is brighter or darker), the light's colour tints it as much, and no pixel
    changes by more than MAX_CHANGE either way. Pixels outside the region or the coverage are
    returned unchanged. `normals`: (unit camera-space normals H, W, 3, where they are) or None;
    `segments`: the characters' masks (each read on its own)."""
    picture = np.asarray(picture)[..., :3]
    h, w = picture.shape[:2]
    size = max(h, w)
    region = np.clip(np.asarray(region, dtype=np.float64), 0.0, 1.0) * coverage
    support = region > 0
    record = {"amount": amount, "region": round(float(support.mean()), 4)}
    if not support.any() or amount <= 0:
        return picture.copy(), dict(record, changed=False)
    linear = srgb_to_linear(picture)
    lum = np.maximum(luminance(linear), 1e-4)
    light = np.maximum(np.asarray(light, dtype=np.float64), 0.0)  # unblurred: a limb takes no light off the floor
    light_lum = luminance(light)
    floor = SHADOW_FLOOR * max(float(np.percentile(light_lum[coverage], WHITE_PERCENTILE)), 1e-6)
    log_light = np.log(np.maximum(light_lum, floor))
    fitted = old_shading(lum, normals[0], support & normals[1], segments) if normals is not None else None
    if fitted is None:
        old = np.log(np.maximum(masked_blur(lum, support, DETAIL_SHARE * size), 1e-4))
    else:
        blurred = masked_blur(lum, support, DETAIL_SHARE * size)
        old = np.log(np.where(support & normals[1], fitted, blurred).clip(1e-4))
    record["old_shading"] = "the geometry's normals" if fitted is not None else "the luminance blurred"
    weights = region / region.sum()
    delta = (log_light - (log_light * weights).sum()) - (old - (old * weights).sum())
    ratio = np.exp(np.clip(amount * delta, -math.log(MAX_CHANGE), math.log(MAX_CHANGE)))
    tint = light / np.maximum(light_lum, floor)[..., None]
    tint = np.where(light_lum[..., None] > floor, tint, 1.0) ** amount
    changed = linear * ratio[..., None] * tint
    out = linear_to_srgb(linear + (changed - linear) * region[..., None])
    out = np.where((region > 0)[..., None], out, picture)
    record.update(changed=True, mean_change=round(float(np.abs(np.log(ratio))[support].mean()), 4))
    return out, record


def agreement(picture, light, where):
    """How much `picture`'s shading agrees with the light reference: the correlation (Pearson)
    of its linear luminance with the light's luminance over the pixels `where` (H, W bool);
    None with fewer than 16 pixels or no variation in either."""
    where = np.asarray(where, bool)
    if where.sum() < 16:
        return None
    a = luminance(srgb_to_linear(np.asarray(picture)[..., :3]))[where]
    b = luminance(light)[where]
    if a.std() < 1e-9 or b.std() < 1e-9:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 4)


# ---------------------------------------------------------------------------------------------
# Words

def direction_words(direction):
    """Where a light comes from as the camera sees it, in words: `direction` points from the
    subject towards the light in camera space (x right, y up, z towards the camera)."""
    x, y, z = (float(v) for v in direction)
    length = math.sqrt(x * x + y * y + z * z)
    if length == 0:
        return "from everywhere"
    x, y, z = x / length, y / length, z / length
    vertical = "upper " if y > 0.35 else "lower " if y < -0.35 else ""
    side = "left" if x < -0.35 else "right" if x > 0.35 else ""
    if z < -0.6:
        where = f"{vertical}{side}".strip()
        return "from behind" + (f", {where}" if where else "") + " (back light)"
    if side:
        return f"from the {vertical}{side}"
    if vertical:
        return "from above" if y > 0 else "from below"
    return "from the front"


def place_words(mask):
    """Where a character stands in the picture (its mask's centre): on the left, in the middle,
    on the right."""
    xs = np.nonzero(np.asarray(mask, bool))[1]
    if not xs.size:
        return "out of the picture"
    share = xs.mean() / mask.shape[1]
    return "on the left" if share < 0.4 else "on the right" if share > 0.6 else "in the middle"
