"""The shot job: the characters put into the background so they look lit by it. A character is a
humanoid (OpenPose, face identity), a creature or an object (its shape maps, its appearance):
each keeps its identity in its own mask only and gets its own prompt and pass.

In place (default): the background is inpainted inside the characters' masks (grown, then
feathered) with the combined OpenPose map (and hand depth) and each character's identity
limited to its own mask; with several characters (or one with a trained LoRA) each then gets
a pass of its own prompt, identity and LoRA in its own mask. Cut-out: the characters are generated on a plain ground, cut out by their
masks (a character with a LoRA redrawn in its mask first), pasted at their place and
harmonized by a low-strength img2img pass. Then each hand is
redrawn from the hand depth map. The background outside the grown masks is never changed.
"""

import base64
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from ...core.characters import kinds
from ...core.errors import UserError
from ...core.spec.job_spec import CONTROL_KINDS
from ..engine.adapters import Region
from ..engine.pictures import decode_image_bytes
from . import redraw, scoring

HAND_GROW = 1.2
HAND_SUFFIX = ", detailed hands, five fingers, natural hand pose"
HAND_NEGATIVE = "extra fingers, missing fingers, fused fingers, deformed hands"
CUTOUT_GROUND = ", full body, plain light grey studio background"
CUTOUT_EDGE = 3  # pixels the cut-out reaches past the rig's silhouette (hair, loose clothes)


def cover(image, width, height):
    """`image` scaled to cover width x height and cropped in the middle (as the background plane shows it)."""
    w, h = image.size
    scale = max(width / w, height / h)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    image = image.resize(size, Image.LANCZOS)
    left, top = (size[0] - width) // 2, (size[1] - height) // 2
    return np.asarray(image.crop((left, top, left + width, top + height)).convert("RGB"))


def grow(mask, pixels):
    """`mask` (bool HxW) dilated by a square of `pixels` each side (a separable running max)."""
    if pixels <= 0:
        return mask.copy()
    out = mask
    for axis in (0, 1):
        padded = np.pad(out, [(pixels, pixels) if a == axis else (0, 0) for a in (0, 1)])
        out = np.lib.stride_tricks.sliding_window_view(padded, 2 * pixels + 1, axis=axis).any(axis=-1)
    return out


def feathered(mask, pixels):
    """Blend weights 0..1 from a bool mask, softened over about `pixels`, never outside mask grown by `pixels`."""
    soft = Image.fromarray(np.where(mask, np.uint8(255), np.uint8(0)))
    if pixels > 0:
        soft = soft.filter(ImageFilter.GaussianBlur(pixels / 2))
    alpha = np.asarray(soft, dtype=np.float64) / 255.0
    return alpha * grow(mask, pixels)


def paste(under, over, alpha):
    blended = under.astype(np.float64) * (1 - alpha[..., None]) + over.astype(np.float64) * alpha[..., None]
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def mask_image(mask):
    return Image.fromarray(np.where(mask, np.uint8(255), np.uint8(0)))


def decode_picture(png, field, size=None, mode="RGB"):
    image = decode_image_bytes(png, field).convert(mode)
    return image.resize(size, Image.NEAREST if mode == "L" else Image.LANCZOS) if size and image.size != size else image


def _others(masks, i):
    """Every character's mask but the i-th, joined."""
    rest = [m for j, m in enumerate(masks) if j != i]
    return np.logical_or.reduce(rest) if rest else np.zeros_like(masks[i])


@dataclass
class Shot:
    """A shot job's decoded inputs."""
    spec: dict
    background: np.ndarray
    maps: dict        # control name -> HxWx3
    masks: list       # per character, bool HxW
    references: list  # per character, PIL images
    regions: list     # per character, its identity and where it acts (adapters.Region)
    previous: tuple = None  # a moving shot's later frame: (warped previous frame, holes, strength)

    @property
    def union(self):
        return np.logical_or.reduce(self.masks)

    def carried(self, strength):
        """A later pass's strength: in a moving shot's later frame no more than the frame's own."""
        return strength if self.previous is None else min(strength, self.previous[2])

    def first_references(self):
        """Each character's first picture: the identity of families that take pictures, not adapters."""
        return [refs[0] for refs in self.references if refs]

    def steering(self):
        return [(n, Image.fromarray(self.maps[n])) for n in ("openpose", "depth", "normal", "lineart")
                if n in self.maps]

    def own_steering(self, character):
        """The maps a character's own pass follows: a humanoid its pose (the first map, as
        before), a creature or an object its shape (depth, normal, line art)."""
        if kinds.is_humanoid(character.get("kind", kinds.HUMANOID)):
            return self.steering()[:1]
        return [(n, im) for n, im in self.steering() if n in kinds.SHAPE_MAPS]

    def identity(self, engine):
        """The regional identity arguments for a pipeline, or None when no character has one."""
        if not any(self.references):
            return None
        h, w = self.background.shape[:2]
        return lambda pipe: engine.adapters.regional_kwargs(pipe, self.spec, self.regions, h, w)


