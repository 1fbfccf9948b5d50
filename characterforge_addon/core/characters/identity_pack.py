"""Identity packs: a character's sheet, its views and face crops, and what made them, in one
folder with a `character.json`. Every later job takes its identity from a pack.

Folder layout:
    character.json   name, kind (humanoid, creature, object), prompts, seed, profile, views
                     (yaw, file, appearance embedding), faces (file, whether used as an
                     identity reference, insightface embedding), mean embedding, details
                     (an object's or creature's close-ups), the mean appearance embedding,
                     creation time, versions
    sheet.png, sheet_base.png, views/<view>.png, faces/<face>.png, details/<detail>.png
    sheet.json       the sheet's layout as render_sheet wrote it: each view's cell, box and
                     camera, the rig's matrix and pose (what painting a model from the sheet needs)
    texture/         a model painted from the sheet (written by Paint Model from Sheet)
Packs travel as zip files; importing one refuses absolute paths, '..', links and oversized
members, and checks the pack before it is kept.
"""

import datetime
import json
import math
import os
import shutil
import stat
import tempfile
import zipfile

from ..errors import UserError
from ..image_io import PNGError, read_png_text, write_atomic
from ..spec.job_spec import safe_name
from . import kinds

FORMAT = "characterforge.identity_pack"
VERSION = 1
MANIFEST = "character.json"
MAX_ZIP_MEMBERS = 256
MAX_ZIP_BYTES = 512 * 2**20


class PackError(UserError):
    pass


def _record_of(png, name):
    try:
        return json.loads(read_png_text(png).get("characterforge", "{}"))
    except (PNGError, ValueError) as exc:
        raise PackError(f"result {name}: unreadable PNG metadata ({exc})") from None


def mean_embedding(embeddings):
    """The unit-length mean of unit embeddings, or None without any."""
    vectors = [e for e in embeddings if e]
    if not vectors:
        return None
    mean = [sum(v[i] for v in vectors) / len(vectors) for i in range(len(vectors[0]))]
    norm = math.sqrt(sum(x * x for x in mean)) or 1.0
    return [round(x / norm, 6) for x in mean]


def mean_appearance(vectors):
    """The mean of a pack's view embeddings (CLIP image embeddings, not unit length), at the
    views' mean length: what the appearance IP-Adapter takes in place of one picture's
    embedding; None without any."""
    vectors = [v for v in vectors if v]
    if not vectors:
        return None
    n = len(vectors[0])
    mean = [sum(v[i] for v in vectors) / len(vectors) for i in range(n)]
    length = sum(math.sqrt(sum(x * x for x in v)) for v in vectors) / len(vectors)
    norm = math.sqrt(sum(x * x for x in mean)) or 1.0
    return [round(x * length / norm, 6) for x in mean]


LAYOUT = "sheet.json"
TEXTURES = "texture"


def create_pack(root, name, results, versions=None, layout=None):
    """Write a pack named `name` under `root` from a character sheet job's results
    ({result name: PNG bytes}: sheet, sheet_base, view_*, face_*) and `layout`, the sheet's
    record (sheet.json) when there is one. Returns its folder."""
    safe_name(name, "character name")
    folder = os.path.join(root, name)
    if os.path.exists(folder):
        raise PackError(f"a character named {name!r} already exists in {root}: pick another name or rename that one")
    if "sheet" not in results:
        raise PackError("the sheet job returned no sheet")
    job = _record_of(results["sheet"], "sheet").get("job", {})
    os.makedirs(root, exist_ok=True)
    staging = _staging(root, f".{name}-")
    try:
        views, faces, details = [], [], []
        sheet_record = _record_of(results["sheet"], "sheet")
        for result, png in sorted(results.items()):
            record = _record_of(png, result)
            if result.startswith("view_"):
                file = f"views/{result[5:]}.png"
                views.append({"name": result[5:], "yaw": record.get("yaw", 0.0),
                              "elevation": record.get("elevation", 0.0), "file": file,
                              "appearance": record.get("appearance")})
            elif result.startswith("detail_"):
                file = f"details/{result}.png"
                details.append({"name": result, "yaw": record.get("yaw", 0.0), "file": file,
                                "part": record.get("part", "")})
            elif result.startswith("face_"):
                file = f"faces/{result}.png"
                faces.append({"name": result, "yaw": record.get("yaw", 0.0), "file": file, "use_as_identity": True,
                              "embedding": record.get("embedding")})
            elif result in ("sheet", "sheet_base"):
                file = f"{result}.png"
            else:
                continue
            os.makedirs(os.path.dirname(os.path.join(staging, file)), exist_ok=True)
            write_atomic(os.path.join(staging, file), png)
        kind = sheet_record.get("kind", job.get("subject", kinds.HUMANOID))
        encoder = sheet_record.get("appearance_model")
        if layout is not None:
            write_atomic(os.path.join(staging, LAYOUT), json.dumps(layout, indent=1).encode("utf-8"))
        manifest = {
            "format": FORMAT, "version": VERSION, "name": name, "kind": kind,
            "prompt": job.get("prompt", ""), "style": job.get("style", ""),
            "negative_prompt": job.get("negative_prompt", ""), "seed": job.get("seed", 0),
            "profile": job.get("profile", ""), "sheet": "sheet.png",
            "sheet_base": "sheet_base.png" if "sheet_base" in results else None,
            "views": views, "faces": faces, "details": details, "layout": LAYOUT if layout is not None else None,
            "embedding": mean_embedding([f["embedding"] for f in faces]),
            "embedding_model": "insightface recognition (ArcFace), unit length" if any(f["embedding"] for f in faces) else None,
            "appearance": mean_appearance([v["appearance"] for v in views]),
            "appearance_model": encoder if any(v["appearance"] for v in views) else None,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions or {},
        }
        write_atomic(os.path.join(staging, MANIFEST), json.dumps(manifest, indent=1).encode("utf-8"))
        os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder


