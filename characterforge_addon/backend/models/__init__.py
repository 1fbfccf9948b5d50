"""Weights on disk: model profiles (TOML, built-in ones in profiles/), finding and checking each
role's files (the doctor), the files each loader reads, downloads from the hub, LoRA files and their store.
May import core only."""
