"""Consistency scores: identity (ArcFace cosine similarity to the character's identity pack)
and pose adherence (PCK of re-detected joints against the rig's projected joints).

Pure arithmetic on embeddings and keypoints; the models that produce them live in the
backend. A score that cannot be computed says why ("unavailable: <model>"), never a number.
"""

import math

import numpy as np

# A face pasted from a reference matches that one crop almost exactly, far above how well it
# matches the character as a whole (the pack's mean).
COPY_MIN_SIMILARITY = 0.92
COPY_MARGIN = 0.15
PCK_THRESHOLDS = (0.05, 0.1)


def unavailable(what):
    return {"status": "unavailable", "reason": f"unavailable: {what}"}


def cosine(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if a.shape != b.shape or na == 0 or nb == 0:
        raise ValueError(f"cannot compare embeddings of shapes {a.shape} and {b.shape} (or zero length)")
    return float(a @ b / (na * nb))


def identity(output_faces, pack_mean, references=()):
    """How much the output's face looks like the character.

    output_faces: embeddings of the faces found in the output; pack_mean: the identity pack's
    mean embedding; references: embeddings of the single reference crops. The output's best
    face counts. `copy_paste` flags a face that matches one reference crop far better than
    the character as a whole."""
    if pack_mean is None:
        return unavailable("the identity pack has no embedding (insightface was not installed when it was made)")
    if not output_faces:
        return {"status": "no_face", "reason": "no face found in the output", "faces": 0}
    sims = [cosine(face, pack_mean) for face in output_faces]
    best = int(np.argmax(sims))
    out = {"status": "ok", "similarity": round(sims[best], 4), "faces": len(output_faces)}
    if references:
        closest = max(cosine(output_faces[best], r) for r in references)
        out["closest_reference"] = round(closest, 4)
        out["copy_paste"] = bool(closest >= COPY_MIN_SIMILARITY and closest - sims[best] >= COPY_MARGIN)
    return out


def pairwise_identity(embeddings):
    """Identity across a sheet's faces: cosine of every pair ({"a|b": value}), mean and min."""
    named = [(n, e) for n, e in embeddings.items() if e is not None]
    if len(named) < 2:
        return unavailable("fewer than two faces with an embedding")
    pairs = {f"{a}|{b}": round(cosine(ea, eb), 4) for i, (a, ea) in enumerate(named) for b, eb in named[i + 1:]}
    values = list(pairs.values())
    return {"status": "ok", "pairs": pairs, "mean": round(float(np.mean(values)), 4), "min": round(min(values), 4)}


def pck(detected, target, thresholds=PCK_THRESHOLDS):
    """Percentage of correct keypoints: of the target's visible joints (confidence 1), the share
    the detector placed within threshold x the target person's bounding-box size (its larger
    side). detected, target: (N, 3) arrays of x, y, confidence in the same joint order; a joint
    the detector missed (confidence 0) counts as wrong."""
    detected, target = np.asarray(detected, dtype=float), np.asarray(target, dtype=float)
    if detected.shape != target.shape:
        raise ValueError(f"detected {detected.shape} and target {target.shape} joints differ")
    visible = target[:, 2] >= 1.0
    if visible.sum() < 2:
        return unavailable("fewer than two visible joints to compare")
    points = target[visible, :2]
    size = float(max(np.ptp(points[:, 0]), np.ptp(points[:, 1])))
    if size <= 0:
        return unavailable("the target joints span no area")
    found = detected[visible, 2] > 0
    dist = np.where(found, np.linalg.norm(detected[visible, :2] - points, axis=1), math.inf)
    out = {"status": "ok", "joints": int(visible.sum()), "box_size": round(size, 2)}
    for t in thresholds:
        out[f"pck@{t:g}"] = round(float((dist <= t * size).mean()), 4)
    return out


def best_match(detected_people, target):
    """The PCK of the detected person that fits the target best (a picture may hold several)."""
    if not detected_people:
        return {"status": "no_person", "reason": "the detector found no person in the output"}
    scored = [pck(person, target) for person in detected_people]
    ok = [s for s in scored if s["status"] == "ok"]
    if not ok:
        return scored[0]
    key = f"pck@{PCK_THRESHOLDS[-1]:g}"
    return max(ok, key=lambda s: (s[key], s[f"pck@{PCK_THRESHOLDS[0]:g}"]))


def appearance(output, pack_mean, views=None):
    """How much the output's region of a character looks like its pack: the cosine similarity
    of the region's appearance embedding (CLIP image embedding) to the pack's mean, and to its
    closest view (`views`: {name: embedding}). Cosines of one encoder are comparable with each
    other only: see BENCHMARKS.md for what high and low mean."""
    if pack_mean is None:
        return unavailable("the identity pack has no appearance embedding (made without the image encoder)")
    if output is None:
        return {"status": "no_region", "reason": "the character's mask is empty in the output"}
    out = {"status": "ok", "similarity": round(cosine(output, pack_mean), 4)}
    if views:
        sims = {name: cosine(output, v) for name, v in views.items()}
        best = max(sims, key=sims.get)
        out["closest_view"], out["closest_view_similarity"] = best, round(sims[best], 4)
    return out


def pairwise_appearance(embeddings):
    """Appearance across a sheet's whole views: cosine of every pair, mean and min (the views
    of one object differ by angle, so this is lower than a face's pairwise identity)."""
    named = [(n, e) for n, e in embeddings.items() if e is not None]
    if len(named) < 2:
        return unavailable("fewer than two views with an appearance embedding")
    pairs = {f"{a}|{b}": round(cosine(ea, eb), 4) for i, (a, ea) in enumerate(named) for b, eb in named[i + 1:]}
    values = list(pairs.values())
    return {"status": "ok", "pairs": pairs, "mean": round(float(np.mean(values)), 4), "min": round(min(values), 4)}
