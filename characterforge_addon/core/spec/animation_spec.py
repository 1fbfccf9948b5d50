"""The `animation` job: one segment of a shot made by a video model from control videos the rig
renders frame by frame (OpenPose with hands and face, depth, the characters' masks, crops
around the rig's faces, the painted set seen from the moving camera), the character's pictures
keeping who it is. A shot longer than the model's window is made in overlapping segments: the
first frames of a segment after the first are the previous segment's last results, carried
over the model's own way (`plan_segments`). Segments are the unit of resume and scale-out.

Frames travel as files: each picture is sent once (`PUT /pictures/<sha256>`, the add-on does it
before the job) and the job names it by its SHA-256, so a segment of 81 frames of five maps
stays a small job and a frame shared by two segments (the carried ones) is sent once.

What no single field says follows the table (`check`); what the model can make (its window,
how many frames it carries over) the backend checks before queueing, for the profile's family.
"""

import hashlib

from .spec_fields import Choice, Const, Integer, JobSpecError, ListOf, Name, Number, Obj, Pattern, Text

MEDIA_PATTERN = r"^[0-9a-f]{64}$"
LIMITS = {
    "max_frames": 129,           # frames one job holds (the model's own window is smaller: the backend says)
    "max_side": 1280,
    "max_pixels": 1280 * 720,
    "max_carried": 32,
    "max_references": 4,
    "max_media_bytes": 16 * 2**20,  # one picture sent with PUT /pictures
    "max_shot_frames": 100_000,
}
# What each video family makes in one pass and how many frames it carries over from the segment
# before (its default first): the backend's family checks a job by these, the add-on plans a
# shot's segments by them.
FAMILY_WINDOWS = {"wan_vace": {"window": 81, "carries": tuple(range(1, 33)), "carry": 5},
                  "wan_animate": {"window": 77, "carries": (1, 5), "carry": 5}}
MAPS = ("openpose", "depth", "mask", "face", "background")
CONTROLS = ("openpose", "depth")  # the map that steers the motion (VACE takes one; Animate the pose)
MODES = ("replace", "animate")    # replace: the set's video kept outside the masks; animate: all drawn
PICTURE_FIX = "send the picture first (PUT /pictures/SHA256); the add-on does this itself"


def media_field(doc, **kw):
    return Pattern(MEDIA_PATTERN, 64, "the SHA-256 of a picture sent before (PUT /pictures/SHA256)", doc, fix=PICTURE_FIX,
                   **kw)


def media_name(data):
    """The name a picture travels under: its bytes' SHA-256."""
    return hashlib.sha256(data).hexdigest()


def table(max_prompt_chars):
    """The declared fields of `animation`."""
    frame = Obj({"openpose": media_field("the rig's OpenPose map of this frame (body, hands, face)"),
                 "depth": media_field("its depth map", omit=True),
                 "mask": media_field("the characters' pixels (white), grown: where they are drawn", omit=True),
                 "face": media_field("the crop around the rig's face keypoints (Wan-Animate's face video)", omit=True),
                 "background": media_field("the painted set seen from this frame's camera", omit=True)},
                "one frame's control maps")
    return {
        "version": Const(1, "job spec format version", 1),
        "kind": Const("animation", "what the job makes"),
        "profile": Name("the backend's model profile (a video family)", "wan-vace"),
        "name": Name("result name prefix (each frame is <name>_NNNN, the shot's frame number)", "clip"),
        "prompt": Text(max_prompt_chars, "what the clip shows"),
        "negative_prompt": Text(max_prompt_chars, "what not to show (empty: the model's own)"),
        "seed": Integer(0, 2**32 - 1, "random seed (every segment of a shot takes the same)", 0),
        "steps": Integer(1, 150, "denoising steps", 30),
        "guidance": Number(0.0, 30.0, "classifier-free guidance scale (1: none, one pass a step)", 5.0),
        "width": Integer(64, LIMITS["max_side"], "frame width in pixels (a multiple of 16)", 832, multiple_of=16),
        "height": Integer(64, LIMITS["max_side"], "frame height in pixels (a multiple of 16)", 480, multiple_of=16),
        "fps": Integer(1, 120, "the shot's frame rate (recorded; the frames follow the rig frame by frame)", 16),
        "frames": ListOf(frame, 1, LIMITS["max_frames"], "the segment's frames in order, the carried ones first",
                         fix="render the shot's frames first (Shot > Animate Shot)"),
        "previous": ListOf(media_field("a result frame of the segment before"), 0, LIMITS["max_carried"],
                           "the previous segment's last results: this segment's first frames, carried over", []),
        "references": ListOf(media_field("a picture of the character"), 0, LIMITS["max_references"],
                             "the character's pictures (its pack's sheet views and faces), best first", []),
        "mode": Choice(MODES, "replace: the set's video kept outside the masks, the characters drawn in; "
                              "animate: the whole frame drawn", "replace"),
        "control": Choice(CONTROLS, "the map that steers the motion", "openpose"),
        "strength": Number(0.0, 2.0, "how strongly the control video steers (VACE's conditioning scale)", 1.0),
        "grow": Integer(0, 128, "pixels the characters' masks grow by (clothes and hair reach past the rig)", 16),
        "segment": Obj({"index": Integer(0, LIMITS["max_shot_frames"], "which segment of the shot (0: the first)", 0),
                        "count": Integer(1, LIMITS["max_shot_frames"], "segments in the shot", 1),
                        "first_frame": Integer(-LIMITS["max_shot_frames"], LIMITS["max_shot_frames"],
                                               "the shot's frame number of frames[0]", 1)},
                       "where the segment sits in its shot", default={}),
    }


