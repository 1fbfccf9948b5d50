"""The `animation` job: one segment of an animated shot, made by the profile's video family from
the rig's control videos (core.animation_spec). Its pictures come from the picture store (sent
before the job); its frames go out one PNG each, named by the shot's frame number, the carried
ones (made by the segment before) left out."""

from dataclasses import dataclass, field

from PIL import Image, ImageFilter

from ...core.errors import UserError
from ...core.spec.spec_fields import JobSpecError
from ..engine import metadata
from ..engine.pictures import decode_image_bytes

SAMPLER = "UniPC (the model's own)"


@dataclass
class Clip:
    """A segment as the family runs it: each frame's maps at the job's size (masks "L", grown),
    the carried frames, the character's pictures."""
    spec: dict
    frames: list = field(default_factory=list)
    previous: list = field(default_factory=list)
    references: list = field(default_factory=list)

    @property
    def width(self):
        return self.spec["width"]

    @property
    def height(self):
        return self.spec["height"]


def check(job, profile, family, pictures):
    """Before queueing: every picture the job names is here and the family can make the segment
    (its window, the frames it carries over, a picture of the character where it needs one)."""
    pictures.check_named(job)
    problem = family.window_problem(len(job["frames"]), len(job["previous"]))
    if problem:
        raise JobSpecError("frames", f"profile {profile.name}: {problem[0]}", problem[1])
    if family.needs_picture and not job["references"]:
        raise JobSpecError("references", f"profile {profile.name} animates a picture of the character and none is "
                           "given", "let the rig play a character (its pack's pictures go along), or use wan-vace")


def load_clip(spec, pictures):
    """The segment's pictures from the picture store, as the family takes them."""
    size = (spec["width"], spec["height"])

    def picture(name, field, mode="RGB", resample=Image.BILINEAR, resize=True):
        image = decode_image_bytes(pictures.read_named(name, field), field)
        image = image.convert(mode) if mode != "RGB" else image
        return image.resize(size, resample) if resize and image.size != size else image

    grow = spec["grow"] * 2 + 1
    frames = []
    for i, names in enumerate(spec["frames"]):
        frame = {}
        for key, name in names.items():
            where = f"frames[{i}].{key}"
            if key == "mask":
                mask = picture(name, where, "L", Image.NEAREST).point(lambda v: 255 if v > 127 else 0)
                frame[key] = mask.filter(ImageFilter.MaxFilter(grow)) if spec["grow"] else mask
            elif key == "face":
                frame[key] = picture(name, where, resize=False)  # the family brings it to its encoder's size
            else:
                frame[key] = picture(name, where, resample=Image.LANCZOS if key == "background" else Image.BILINEAR)
        frames.append(frame)
    previous = [picture(n, f"previous[{i}]", resample=Image.LANCZOS) for i, n in enumerate(spec["previous"])]
    references = [picture(n, f"references[{i}]", resize=False) for i, n in enumerate(spec["references"])]
    return Clip(spec, frames, previous, references)


def summary(spec):
    """The spec as each frame's PNG records it: the pictures counted, not listed."""
    out = {k: v for k, v in spec.items() if k not in ("frames", "previous", "references")}
    return dict(out, controls={}, frames=len(spec["frames"]), previous=len(spec["previous"]),
                references=len(spec["references"]), maps=sorted(spec["frames"][0]))


def run(engine, spec, progress, event, emit, pictures, extra=None):
    """Make the segment: each new frame emitted as `<name>_<frame number>` with its record."""
    progress.stage("loading models")
    engine.base()
    clip = load_clip(spec, pictures)
    family = engine.family
    carried = len(clip.previous)
    made = family.frames_for(len(clip.frames), carried)
    progress.stage(f"denoising {len(clip.frames)} frames ({carried} carried over, {made} made by the model)")
    frames = family.animate(engine, clip, progress.step, event)
    if len(frames) != len(clip.frames):
        raise UserError(f"the model made {len(frames)} frames for a segment of {len(clip.frames)}")
    progress.stage("saving")
    ran = summary(spec)
    first = spec["segment"]["first_frame"]
    record = {"memory_mode": engine.memory, "text_encoder": engine.text_encoder_place, "weights": engine.weights,
              "vae_tiling": engine.vae_tiling, "device": engine.device, "dtype": str(engine.dtype),
              "segment": dict(spec["segment"], carried=carried, frames=len(clip.frames), model_frames=made),
              "stage_seconds": progress.timings, **(extra or {})}
    for i, pixels in enumerate(frames[carried:], start=carried):
        number = first + i
        emit(f"{spec['name']}_{number:04d}", metadata.png_with_metadata(
            pixels, ran, spec["seed"], engine.profile, SAMPLER, dict(record, frame=number)))
