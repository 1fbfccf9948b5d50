"""Weights on disk: model profiles (TOML, built-in ones in profiles/), finding and checking each
role's files (the doctor), the files each loader reads, downloads from the hub, LoRA files and their store.
May import families (the roles each family loads), tiny (the tiny profiles' folder), engine's device
(only inside the doctor and the device report: it loads torch) and core; never jobs or serving."""