def _staging(root, prefix):
    """A hidden folder beside the packs, renamed into place when complete (mkdtemp makes it
    0700: give it ordinary permissions)."""
    folder = tempfile.mkdtemp(prefix=prefix, dir=root)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    return folder


def _inside(folder, relative, what):
    if not isinstance(relative, str) or os.path.isabs(relative) or ".." in relative.replace("\\", "/").split("/"):
        raise PackError(f"{os.path.join(folder, MANIFEST)}: {what} {relative!r} is not a file inside the pack")
    path = os.path.realpath(os.path.join(folder, relative))
    if os.path.commonpath([path, os.path.realpath(folder)]) != os.path.realpath(folder):
        raise PackError(f"{os.path.join(folder, MANIFEST)}: {what} {relative!r} points outside the pack (a link?)")
    return path


def load_pack(folder):
    """The pack's manifest, checked: every file it names exists inside the folder and is a PNG."""
    path = os.path.join(folder, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise PackError(f"{folder} is not an identity pack: {MANIFEST} is missing") from None
    except (OSError, ValueError) as exc:
        raise PackError(f"{path} cannot be read ({exc}): restore it from the exported zip") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackError(f"{path} is not a CharacterForge identity pack manifest")
    if manifest.get("version", 0) > VERSION:
        raise PackError(f"{path} is pack version {manifest['version']}; this add-on reads up to {VERSION}: update it")
    for key in ("name", "views", "faces", "sheet"):
        if key not in manifest:
            raise PackError(f"{path}: field {key!r} is missing")
    if manifest.setdefault("kind", kinds.HUMANOID) not in kinds.KINDS:  # packs made before kinds were humanoid
        raise PackError(f"{path}: kind {manifest['kind']!r} is not one of {', '.join(kinds.KINDS)}")
    named = [("sheet", manifest["sheet"])] + [(f"view {v.get('name')}", v.get("file")) for v in manifest["views"]] + \
            [(f"face {f.get('name')}", f.get("file")) for f in manifest["faces"]] + \
            [(f"detail {d.get('name')}", d.get("file")) for d in manifest.setdefault("details", [])]
    for what, relative in named:
        file = _inside(folder, relative, what)
        try:
            with open(file, "rb") as f:
                head = f.read(8)
        except OSError:
            raise PackError(f"{what}: {file} is missing from the pack: re-import the pack or make the sheet again") from None
        if head != b"\x89PNG\r\n\x1a\n":
            raise PackError(f"{what}: {file} is not a PNG (damaged?): re-import the pack or make the sheet again")
    return manifest


def identity_faces(folder):
    """PNG bytes of the face crops picked as identity references."""
    manifest = load_pack(folder)
    picked = [f for f in manifest["faces"] if f.get("use_as_identity", True)]
    if not picked:
        raise PackError(f"character {manifest['name']!r} has no face picked as identity reference: tick one in "
                        "Characters > faces")
    out = []
    for face in picked:
        with open(_inside(folder, face["file"], f"face {face['name']}"), "rb") as f:
            out.append(f.read())
    return out


# the views a creature's or object's identity shows first: the ones that show most of it
VIEW_ORDER = ("three_quarter", "front", "side", "back", "top")


def identity_views(folder, limit=4):
    """PNG bytes of a pack's whole views, the most telling first (its identity pictures when it
    has no faces: a creature or an object)."""
    manifest = load_pack(folder)
    views = sorted(manifest["views"], key=lambda v: VIEW_ORDER.index(v["name"]) if v["name"] in VIEW_ORDER
                   else len(VIEW_ORDER))
    if not views:
        raise PackError(f"character {manifest['name']!r} has no views: make its sheet again")
    out = []
    for view in views[:limit]:
        with open(_inside(folder, view["file"], f"view {view['name']}"), "rb") as f:
            out.append(f.read())
    return out


def appearance(folder):
    """{"embedding": the pack's mean appearance embedding, "views": each view's} or None when
    the pack has none (made before appearance embeddings, or without the image encoder)."""
    manifest = load_pack(folder)
    views = [v["appearance"] for v in manifest["views"] if v.get("appearance")]
    if not manifest.get("appearance") or not views:
        return None
    return {"embedding": manifest["appearance"], "views": views}


def list_packs(root):
    """[(name, folder, problem or None)] for every pack folder under root, by name."""
    if not os.path.isdir(root):
        return []
    out = []
    for entry in sorted(os.listdir(root)):
        folder = os.path.join(root, entry)
        if entry.startswith(".") or not os.path.isdir(folder):
            continue
        try:
            load_pack(folder)
            out.append((entry, folder, None))
        except PackError as exc:
            out.append((entry, folder, str(exc)))
    return out


def _save_manifest(folder, manifest):
    write_atomic(os.path.join(folder, MANIFEST), json.dumps(manifest, indent=1).encode("utf-8"))


def rename_pack(folder, new_name):
    """Rename a pack (its folder and its manifest's name); returns the new folder."""
    safe_name(new_name, "character name")
    manifest = load_pack(folder)
    target = os.path.join(os.path.dirname(os.path.abspath(folder)), new_name)
    if os.path.exists(target):
        raise PackError(f"a character named {new_name!r} already exists: pick another name")
    os.replace(folder, target)
    manifest["name"] = new_name
    _save_manifest(target, manifest)
    return target


def pick_identity_faces(folder, names):
    """Use exactly these face crops as identity references."""
    manifest = load_pack(folder)
    known = {f["name"] for f in manifest["faces"]}
    unknown = set(names) - known
    if unknown:
        raise PackError(f"character {manifest['name']!r} has no face {sorted(unknown)[0]!r} (faces: {', '.join(sorted(known))})")
    for face in manifest["faces"]:
        face["use_as_identity"] = face["name"] in names
    manifest["embedding"] = mean_embedding([f.get("embedding") for f in manifest["faces"] if f["use_as_identity"]])
    _save_manifest(folder, manifest)
    return manifest


def export_zip(folder, zip_path):
    """The pack as a zip with its folder name at the top."""
    manifest = load_pack(folder)
    name = manifest["name"]
    tmp = zip_path + ".partial"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:  # PNGs are compressed already
        for dirpath, _, files in os.walk(folder):
            for file in sorted(files):
                full = os.path.join(dirpath, file)
                if file.startswith(".") or os.path.islink(full):
                    continue
                z.write(full, os.path.join(name, os.path.relpath(full, folder)))
    os.replace(tmp, zip_path)
    return zip_path


def import_zip(zip_path, root):
    """Unpack a pack zip under root (renamed name_2, name_3... if taken); returns its folder."""
    try:
        z = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise PackError(f"{zip_path} is not a readable zip file ({exc})") from None
    with z:
        members = z.infolist()
        if len(members) > MAX_ZIP_MEMBERS or sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            raise PackError(f"{zip_path} holds over {MAX_ZIP_MEMBERS} files or {MAX_ZIP_BYTES // 2**20} MiB: not a pack")
        tops = set()
        for m in members:
            parts = m.filename.replace("\\", "/").split("/")
            if m.filename.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
                raise PackError(f"{zip_path}: member {m.filename!r} would land outside the pack folder; refused")
            if stat.S_ISLNK(m.external_attr >> 16):
                raise PackError(f"{zip_path}: member {m.filename!r} is a link; refused")
            tops.add(parts[0])
        if len(tops) != 1 or f"{next(iter(tops))}/{MANIFEST}" not in z.namelist():
            raise PackError(f"{zip_path} is not an identity pack zip (one folder with {MANIFEST} inside)")
        os.makedirs(root, exist_ok=True)
        staging = _staging(root, ".import-")
        try:
            z.extractall(staging)
            unpacked = os.path.join(staging, next(iter(tops)))
            manifest = load_pack(unpacked)
            name, n = manifest["name"], 2
            safe_name(name, f"{zip_path}: character name")
            target = os.path.join(root, name)
            while os.path.exists(target):
                target, n = os.path.join(root, f"{name}_{n}"), n + 1
            os.replace(unpacked, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    if os.path.basename(target) != manifest["name"]:
        manifest["name"] = os.path.basename(target)
        _save_manifest(target, manifest)
    return target


def sheet_layout_record(folder):
    """The sheet's layout record (sheet.json) a pack keeps, checked for what painting needs;
    a PackError naming the fix when the pack has none (packs made before it was kept)."""
    manifest = load_pack(folder)
    relative = manifest.get("layout")
    if not relative:
        raise PackError(f"character {manifest['name']!r} keeps no sheet layout (sheet.json): its pack predates "
                        "model painting; give the sheet's maps/sheet.json (results folder, sheets/<name>/maps) "
                        "or make the sheet again")
    path = _inside(folder, relative, "sheet layout")
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError) as exc:
        raise PackError(f"{path} cannot be read ({exc}): make the sheet again") from None
    return record
