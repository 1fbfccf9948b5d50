"""Setting the backend up: the GPUs the system shows, the install plan per platform, running it, and
the model profiles a backend offers. Pure: stdlib only (it runs in Blender's Python)."""
