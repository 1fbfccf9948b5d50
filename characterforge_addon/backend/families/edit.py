"""What the multi-reference edit families share: they keep the whole character (outfit, hair,
colours, props) by taking the character's pictures as input pictures, next to the rig's
OpenPose (and depth) map, with an instruction saying which picture is which; a region (a face)
is changed by editing its square, and a masked redraw (characters into a background, a hand)
by editing the picture with the maps and pictures after it, the caller pasting the result by
its mask. Redrawing a whole picture at a strength (img2img: the sheet's upscale, the
background's detail pass, the cut-out's harmonizing) is left to the Stable Diffusion families,
so jobs that need it are refused before queueing in favour of a profile that can."""

from PIL import Image

from ...core.errors import UserError
from ..engine.pictures import decode_image_bytes

_MAPS = {"openpose": "an OpenPose skeleton", "depth": "a depth map", "hand_depth": "a depth map of the hands",
         "lineart": "a line drawing of its outlines", "normal": "a normal map"}
_EXTRA = ("lineart", "normal")  # taken after the others while a picture of the character still fits


def _taken(names, room):
    """The maps of `names` an edit takes: every pose and depth map, then the line art and
    normal maps while `room` (pictures left beside them) allows."""
    base = [n for n in _MAPS if n in names and n not in _EXTRA]
    return base + [n for n in _EXTRA if n in names][:max(0, room - len(base))]


class EditFamily:
    CAPABILITIES = ("draw", "inpaint", "pose_control", "depth_control", "normal_control", "line_control", "identity",
                    "draft", "relight")
    region_strength = False  # an edit decides how much it changes
    batched_inpaint = False  # Qwen-Image-Edit refuses batches: regions are edited one by one
    taesd_latents = False  # packed latents of another VAE
    max_pictures = 3
    pipeline_class = ""  # the diffusers class, by name
    takes_negative_prompt = True
    denoiser = "transformer"

    @staticmethod
    def roles_for(capability, models=()):
        return ()

    @staticmethod
    def saved_gb(roles):
        return 0

    @staticmethod
    def check_roles(models, where):
        """Raise UserError unless a profile naming the roles `models` can run this family."""
        if "base" not in models:
            raise UserError(f"{where}: no model for base: add [models.base] with repo, folder or file")

    def load_base(self, engine):
        import diffusers
        return engine.load(getattr(diffusers, self.pipeline_class), "base")

    def variant(self, engine, mode, roles):
        raise ValueError(f"the {self.name} family builds no {mode} pipeline")  # refused before queueing

    @staticmethod
    def preview_latents(pipe, latents, call):
        """(batch, channels, h, w) latents for a preview, or None (no preview for this family)."""
        return None

    def call_options(self, engine):
        """What this family's pipeline call needs beyond pictures, prompt and size."""
        return {}

    def calling(self, engine):
        """A context for the pipeline calls (settings the pipeline reads from elsewhere)."""
        import contextlib
        return contextlib.nullcontext()

    def _edit(self, engine, spec, seed, pictures, prompt, width, height, on_step, cancel_event):
        extra = {"negative_prompt": spec["negative_prompt"] or None} if self.takes_negative_prompt else {}
        return engine._generate(engine.pipeline("txt2img"), dict(spec, width=width, height=height), seed, 1, on_step,
                                cancel_event, image=pictures, prompt=prompt, width=width, height=height,
                                **extra, **self.call_options(engine))

    def draw(self, engine, spec, pngs, references, on_step, cancel_event):
        """The maps first, then as many of the character's pictures as the model takes (best
        first, as the pack orders them), one image at a time."""
        size = (spec["width"], spec["height"])
        taken = _taken(spec["controls"], self.max_pictures - (1 if references else 0))
        maps = [(n, decode_image_bytes(pngs[n], f"controls.{n}.image").resize(size)) for n in taken]
        refs = references[:max(0, self.max_pictures - len(maps))]
        pictures = [im for _, im in maps] + refs
        if not pictures:  # nothing to edit from: a neutral canvas of the job's size
            pictures = [Image.new("RGB", size, (127, 127, 127))]
        prompt = instruction([n for n, _ in maps], len(refs), spec)

        def run():
            with self.calling(engine):
                return [image for i in range(spec["batch"])
                        for image in self._edit(engine, spec, spec["seed"] + i, pictures, prompt, *size, on_step,
                                                cancel_event)]
        return engine._with_oom_retry(run)

    def inpaint(self, engine, spec, pixels, mask, strength, references, seed, suffix, on_step, cancel_event, controls,
                identity):
        """A masked redraw as an edit: the picture (a face's square, a hand's, a background) edited
        as the prompt says, with the maps in `controls` and the character's pictures after it (the
        identity: no adapters here); the caller pastes the result through its mask. `strength`
        does not apply: the edit decides how much changes."""
        h, w = pixels.shape[:2]
        by_name = dict(controls)
        taken = _taken(by_name, self.max_pictures - 1 - (1 if references else 0))
        maps = [(n, by_name[n].resize((w, h))) for n in taken]
        refs = references[:max(0, self.max_pictures - 1 - len(maps))]
        pictures = [Image.fromarray(pixels)] + [im for _, im in maps] + refs
        prompt = region_instruction([n for n, _ in maps], len(refs), spec, suffix)

        def run():
            with self.calling(engine):
                return self._edit(engine, spec, seed, pictures, prompt, w, h, on_step, cancel_event)[0]
        return engine._with_oom_retry(run)


    def relight(self, engine, spec, picture, start, light, mask, strength, references, seed, words, on_step,
                cancel_event, controls, identity):
        """(picture, notes): the picture edited with the light reference as picture 2 (and the
        characters' pictures after it), the instruction naming the light; the caller pastes it by
        its mask. `start` and `strength` do not apply: the edit decides how much changes."""
        h, w = picture.shape[:2]
        refs = references[:max(0, self.max_pictures - 2)]
        pictures = [Image.fromarray(picture), Image.fromarray(light).resize((w, h))] + refs
        prompt = relight_instruction(words, len(refs), spec)

        def run():
            with self.calling(engine):
                return self._edit(engine, engine.relighting(spec), seed, pictures, prompt, w, h, on_step,
                                  cancel_event)[0]
        return engine._with_oom_retry(run), {"method": "an edit with the light reference as picture 2",
                                             "instruction": prompt}


