"""Draft mode: a family's few-step settings, for posing against in seconds; the final keeps
the job's own steps and guidance. A draft is labelled as one on the plane and in the PNG."""

import math
from dataclasses import dataclass, field

# Qwen-Image-Lightning's scheduler settings (ModelTC/Qwen-Image-Lightning, generate_with_diffusers.py):
# the distillation used shift 3, so the flow-matching schedule must too.
LIGHTNING_SCHEDULER = {"base_image_seq_len": 256, "base_shift": math.log(3), "invert_sigmas": False,
                       "max_image_seq_len": 8192, "max_shift": math.log(3), "num_train_timesteps": 1000, "shift": 1.0,
                       "shift_terminal": None, "stochastic_sampling": False, "time_shift_type": "exponential",
                       "use_beta_sigmas": False, "use_dynamic_shifting": True, "use_exponential_sigmas": False,
                       "use_karras_sigmas": False}


@dataclass(frozen=True)
class Draft:
    steps: int
    guidance: float      # 1: no classifier-free guidance (one pass a step)
    sampler: str         # for the PNG's parameters
    scheduler: str = ""  # a diffusers scheduler class to swap in for the call ("" keeps the pipeline's)
    scheduler_config: dict = field(default_factory=dict)  # its settings over the pipeline's own
    call: dict = field(default_factory=dict)  # extra pipeline arguments (TCD's eta)

    def make_scheduler(self, current):
        """The scheduler a draft runs with, built from the pipeline's `current` one."""
        if not self.scheduler:
            return current
        import diffusers
        return getattr(diffusers, self.scheduler).from_config({**current.config, **self.scheduler_config})