def _inputs(engine, spec, pngs):
    w, h = spec["width"], spec["height"]
    background = cover(decode_picture(base64.b64decode(spec["background"]["image"]), "background.image"), w, h)
    maps = {n: np.asarray(decode_picture(pngs[n], f"controls.{n}.image", (w, h)))
            for n in CONTROL_KINDS if n in pngs}
    characters = spec["characters"]
    masks = [np.asarray(decode_picture(base64.b64decode(ch["mask"]), f"characters[{i}].mask", (w, h), "L")) > 127
             for i, ch in enumerate(characters)]
    if not np.logical_or.reduce(masks).any():
        raise UserError("the characters' masks are empty: no rig is in the camera's view; frame them and try again")
    references = [[decode_picture(base64.b64decode(b), f"characters[{i}].identity.images[{j}]")
                   for j, b in enumerate(ch["identity"]["images"])] if "identity" in ch else []
                  for i, ch in enumerate(characters)]
    # Each character's identity acts in its own mask, grown but never over another character.
    regions = []
    for i, ch in enumerate(characters):
        identity = ch.get("identity", {})
        area = grow(masks[i], spec["composite"]["grow"]) & ~_others(masks, i)
        look = identity.get("appearance")
        if kinds.is_humanoid(ch["kind"]):
            regions.append(Region(references[i], _embedding(engine, identity, references[i]),
                                  identity.get("scale", 0.0), identity.get("faceid_scale", 0.0), mask_image(area),
                                  look and look["embedding"], look["scale"] if look else 0.0))
        else:  # no face: its pictures steer no face adapter; its look is its identity
            regions.append(Region(references[i], None, 0.0, 0.0, mask_image(area), look and look["embedding"],
                                  look["scale"] if look else 0.0))
    previous = None
    if "previous" in spec:
        p = spec["previous"]
        previous = (cover(decode_picture(base64.b64decode(p["image"]), "previous.image"), w, h),
                    np.asarray(decode_picture(base64.b64decode(p["holes"]), "previous.holes", (w, h), "L")) > 127,
                    p["strength"])
    return Shot(spec, background, maps, masks, references, regions, previous)


def _in_place(engine, shot, job, progress, cancel):
    """The characters inpainted into the background; with several (or with a LoRA), each redrawn
    in its own mask with its own prompt, identity and LoRA."""
    spec, c = shot.spec, shot.spec["composite"]
    grown = grow(shot.union, c["grow"])
    start, strength = shot.background, c["strength"]
    if shot.previous is not None:
        start, strength = _carried_over(engine, shot, job, grown, progress, cancel)
    progress.stage("characters in place")
    made = engine.inpaint(job, start, mask_image(grown), strength, shot.first_references(), spec["seed"],
                          "", progress.step, cancel, controls=shot.steering(), identity=shot.identity(engine))
    image = paste(shot.background, made, feathered(grown, c["feather"]))
    several = len(spec["characters"]) > 1
    return _own_passes(engine, shot, image, progress, cancel, lambda ch: several or "lora" in ch.get("identity", {}))


def _carried_over(engine, shot, job, grown, progress, cancel):
    """(start picture, strength) of a moving shot's later frame: the previous frame warped onto
    this one, the background's own pixels where it has nothing to carry over, and the
    characters' newly visible parts generated in full first."""
    carried, holes, strength = shot.previous
    start = np.where(holes[..., None], shot.background, carried)
    hidden = grow(holes & grown, 4)
    if (holes & grown).any():
        progress.stage("newly visible parts")
        made = engine.inpaint(job, start, mask_image(hidden), 1.0, shot.first_references(), shot.spec["seed"], "",
                              progress.step, cancel, controls=shot.steering(), identity=shot.identity(engine))
        start = paste(start, made, feathered(hidden, 2))
    return start, strength


