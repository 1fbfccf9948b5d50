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


# The models each family needs to draft (the backend's families: `draft()` and
# `roles_for("draft", ...)`); tests/backend/test_live_pictures.py checks that the two agree on
# every built-in profile. A family missing here is left to the backend to judge.
# The roles each family needs to draft (None: the family draws no still pictures, so no drafts).
DRAFT_ROLES = {"sdxl": ("draft_lora",), "sd15": ("draft_lora",), "qwen_edit": ("draft_lora",), "flux2_klein": (),
               "wan_vace": None, "wan_animate": None}


def profile_docs(folders):
    """{name: (file, TOML document)} of the profiles in `folders`, the first folder's winning."""
    found = {}
    for folder in folders:
        names = sorted(f for f in os.listdir(folder) if f.endswith(".toml")) if os.path.isdir(folder) else []
        for file in names:
            path = os.path.join(folder, file)
            try:
                with open(path, "rb") as f:
                    doc = tomllib.load(f)
            except (OSError, tomllib.TOMLDecodeError):
                continue
            name = doc.get("name")
            if isinstance(name, str) and name and name not in found:
                found[name] = (path, doc)
    return found


def _drafts(doc):
    family = str(doc.get("family", "sdxl"))
    models = doc.get("models") if isinstance(doc.get("models"), dict) else {}
    roles = DRAFT_ROLES.get(family, ())
    return roles is not None and all(role in models for role in roles)


def draft_support(folders, name):
    """(True, "") when profile `name` has draft settings (what live mode and Generate's default
    draft need), else (False, why and what to install). Whether the models are downloaded is the
    backend's to say (its refusal names the download)."""
    docs = profile_docs(folders)
    if name not in docs:
        return False, f"no profile named {name}: choose one in the profile menu"
    path, doc = docs[name]
    if _drafts(doc):
        return True, ""
    family = str(doc.get("family", "sdxl"))
    able = [n for n, (_, d) in sorted(docs.items()) if n != name and _drafts(d) and not d.get("produces_noise")]
    if DRAFT_ROLES.get(family, ()) is None:
        return False, (f"profile {name} ({family}) makes animated shots, not pictures: Live drafts pictures"
                       + (f"; use profile {' or '.join(able)}" if able else ""))
    missing = [r for r in DRAFT_ROLES[family] if r not in (doc.get("models") or {})]
    same = [n for n in able if str(docs[n][1].get("family", "sdxl")) == family]
    hint = ""
    if same:
        source = docs[same[0]][1]["models"][missing[0]]
        where = ", ".join(f'{k} = "{v}"' for k, v in source.items() if k in ("repo", "weight", "file", "folder"))
        hint = f" ([models.{missing[0]}] {where}, as profile {same[0]} has)"
    fix = (f"add the draft model to {os.path.basename(path)}{hint}, then Check Models and Download Models"
           + (f"; or use profile {' or '.join(same or able)}" if same or able else ""))
    return False, f"profile {name} ({family}) has no draft setting ({', '.join(missing)}): {fix}"
