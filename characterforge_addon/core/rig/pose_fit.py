"""The honest fit figure of an imported pose: the rig's own projected keypoints against the
imported ones. PCK at 0.05 of the person's size (the larger side of the box around its body
points) and the mean error in the picture's pixels, per part; plus what the import left."""

import numpy as np

PARTS = (("body", "body"), ("hands", ("left_hand", "right_hand")), ("face", "face"))
THRESHOLD = 0.05


def _points(person, attrs):
    attrs = (attrs,) if isinstance(attrs, str) else attrs
    return np.concatenate([np.asarray(getattr(person, a), dtype=np.float64) for a in attrs])


def fit_figure(imported, projected, picture_scale=1.0, threshold=THRESHOLD):
    """`imported`, `projected`: people (keypoints.Person or pose_formats.ImportedPerson) in the
    same pixels; `picture_scale`: render pixels per picture pixel (errors are reported in the
    picture's). A point the file gives that the rig does not show (out of frame) counts as a
    miss. Returns {"size", part: {"points", "pck", "mean_px"}} for the parts the file gives."""
    body = np.asarray(imported.body, dtype=np.float64)
    seen = body[body[:, 2] > 0, :2]
    if len(seen) < 2:
        seen = np.concatenate([_points(imported, a)[:, :2][_points(imported, a)[:, 2] > 0] for _, a in PARTS])
    size = float(max(np.ptp(seen[:, 0]), np.ptp(seen[:, 1]))) if len(seen) >= 2 else 0.0
    out = {"size": round(size / picture_scale, 1), "threshold": threshold}
    for name, attrs in PARTS:
        target, got = _points(imported, attrs), _points(projected, attrs)
        given = target[:, 2] > 0
        if not given.any():
            continue
        found = given & (got[:, 2] > 0)
        dist = np.linalg.norm(got[:, :2] - target[:, :2], axis=1)
        hits = found & (dist <= threshold * size)
        out[name] = {"points": int(given.sum()), "pck": round(float(hits.sum() / given.sum()), 4),
                     "mean_px": round(float(dist[found].mean() / picture_scale), 2) if found.any() else None,
                     "unseen": int((given & ~found).sum())}
    return out


def describe(fit):
    """One line for the panel and the console, e.g. 'body PCK@0.05 0.97 (18 points, mean 2.1 px)'."""
    parts = []
    for name, _ in PARTS:
        if name in fit:
            f = fit[name]
            mean = f"mean {f['mean_px']:.1f} px" if f["mean_px"] is not None else "none in frame"
            parts.append(f"{name} PCK@{fit['threshold']:g} {f['pck']:.2f} ({f['points']} points, {mean})")
    return "; ".join(parts) or "no points to compare"


def left_lines(solution):
    """What the import did not place, and why; what it kept; its notes."""
    lines = []
    if solution.unplaced:
        lines.append("not placed: " + ", ".join(f"{what} ({why})" for what, why in solution.unplaced))
    if solution.kept:
        lines.append("kept as they were (not in the file): " + ", ".join(solution.kept))
    lines += solution.notes
    return lines
