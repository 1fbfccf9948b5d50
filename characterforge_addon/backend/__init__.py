"""The bundled diffusers backend: its own process and Python (torch, diffusers), an HTTP API
on 127.0.0.1. Never imported by the add-on; started with `python -m <package>.backend serve`."""
