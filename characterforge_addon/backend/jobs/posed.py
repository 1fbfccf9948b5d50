"""The posed character job: generate, score every image (identity, appearance in the character's
mask, pose adherence) and, when the job sets a minimum identity score, try new seeds until one
reaches it (keeping the best)."""

import base64

import numpy as np
from PIL import Image

from ..engine.pictures import decode_image_bytes
from . import face_pass, scoring

RETRY_SEED_STEP = 7919  # try k uses seed + k * this: far from the seeds of a batch (seed + i)


def _similarity(score):
    return score["similarity"] if score and score.get("status") == "ok" else None


def run(engine, spec, pngs, progress, cancel, face_tools, pose_detector, refine=(None, None)):
    """[(result name, pixels, metadata)] with each image's scores in its metadata. `refine`:
    (the face pass's engine or None, why it does not run)."""
    retry = spec.get("retry")
    tries = retry["max_tries"] if retry else 1
    target = scoring.identity_target(face_tools, spec, pngs.get("identity", []), decode_image_bytes)
    best, history = None, []
    for attempt in range(tries):
        seed = spec["seed"] + attempt * RETRY_SEED_STEP
        progress.stage("denoising" if attempt == 0 else f"denoising: try {attempt + 1} of {tries} (identity below "
                       f"{retry['min_identity']})")
        images = engine.posed_character(dict(spec, seed=seed), pngs, progress.step, cancel)
        passes = [refine[1]] * len(images)
        if refine[0] is not None and target[1] is not None:
            made = face_pass.run(images, dict(spec, seed=seed), pngs, refine[0], face_tools, target, progress, cancel)
            images, passes = [m[0] for m in made], [m[1] for m in made]
        progress.stage("scoring")
        identity = scoring.identity_scores(face_tools, images, target)
        pose = scoring.pose_scores(pose_detector, images, spec)
        look = scoring.appearance_scores(engine, images, [_mask(spec, images[0].shape)] * len(images),
                                         spec.get("identity"))
        results = [(pixels, seed + i, {"identity": identity[i], "pose": pose[i], "appearance": look[i]}, passes[i])
                   for i, pixels in enumerate(images)]
        found = [s for s in (_similarity(score) for score in identity) if s is not None]
        top = max(found) if found else None
        history.append({"seed": seed, "identity": top})
        if best is None or (top is not None and (best[0] is None or top > best[0])):
            best = (top, results)
        if not retry or top is None or top >= retry["min_identity"]:
            break  # good enough, or no identity score to judge by
    names = [spec["name"] if len(best[1]) == 1 else f"{spec['name']}_{i}" for i in range(len(best[1]))]
    followed, skipped = engine.steering(spec)
    maps = {"followed": followed, **({"not_followed": skipped} if skipped else {})}
    out = []
    for name, (pixels, seed, image_scores, face_record) in zip(names, best[1]):
        record = {"seed": seed, "scores": {k: v for k, v in image_scores.items() if v is not None}, "maps": maps}
        if face_record is not None:
            record["face_pass"] = face_record
        if retry:
            record["tries"] = history
        out.append((name, pixels, record))
    return out


def _mask(spec, shape):
    """The character's mask (bool, the output's size) the job sends, else None (the whole picture)."""
    if "mask" not in spec:
        return None
    image = decode_image_bytes(base64.b64decode(spec["mask"]), "mask").convert("L")
    if image.size != (shape[1], shape[0]):
        image = image.resize((shape[1], shape[0]), Image.NEAREST)
    return np.asarray(image) > 127
