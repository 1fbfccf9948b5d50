"""Build the installable extension zip with Blender's own extension tool.

Usage: python blender_scripts/dev/build_extension.py [--output-dir dist] [--validate]

The zip holds the add-on package at its root with blender_manifest.toml beside it. Needs the
bpy module (for Blender's blender_ext.py), not a Blender binary.
"""

import argparse
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def blender_ext_cli():
    import bpy
    return os.path.join(bpy.utils.system_resource("SCRIPTS"), "addons_core", "bl_pkg", "cli", "blender_ext.py")


def stage(staging):
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(os.path.join(ROOT, "characterforge_addon"), staging,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(os.path.join(ROOT, "blender_manifest.toml"), staging)


def build(output_dir, validate=False):
    staging = os.path.join(ROOT, "build", "extension")
    stage(staging)
    os.makedirs(output_dir, exist_ok=True)
    cli = blender_ext_cli()
    subprocess.run([sys.executable, cli, "build", "--source-dir", staging, "--output-dir", output_dir], check=True)
    zips = sorted((os.path.join(output_dir, f) for f in os.listdir(output_dir) if f.endswith(".zip")), key=os.path.getmtime)
    if not zips:
        raise SystemExit(f"blender_ext.py build wrote no zip into {output_dir}")
    if validate:
        subprocess.run([sys.executable, cli, "validate", zips[-1]], check=True)
    return zips[-1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=os.path.join(ROOT, "dist"))
    parser.add_argument("--validate", action="store_true", help="also run blender_ext.py validate on the zip")
    args = parser.parse_args()
    print(build(os.path.abspath(args.output_dir), args.validate))


if __name__ == "__main__":
    main()
