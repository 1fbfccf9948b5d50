"""Headless batches: a TOML job file turned into units, and the manifest that resumes them.
Pure: stdlib and numpy."""
