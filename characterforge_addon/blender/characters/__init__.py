"""Characters: a rig's sheet maps, the sheet job, identity packs, LoRA training, and their operators."""
