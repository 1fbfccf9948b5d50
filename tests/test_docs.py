"""The guide stays true: README.md and docs/*.md.

- every command shown in a ```sh block runs: the scripts' and the backend's `--help` (run once
  each, never the real thing), and every option shown is one that `--help` lists; `make` targets
  through `make -n`; other programs (hf, ray, pip) are named in EXTERNAL;
- every internal link and #anchor resolves (GitHub's heading anchors);
- every picture a page uses exists, is one `blender_scripts/dev/make_docs.py` makes (its PICTURES),
  and is the file make_docs recorded (docs/img/pictures.json: SHA-256), and every picture it makes
  is used;
- docs/job-specs.md is what make_docs makes from the declared job specs today.
No Blender renders here: `make docs` makes the pictures (tests/blender/test_scripts.py makes them
again and compares). Runs in a few seconds."""

import concurrent.futures
import glob
import hashlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
PAGES = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(DOCS, "*.md")))
EXTERNAL = {"hf", "ray", "pip", "<backend"}  # programs that are not ours: shown, not run


def load_make_docs():
    spec = importlib.util.spec_from_file_location("make_docs", os.path.join(ROOT, "blender_scripts", "dev",
                                                                             "make_docs.py"))
    module = importlib.util.module_from_spec(spec)
    path = list(sys.path)
    try:
        spec.loader.exec_module(module)  # no bpy at import: it is imported in main()
    finally:
        sys.path[:] = path  # it puts blender_scripts/ on the path for its own run
    return module


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def commands():
    """(page, command line) for every command in a ```sh block; continuations joined, comment
    lines left out."""
    out = []
    for page in PAGES:
        text = read(page)
        for block in FENCE.finditer(text):
            if block.group(1) != "sh":
                continue
            joined = block.group(2).replace("\\\n", " ")
            for line in joined.splitlines():
                if line.strip() and not line.strip().startswith("#"):
                    out.append((os.path.relpath(page, ROOT), line.strip()))
    return out


def words(line):
    tokens = shlex.split(line, comments=True)
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):  # VAR=value before a command
        tokens.pop(0)
    return tokens


def options(line):
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line.split(" # ")[0]))


def what_runs(line):
    """(kind, key) of the command: ("help", argv of its --help), ("make", target),
    ("file", path), ("external", program)."""
    tokens = words(line)
    program = tokens[0]
    if program in EXTERNAL:
        return "external", program
    if program == "make":
        return "make", tuple(tokens[1:])
    if program == "blender":
        script = tokens[tokens.index("-P" if "-P" in tokens else "--python") + 1]
        return "help", (script, "--help")
    if re.search(r"(^|/)python3?$", program):
        if tokens[1] == "-m":
            if tokens[2] == "characterforge_addon.backend":
                return "help", ("-m", tokens[2], tokens[3], "--help")
            if tokens[2] == "pytest":
                return "file", next(t for t in tokens[3:] if not t.startswith("-")).split("::")[0]
            if tokens[2] == "pip":
                return "external", "pip"
        return "help", (tokens[1], "--help")
    raise AssertionError(f"a command the docs test does not know how to check: {line}")


def run_help(argv):
    run = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env=dict(os.environ, HF_HUB_OFFLINE="1"))
    return run.returncode, run.stdout + run.stderr


@pytest.fixture(scope="module")
def helps():
    wanted = {key for _, line in commands() for kind, key in [what_runs(line)] if kind == "help"}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        return dict(zip(wanted, pool.map(run_help, wanted)))


def test_every_command_shown_runs_and_takes_the_options_shown(helps):
    shown = commands()
    assert len(shown) > 40, "the guide's commands were not found"
    problems = []
    for page, line in shown:
        kind, key = what_runs(line)
        if kind == "help":
            rc, text = helps[key]
            if rc:
                problems.append(f"{page}: `{' '.join(key)}` failed: {text.strip()[-300:]}")
                continue
            unknown = [o for o in sorted(options(line)) if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)]
            if unknown:
                problems.append(f"{page}: `{line[:80]}…` shows {', '.join(unknown)}, which `{' '.join(key)}` lacks")
        elif kind == "make":
            run = subprocess.run(["make", "-n", "-C", ROOT, *key], capture_output=True, text=True, timeout=60)
            if run.returncode:
                problems.append(f"{page}: `make {' '.join(key)}` is no target: {run.stderr.strip()[-200:]}")
        elif kind == "file":
            if not os.path.exists(os.path.join(ROOT, key)):
                problems.append(f"{page}: `{line[:80]}` names {key}, which does not exist")
    assert not problems, "\n".join(problems)