def _own_passes(engine, shot, image, progress, cancel, wanted):
    """Each character `wanted(character)` picks redrawn in its own mask with its own prompt,
    identity and LoRA (a LoRA acts on one character only here)."""
    spec, c = shot.spec, shot.spec["composite"]
    characters = [(i, ch) for i, ch in enumerate(spec["characters"]) if wanted(ch)]
    strength = shot.carried(c["character_strength"])
    if strength == 0:
        return image
    for n, (i, ch) in enumerate(characters):
        progress.stage(f"character {n + 1} of {len(characters)}: {ch['name']}")
        identity = ch.get("identity", {"scale": 0.0})
        if not kinds.is_humanoid(ch["kind"]):  # a creature's or object's pictures steer no face adapter
            identity = {k: v for k, v in identity.items() if k != "embedding"} | {"scale": 0.0, "faceid_scale": 0.0}
        own = dict(spec, prompt=", ".join(p for p in (spec["prompt"].strip(), ch["prompt"].strip()) if p),
                   identity=identity)
        region = grow(shot.masks[i], max(2, c["grow"] // 3))
        made = engine.inpaint(own, image, mask_image(region), strength, shot.references[i],
                              spec["seed"] + 11 + i, "", progress.step, cancel, controls=shot.own_steering(ch))
        image = paste(image, made, feathered(region, max(2, c["feather"] // 2)))
    return image


def _cut_out(engine, shot, job, progress, cancel):
    """(composite, [(character name, RGBA)]): the characters generated on a plain ground, cut
    out by their masks, pasted and harmonized."""
    spec, c = shot.spec, shot.spec["composite"]
    h, w = shot.background.shape[:2]
    progress.stage("characters")
    ground = np.full((h, w, 3), 200, dtype=np.uint8)
    made = engine.inpaint(dict(job, prompt=job["prompt"] + CUTOUT_GROUND), ground, mask_image(np.ones((h, w), bool)),
                          1.0, shot.first_references(), spec["seed"], "", progress.step, cancel,
                          controls=shot.steering(), identity=shot.identity(engine))
    made = _own_passes(engine, shot, made, progress, cancel, lambda ch: "lora" in ch.get("identity", {}))
    pasted = paste(shot.background, made, feathered(grow(shot.union, CUTOUT_EDGE), 2))
    image = pasted
    if c["harmonize"] > 0:
        progress.stage("harmonizing")
        lit = engine.img2img(job, pasted, c["harmonize"], [], spec["seed"] + 1, progress.step, cancel)
        image = paste(pasted, lit, feathered(grow(shot.union, c["grow"]), c["feather"]))
    cutouts = []
    for i, ch in enumerate(spec["characters"]):  # one per character, for its own depth
        alpha = feathered(grow(shot.masks[i], CUTOUT_EDGE) & ~_others(shot.masks, i), 2)
        cutouts.append((ch["name"], np.dstack([made, np.clip(np.rint(alpha * 255), 0, 255).astype(np.uint8)])))
    return image, cutouts


def _fix_hands(engine, shot, job, image, progress, cancel):
    """(image with each hand redrawn from the hand depth map, the record of it)."""
    spec = shot.spec
    hands = {"enabled": spec["hands"]["enabled"], "boxes": spec["hands"]["boxes"], "redrawn": []}
    strength = shot.carried(spec["hands"]["strength"])
    if not spec["hands"]["enabled"] or not spec["hands"]["boxes"] or strength == 0:
        return image, hands
    hand_job = dict(job, negative_prompt=", ".join(p for p in (spec["negative_prompt"], HAND_NEGATIVE) if p))
    hand_maps = [("hand_depth", shot.maps["hand_depth"])] if "hand_depth" in shot.maps else []
    hands["control"] = "hand_depth" if hand_maps else "none (no hand depth map sent)"
    if "batched_hands" in engine.speedups and engine.family.batched_inpaint:
        boxes = spec["hands"]["boxes"]
        progress.stage(f"hands: {len(boxes)} in one batch")
        image, changed = redraw.redraw_boxes(engine, image, boxes, hand_job, strength,
                                             spec["seed"] + 200, progress, cancel, engine.profile.native_size,
                                             HAND_GROW, HAND_SUFFIX, controls=hand_maps)
        hands["redrawn"] = [c for c in changed if c]
        return image, hands
    for i, box in enumerate(spec["hands"]["boxes"]):
        progress.stage(f"hands: hand {i + 1} of {len(spec['hands']['boxes'])}")
        image, where = redraw.redraw_box(engine, image, box, hand_job, strength, spec["seed"] + 200 + i,
                                         [], progress, cancel, engine.profile.native_size, HAND_GROW, HAND_SUFFIX,
                                         controls=hand_maps)
        if where:
            hands["redrawn"].append(where["changed_within"])
    return image, hands


def run(engine, spec, pngs, progress, cancel, face_tools, pose_detector):
    """[(name, pixels, record)]: the composite, and in cut-out mode each character with alpha."""
    shot = _inputs(engine, spec, pngs)
    job = dict(spec, prompt=", ".join(p for p in [spec["prompt"].strip()] + [ch["prompt"].strip()
                                                                             for ch in spec["characters"]] if p))
    followed, skipped = engine.steering(spec)
    record = {"mode": spec["composite"]["mode"], "characters": [ch["name"] for ch in spec["characters"]],
              "composite": spec["composite"],
              "maps": {"followed": followed, **({"not_followed": skipped} if skipped else {})}}
    if shot.previous is not None:
        _, holes, strength = shot.previous
        record["previous"] = {"strength": strength, "holes": round(float(holes.mean()), 4),
                              "newly_visible": round(float((holes & shot.union).mean()), 4)}
    cutouts = []
    if spec["composite"]["mode"] == "inpaint":
        image = _in_place(engine, shot, job, progress, cancel)
    else:
        image, cutouts = _cut_out(engine, shot, job, progress, cancel)
    image, hands = _fix_hands(engine, shot, job, image, progress, cancel)
    progress.stage("scoring")
    record.update(hands=hands, scores=_scores(engine, spec, image, shot.masks, face_tools, pose_detector))
    return [(spec["name"], image, record)] + [(f"{spec['name']}_cutout_{name}", rgba,
                                               dict(record, layer="cutout", character=name)) for name, rgba in cutouts]


def _embedding(engine, identity, references):
    """The character's FaceID vector: its pack's mean, else found in its references."""
    if not references or not engine.family.roles_for("identity"):  # no adapters: the pictures are the identity
        return None
    engine.adapters.load()
    return engine.identity_embedding({"identity": identity}, references) if engine.adapters.faceid else None


def _scores(engine, spec, image, masks, face_tools, pose_detector):
    """Pose adherence of every rig, each humanoid's identity on the faces inside its mask, and
    every character's appearance inside its mask."""
    out = {}
    pose = scoring.pose_scores(pose_detector, [image], spec)[0] if pose_detector else None
    if pose is not None:
        out["pose"] = pose
    looks = {ch["name"]: scoring.appearance_scores(engine, [image], [mask], ch["identity"])[0]
             for ch, mask in zip(spec["characters"], masks) if "appearance" in ch.get("identity", {})}
    if looks:
        ok = [s for s in looks.values() if s and s.get("status") == "ok"]
        out["appearance"] = min(ok, key=lambda s: s["similarity"]) if ok else next(iter(looks.values()))
        out["appearance_by_character"] = looks
    by_character = {}
    for ch, mask in zip(spec["characters"], masks):
        if "identity" not in ch or not kinds.is_humanoid(ch["kind"]):
            continue
        pngs = [base64.b64decode(b) for b in ch["identity"]["images"]]
        target = scoring.identity_target(face_tools, {"identity": ch["identity"]}, pngs, decode_image_bytes)
        ys, xs = np.nonzero(mask)
        crop = image[ys.min():ys.max() + 1, xs.min():xs.max() + 1] if len(xs) else image
        by_character[ch["name"]] = scoring.identity_scores(face_tools, [np.ascontiguousarray(crop)], target)[0]
    if by_character:
        ok = [s for s in by_character.values() if s and s.get("status") == "ok"]
        out["identity"] = min(ok, key=lambda s: s["similarity"]) if ok else next(iter(by_character.values()))
        out["identity_by_character"] = by_character
    return out
