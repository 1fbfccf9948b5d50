"""Characters' trained LoRAs in the shared denoiser: loaded from the backend's LoRA store the first
time a job names one, kept loaded (one adapter each, by its SHA-256) for the next job, the
oldest let go beyond as many as a shot has characters."""

from collections import OrderedDict

from ...core.errors import UserError
from ...core.spec.job_spec import LIMITS


class CharacterLoras:
    def __init__(self, engine, store):
        self.engine, self.store = engine, store
        self.loaded = OrderedDict()  # sha256 -> adapter name, least recently used first

    def adapter(self, lora):
        """The adapter name of `lora` ({"sha256", "name", "weight", ...}), loaded if it is not."""
        sha = lora["sha256"]
        if sha in self.loaded:
            self.loaded.move_to_end(sha)
            return self.loaded[sha]
        if self.store is None or not self.store.has(sha):
            raise UserError(f"this backend has no LoRA {lora['name']!r} ({sha[:12]}…): send the file again (the "
                            "add-on does this when a job names it)")
        name = f"character_{sha[:16]}"
        base = self.engine.base()
        with self.engine.changing_weights():
            base.load_lora_weights(self.store.path(sha), adapter_name=name)
            while len(self.loaded) >= LIMITS["max_characters"]:
                base.delete_adapters(self.loaded.popitem(last=False)[1])
        self.loaded[sha] = name
        return name