def test_readme_keeps_the_two_commands():
    blocks = [b.group(2) for b in FENCE.finditer(read(PAGES[0])) if b.group(1) == "sh"]
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    assert "make demo" in lines and "make test" in lines


# ---- links and anchors ---------------------------------------------------------------------------------------------

LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def prose(text):
    """`text` without code blocks and inline code (links there are not links)."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def anchors(path):
    """GitHub's anchors for the headings of `path`: lower case, punctuation but - and _ dropped,
    spaces to -, repeats numbered."""
    seen, out = {}, set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", FENCE.sub("", read(path)), re.M):
        heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's words
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links():
    for page in PAGES:
        for m in LINK.finditer(prose(read(page))):
            yield page, m.group(1) == "!", m.group(3)


def test_every_internal_link_and_anchor_resolves():
    broken = []
    for page, _, target in links():
        if re.match(r"^[a-z]+:", target):
            continue  # http, https, mailto: not ours to check offline
        path, _, anchor = target.partition("#")
        full = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        where = f"{os.path.relpath(page, ROOT)} -> {target}"
        if not os.path.exists(full):
            broken.append(f"{where}: no such file")
        elif anchor and (not full.endswith(".md") or anchor not in anchors(full)):
            broken.append(f"{where}: no heading with that anchor")
    assert not broken, "\n".join(broken)


def test_the_anchor_rule_is_githubs():
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False) as f:
        f.write("# Set-up: install, the backend\n## `posed_character`\n## Sets\n## Sets\n```\n# not a heading\n```\n"
                "## A character's sheet (issue #27, part 2)\n")
    try:
        assert anchors(f.name) == {"set-up-install-the-backend", "posed_character", "sets", "sets-1",
                                   "a-characters-sheet-issue-27-part-2"}
    finally:
        os.remove(f.name)


# ---- pictures -------------------------------------------------------------------------------------------------------

def test_every_picture_used_is_made_by_make_docs_and_every_one_made_is_used():
    make_docs = load_make_docs()
    with open(os.path.join(DOCS, "img", "pictures.json"), encoding="utf-8") as f:
        record = json.load(f)["pictures"]
    used, problems = set(), []
    for page, image, target in links():
        if not image:
            continue
        full = os.path.normpath(os.path.join(os.path.dirname(page), target))
        name = os.path.relpath(full, os.path.join(DOCS, "img"))
        used.add(name)
        if name not in make_docs.PICTURES:
            problems.append(f"{os.path.relpath(page, ROOT)} shows {target}, which make_docs.py does not make")
        elif not os.path.isfile(full):
            problems.append(f"{target} is missing: run make docs")
        elif name not in record or hashlib.sha256(open(full, "rb").read()).hexdigest() != record[name]["sha256"]:
            problems.append(f"{target} is not the file make docs recorded (docs/img/pictures.json): run make docs")
    unused = set(make_docs.PICTURES) - used
    assert not unused, f"make_docs.py makes pictures no page shows: {sorted(unused)}"
    assert set(record) == set(make_docs.PICTURES), "docs/img/pictures.json is stale: run make docs"
    assert not problems, "\n".join(problems)


def test_the_pictures_stay_small():
    total = sum(os.path.getsize(p) for p in glob.glob(os.path.join(DOCS, "img", "*.png")))
    assert total < 400 * 1024, f"docs/img holds {total // 1024} KiB of pictures: keep them small (they are committed)"


def test_the_job_spec_page_is_made_from_todays_declaration():
    assert read(os.path.join(DOCS, "job-specs.md")) == load_make_docs().job_specs_page(), \
        "docs/job-specs.md differs from the declared job specs: run make docs"
