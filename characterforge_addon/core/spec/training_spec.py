"""The `train_lora` job's fields: a character LoRA trained from an identity pack's pictures and
captions (as `lora_dataset` writes them), and the `lora` a later job loads. Zero in a setting
means the profile family's default, which the backend names in the LoRA's metadata."""

from .spec_fields import Flag, Image, Integer, ListOf, Name, Number, Obj, Pattern, Text

# One word a tokenizer keeps whole enough to learn: letters, digits and '_', from a letter.
TRIGGER_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{2,31}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
MIN_PICTURES = 6  # a sheet's default views and faces give 9; fewer teach one angle too well
MAX_PICTURES = 64
MAX_TRAIN_STEPS = 10000
TRIGGER_FIX = "one word of letters, digits and '_' (3 to 32, from a letter), e.g. mira_knight"


def trigger_field(doc, **kw):
    return Pattern(TRIGGER_PATTERN, 32, "one word", doc, fix=TRIGGER_FIX, **kw)


def check_trigger(word, field="trigger word"):
    """`word` if it is one trigger word (the one rule for training, datasets and jobs)."""
    return trigger_field("").check(word, field, None)


def lora_field():
    """The `lora` of an identity: a LoRA the backend holds (by its SHA-256), at a weight."""
    return Obj({"sha256": Pattern(SHA256_PATTERN, 64, "a SHA-256 in lowercase hex", "the LoRA file's SHA-256 (the backend keeps files by it)",
                                  fix="send the file first (PUT /loras/SHA256); the add-on does this itself"),
                "name": Name("the LoRA's name, for the record"),
                "weight": Number(0.0, 2.0, "how strongly the LoRA acts (0: not at all)", 0.8),
                "trigger": trigger_field("its trigger word, put in front of the character's prompt", default=None,
                                         omit=True)},
               "the character's trained LoRA", omit=True)


def table(const, max_picture_bytes, max_prompt_chars):
    """The declared fields of `train_lora` (`const(kind)`: the version and kind fields)."""
    picture = Obj({"image": Image(max_picture_bytes, "a picture of the character, base64 PNG"),
                   "caption": Text(max_prompt_chars, "its caption, with the trigger word"),
                   "mirror_caption": Text(max_prompt_chars, "the caption of its mirrored copy (empty: no mirrored "
                                                            "copy is trained)")}, "a training picture")
    return {
        **const,
        "profile": Name("the backend's model profile whose base model the LoRA is trained on", "sdxl"),
        "name": Name("the LoRA's name (its file name)", "character_lora"),
        "trigger": trigger_field("the word that calls the character up in prompts"),
        "images": ListOf(picture, MIN_PICTURES, MAX_PICTURES, "the pictures of the character",
                         fix=f"train from a sheet with {MIN_PICTURES} or more views and faces (Character > Sheet "
                             "views), or add pictures"),
        "seed": Integer(0, 2**32 - 1, "random seed (the same seed and pictures train the same LoRA)", 0),
        "steps": Integer(0, MAX_TRAIN_STEPS, "training steps (0: the family's default)", 0),
        "rank": Integer(0, 128, "LoRA rank (0: the family's default)", 0),
        "alpha": Number(0.0, 256.0, "LoRA alpha (0: the rank)", 0.0),
        "learning_rate": Number(0.0, 0.01, "learning rate (0: the family's default)", 0.0),
        "batch": Integer(1, 8, "pictures per step", 1),
        "resolution": Integer(0, 2048, "training side in pixels (0: the model's native size), a multiple of 64",
                              0, multiple_of=64),
        "buckets": Flag("aspect-ratio buckets (tall views stay tall); off: every picture square", True),
        "train_text_encoder": Flag("train the text encoders too (more faithful, more memory)", False),
        "sample_every": Integer(0, MAX_TRAIN_STEPS, "a sample picture every this many steps (0: only at the end)",
                                100),
        "checkpoint_every": Integer(1, MAX_TRAIN_STEPS, "a checkpoint every this many steps (a stopped backend "
                                                        "resumes from the last one)", 100),
        "sample_prompt": Text(max_prompt_chars, "the samples' prompt (empty: the trigger word, full body, front "
                                                "view); fixed seed"),
    }



def prompt_with_trigger(prompt, lora):
    """`prompt` with the trigger word of a character LoRA that acts (weight over 0) in front,
    unless the prompt has it already."""
    import re
    trigger = lora.get("trigger") if lora and lora["weight"] > 0 else None
    if not trigger or re.search(rf"\b{re.escape(trigger)}\b", prompt, re.IGNORECASE):
        return prompt
    return ", ".join(p for p in (trigger, prompt) if p)