def check(out):
    """What the table cannot say about a validated `animation` spec."""
    if out["width"] * out["height"] > LIMITS["max_pixels"]:
        raise JobSpecError("width", f"{out['width']}x{out['height']} is over {LIMITS['max_pixels']} pixels",
                           "use 832x480 or 1280x720 (the models' own sizes) or smaller")
    frames, carried = out["frames"], len(out["previous"])
    if carried >= len(frames):
        raise JobSpecError("previous", f"carries {carried} frames over into a segment of {len(frames)}: nothing new",
                           "send more frames than the frames carried over")
    maps = set(frames[0])
    for i, frame in enumerate(frames):
        if set(frame) != maps:
            raise JobSpecError(f"frames[{i}]", f"has the maps {', '.join(sorted(frame))}, frames[0] "
                               f"{', '.join(sorted(maps))}", "render every frame with the same maps")
    if out["control"] not in maps:
        raise JobSpecError("control", f"{out['control']} steers the motion but the frames have no {out['control']} "
                           "map", f"send each frame's {out['control']} map, or control openpose")
    if out["mode"] == "replace" and not {"background", "mask"} <= maps:
        raise JobSpecError("mode", "replace keeps the set's video outside the characters' masks: the frames need "
                           "background and mask", "send each frame's background and mask, or mode animate")
    if not out["prompt"].strip() and not out["references"]:
        raise JobSpecError("prompt", "is empty and no picture of the character is given",
                           "describe the character, or give its pictures (a rig playing a character)")
    return out


def needs(spec):
    """What a validated `animation` job asks of its profile's family, as capability names."""
    wanted = {"animate", "pose_control" if spec["control"] == "openpose" else "depth_control"}
    if spec["references"]:
        wanted.add("identity")
    if spec["mode"] == "replace":
        wanted.add("inpaint")
    return wanted


def media_names(spec):
    """Every picture a validated `animation` spec names (SHA-256), each once, in order."""
    names = [name for frame in spec["frames"] for name in frame.values()] + spec["previous"] + spec["references"]
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------------------------
# Segments: a shot in overlapping pieces the model can make

def plan_segments(frames, length, carried):
    """[{"index", "frames": the shot's frame numbers, "carried": how many come from the segment
    before}] covering `frames` (consecutive numbers) in segments of at most `length` frames, each
    after the first starting with the last `carried` frames of the one before."""
    frames = list(frames)
    if not frames:
        raise JobSpecError("frames", "the shot has no frames", "set the shot's frame range")
    if frames != list(range(frames[0], frames[0] + len(frames))):
        raise JobSpecError("frames", "an animated shot is one run of consecutive frames",
                           "give a range such as 1-48")
    if carried < 0 or length <= carried:
        raise JobSpecError("segment", f"segments of {length} frames cannot carry {carried} over",
                           "make segments longer than the frames carried over")
    out, start = [], 0
    while True:
        first = max(0, start - (carried if out else 0))
        piece = frames[first:first + length]
        out.append({"index": len(out), "frames": piece, "carried": start - first})
        start = first + len(piece)
        if start >= len(frames):
            return out


def segment_plan(family, frames, length=0, carried=0):
    """`plan_segments` for a video `family` (its window when `length` is 0, its default carry when
    `carried` is 0), refusing a length or carry the family cannot make, with the fix."""
    if family not in FAMILY_WINDOWS:
        raise JobSpecError("profile", f"family {family} makes no video", f"use a video profile "
                           f"({', '.join(FAMILY_WINDOWS)} families)")
    known = FAMILY_WINDOWS[family]
    length, carried = length or known["window"], carried or known["carry"]
    if length > known["window"]:
        raise JobSpecError("segment", f"{length} frames are more than the {family} window of {known['window']}",
                           f"segments of at most {known['window']} frames (0: the model's window)")
    if carried not in known["carries"]:
        raise JobSpecError("carry", f"{family} cannot carry {carried} frames over",
                           f"carry {' or '.join(map(str, known['carries'][:2]))}"
                           + (" (up to 32)" if len(known["carries"]) > 2 else ""))
    return plan_segments(frames, length, carried)
