"""Resolve the backend's requirements into one lock file per platform (exact versions that
install together on it), with uv against PyPI.

Usage: python blender_scripts/dev/lock_backend.py [--uv PATH] [--check]

torch and torchvision are left out (with the CUDA and Triton packages only they need): the
installer takes them from the PyTorch index that matches the GPU first (core/setup/install_plan.py),
then installs the lock. `--check` exits 1 when a lock no longer matches requirements.txt.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from characterforge_addon.core.setup import install_plan  # noqa: E402
from characterforge_addon.core.setup.install_plan import LOCKS_DIR, PYTHON, REQUIREMENTS, lock_file  # noqa: E402

PLATFORMS = {"linux": "x86_64-manylinux_2_28", "windows": "x86_64-pc-windows-msvc", "macos": "aarch64-apple-darwin"}
# torch 2.14's macOS wheels are for macOS 14 (Sonoma) or newer
MACOS_MIN = "14.0"
# what only torch's own wheels need: the PyTorch index brings the versions that match its build
TORCH_ONLY = re.compile(r"^(torch|torchvision|triton|nvidia-[\w-]+|cuda-[\w-]+)==", re.I)
# named in the locks' header and the messages as they lie in the tree (install_plan under characterforge_addon/)
SCRIPT = os.path.relpath(os.path.abspath(__file__), ROOT).replace(os.sep, "/")
INSTALL_PLAN = os.path.relpath(os.path.abspath(install_plan.__file__),
                               os.path.join(ROOT, "characterforge_addon")).replace(os.sep, "/")


def header(system):
    """The lock's first lines: what it is, where it comes from, and where torch comes from."""
    return (f"# The backend's packages for {system} ({PLATFORMS[system]}, Python {PYTHON}), resolved from\n"
            f"# characterforge_addon/backend/requirements.txt by {SCRIPT}. torch and\n"
            f"# torchvision come first from the PyTorch index that matches the GPU ({INSTALL_PLAN}).\n")


def compile_lock(uv, system):
    out = subprocess.run([uv, "pip", "compile", REQUIREMENTS, "--python-platform", PLATFORMS[system],
                          "--python-version", PYTHON, "--no-annotate", "--no-header", "--quiet"],
                         capture_output=True, text=True, check=True,
                         env=dict(os.environ, MACOSX_DEPLOYMENT_TARGET=MACOS_MIN)).stdout
    pins = [line for line in out.splitlines() if line.strip() and not line.startswith("#") and not TORCH_ONLY.match(line)]
    return header(system) + "\n".join(pins) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uv", default=shutil.which("uv") or os.path.join(os.path.dirname(sys.executable), "uv"))
    parser.add_argument("--check", action="store_true", help="compare with the committed locks instead of writing")
    args = parser.parse_args()
    os.makedirs(LOCKS_DIR, exist_ok=True)
    stale = []
    for system in PLATFORMS:
        text = compile_lock(args.uv, system)
        path = lock_file(system)
        if args.check:
            if not os.path.isfile(path) or open(path, encoding="utf-8").read() != text:
                stale.append(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            print(f"wrote {path} ({text.count(chr(10)) - 3} packages)")
    if stale:
        print("stale: " + ", ".join(stale) + f"; run python {SCRIPT}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
