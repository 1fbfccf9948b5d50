"""One batch unit's generation job, for batch.py and for its Ray tasks (ray_units.py) alike."""


def unit_spec(shot, controls_dir, manifest_maps, seed):
    """The posed-character job of one unit from its control maps (in `controls_dir`)."""
    from characterforge_addon.blender.generation import job_inputs
    from characterforge_addon.core.spec.job_spec import posed_character_spec
    w, h = manifest_maps["resolution"]
    spec = posed_character_spec(shot.prompt, job_inputs.control_inputs(shot, controls_dir), w, h, shot.negative_prompt,
                                seed, shot.steps, shot.guidance, shot.profile, name=f"seed{seed}")
    spec["draft"] = shot.draft
    return spec
