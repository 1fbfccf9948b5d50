"""The model profiles a backend offers, read from their TOML files: name, family and what
each is, so the add-on can list them without asking the backend. The backend's own loader
checks them fully; a file that does not parse is left out here."""

import os
import tomllib


def read_profiles(folders):
    """[(name, family, description)] from the .toml files in `folders`, the first folder's
    profile winning a name they share (the user's over the built-in ones)."""
    found = {}
    for folder in folders:
        names = sorted(f for f in os.listdir(folder) if f.endswith(".toml")) if os.path.isdir(folder) else []
        for file in names:
            try:
                with open(os.path.join(folder, file), "rb") as f:
                    doc = tomllib.load(f)
            except (OSError, tomllib.TOMLDecodeError):
                continue
            name = doc.get("name")
            if isinstance(name, str) and name and name not in found:
                found[name] = (name, str(doc.get("family", "sdxl")), str(doc.get("description", "")))
    return sorted(found.values())
