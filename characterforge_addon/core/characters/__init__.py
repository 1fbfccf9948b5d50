"""Characters: sheet geometry, identity packs, LoRA datasets and files, consistency scores.
Pure: stdlib and numpy."""