def relight_instruction(words, references, spec):
    """What the edit model is asked to relight: picture 1 lit as the clay render in picture 2,
    the key light in words, everything else kept."""
    keep = ("" if not references else ", the same person as in picture 3" if references == 1
            else f", the same person as in pictures 3 to {2 + references}")
    extra = spec["prompt"].strip()
    return (f"Relight {words['subject']} in picture 1 as lit in picture 2 (a grey clay render of the same view: "
            f"bright where the light falls, dark in shadow): {words['light']}. Keep everything else exactly as it "
            f"is: the same people, faces{keep}, hair, clothes, colours, pose, framing and background."
            + (f" {extra}" if extra else ""))


def region_instruction(maps, references, spec, suffix=""):
    """What the edit model is asked for a region: picture 1 changed, the maps and the character's
    pictures after it."""
    words = ", ".join(p for p in (spec["prompt"].strip(), suffix.strip(", ")) if p)
    told = [f"picture {i + 2} is {_MAPS[n]}" for i, n in enumerate(maps)]
    first = len(maps) + 2
    steer = "".join(f", following picture {i + 2}" for i in range(len(maps)))
    who = "character" if set(_EXTRA) & set(maps) else "person"
    keep = ("" if not references else f", the same {who} as in picture {first}" if references == 1
            else f", the same {who} as in pictures {first} to {first + references - 1}")
    return (f"Edit picture 1{' (' + '; '.join(told) + ')' if told else ''}: {words}{steer}{keep}; "
            "change nothing else.")


def instruction(maps, references, spec):
    """What the edit model is asked: which picture is which, then the user's own words."""
    words = ", ".join(p for p in (spec["prompt"].strip(), spec.get("style", "").strip()) if p)
    told = [f"Picture {i + 1} is {_MAPS[n]}" for i, n in enumerate(maps)]
    first = len(maps) + 1
    if references:
        who = f"picture {first}" if references == 1 else f"pictures {first} to {first + references - 1}"
        keep = ("the same face, hair, outfit, colours and props" if "openpose" in maps or not maps
                else "the same shape, colours, materials and markings")
        told.append(f"Draw the same character as in {who}: {keep}")
    else:
        told.append("Draw the character")
    if "openpose" in maps:
        told[-1] += f", in exactly the pose of the skeleton in picture {maps.index('openpose') + 1}"
    elif set(_EXTRA) & set(maps):  # a creature or an object: its shape from the maps
        told[-1] += ", with exactly the shape and outlines of " + " and ".join(
            f"picture {i + 1}" for i in range(len(maps)))
    elif maps:
        told[-1] += ", following the depth map"
    return ". ".join(told) + (f". {words}" if words else ".")
