"""Regenerate: the job behind a result plane run again, of its own kind, from the scene as it
is now."""

import json
import random

from ...core.errors import UserError
from ..shots import relight, shots
from . import generation
from .job_inputs import SEEDS


def regenerate(context, obj, new_seed, final=False):
    """Run the job behind a result plane again, with its seed or a new one: the same kind of
    job from the scene as it is now (pose, characters, settings), with the plane's prompts;
    `final`: a draft made again in full quality (the job's own steps and guidance)."""
    settings = context.scene.characterforge
    spec = json.loads(obj["characterforge_job"])
    seed = random.randrange(SEEDS) if new_seed else spec["seed"]
    settings.negative_prompt = spec.get("negative_prompt", "")
    settings.steps, settings.guidance = spec["steps"], spec["guidance"]
    settings.draft = bool(spec.get("draft")) and not final
    kind = spec.get("kind", "posed_character")
    if kind == "posed_character":
        settings.prompt = spec["prompt"]
        return generation.generate(context, seed=seed)
    if kind == "background":
        settings.background_prompt, settings.background_image = spec["prompt"], ""
        return generation.make_background(context, seed=seed)
    if kind == "shot":
        settings.background_prompt = spec["prompt"]
        return shots.make_shot(context, seed=seed)
    if kind == "expression":
        source = context.scene.objects.get(obj.get("characterforge_source", ""))
        if source is None:
            raise UserError(f"the picture '{obj.get('characterforge_source', '?')}' this expression was made from "
                            "is gone: select another result and use Change Expression")
        settings.expression = spec["expression"].upper()
        settings.expression_custom = spec.get("custom", "")
        return shots.make_expression(context, source, seed=seed)
    if kind == "relight":  # the source picture relit again, by the scene's lights as they are now
        source = context.scene.objects.get(obj.get("characterforge_source", ""))
        if source is None:
            raise UserError(f"the picture '{obj.get('characterforge_source', '?')}' this was relit from is gone: "
                            "select another result and use Relight")
        settings.relight_strength, settings.relight_shading = spec["strength"], spec["shading"]
        settings.relight_margin = spec["margin"]
        return relight.relight(context, source, seed=seed)
    raise UserError(f"a {kind.replace('_', ' ')} is made again from its own section (Characters > Make Sheet)")
