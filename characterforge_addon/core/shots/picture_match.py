"""How close a render is to the picture it should show: both blurred a little (a render's pixel
filter and the texture's interpolation move edges by a pixel or so, which is not a wrong
colour), in linear light as a render mixes it (a minified noisy picture averages brighter than
its sRGB levels do), then the mean and percentiles of |difference| in levels (0..255)."""

import numpy as np

BLUR = 2.0  # px: the Gaussian's sigma


def blur(image, sigma=BLUR):
    """(H, W[, C]) float64: `image` blurred by a Gaussian of `sigma` pixels, edges repeated."""
    a = np.asarray(image, np.float64)
    radius = max(1, int(round(3 * sigma)))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-x ** 2 / (2 * sigma ** 2))
    kernel /= kernel.sum()
    for axis in (0, 1):
        pad = [(0, 0)] * a.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(a, pad, mode="edge")
        a = sum(k * np.take(padded, range(i, i + a.shape[axis]), axis=axis) for i, k in enumerate(kernel))
    return a


def linear(levels):
    """sRGB levels (0..255) as linear light (0..1)."""
    v = np.asarray(levels, np.float64) / 255.0
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def levels(light):
    """Linear light (0..1) as sRGB levels (0..255, not rounded)."""
    v = np.clip(light, 0.0, 1.0)
    return 255.0 * np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def difference(render, picture, where=None, sigma=BLUR):
    """{"mean", "p95", "p99"} of |render - picture| (levels, averaged over the channels), both
    blurred in linear light, over `where` (H, W bool; default everywhere)."""
    def blurred(image):
        return levels(blur(linear(image[..., :3]), sigma))
    diff = np.abs(blurred(render) - blurred(picture)).mean(-1)
    values = diff[where] if where is not None else diff.ravel()
    if values.size == 0:
        return {"mean": 0.0, "p95": 0.0, "p99": 0.0}
    return {"mean": float(values.mean()), "p95": float(np.percentile(values, 95)),
            "p99": float(np.percentile(values, 99))}
