"""Shared start-up for the headless scripts: find the add-on, read arguments, register once.

Works both with the bpy module (`python blender_scripts/x.py ...`) and inside Blender
(`blender -b FILE -P blender_scripts/x.py -- ...`, where our arguments follow `--`).
"""

import atexit
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def script_args(argv=None):
    """Our arguments: those after `--` (Blender passes its own before it), else all but argv[0]."""
    argv = sys.argv if argv is None else argv
    if "--" in argv:
        return argv[argv.index("--") + 1:]
    return argv[1:]


def register_addon():
    """Register the add-on unless Blender already did (an installed, enabled extension)."""
    import bpy
    import characterforge_addon
    if not hasattr(bpy.types.Scene, "characterforge"):
        characterforge_addon.register()
        if not bpy.app.binary_path:
            # The bpy 4.2 module segfaults at exit while operators are still registered.
            atexit.register(characterforge_addon.unregister)


def seed_arg(text):
    """argparse type for --seed: a whole number Blender's Seed field can hold."""
    import argparse
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"{value} is outside 0 to {2**31 - 1}")
    return value


def add_job_options(parser, out):
    """The options every generating script shares: seed, steps, profile and folders."""
    parser.add_argument("--seed", type=seed_arg, default=0)
    parser.add_argument("--steps", type=int, help="denoising steps (default 30, tiny: 4)")
    parser.add_argument("--profile", default=os.environ.get("CHARACTERFORGE_PROFILE", "sdxl"))
    parser.add_argument("--out", default=out, help="folder for maps and downloaded results")
    parser.add_argument("--characters", help="characters folder (default: the add-on's)")
    parser.add_argument("--data", help="backend data folder (default: the add-on's)")
    parser.add_argument("--port", type=int, help="port of the backend (default: the preferences' port; with --data, a "
                                                  "free one, so a backend of another data folder is never met)")


def apply_job_options(args, settings):
    """Point the add-on's backend and folders where the options say, and set seed and steps."""
    os.environ.setdefault("CHARACTERFORGE_BACKEND_PYTHON", sys.executable)
    os.environ["CHARACTERFORGE_PROFILE"] = args.profile
    for name, value in (("CHARACTERFORGE_CHARACTERS", args.characters), ("CHARACTERFORGE_DATA", args.data)):
        if value:
            os.environ[name] = os.path.abspath(value)
    if args.port or args.data:
        os.environ["CHARACTERFORGE_PORT"] = str(args.port or free_port())
    settings.random_seed, settings.seed = False, args.seed
    settings.steps = args.steps or (4 if args.profile == "tiny" else 30)
    settings.results_dir = os.path.abspath(args.out)


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def save_blend(bpy, path):
    """Save the .blend at `path` (a script's --save), saying where."""
    bpy.ops.wm.save_as_mainfile(filepath=os.path.abspath(path))
    print(f"saved {path}", flush=True)


def fail(message, code=1):
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def follow_jobs(timeout=3600):
    """Headless: run the add-on's main-thread job handling until every job has ended, printing
    each new status line. Returns the scene's job status (state, message)."""
    import time

    import bpy
    from characterforge_addon.blender.generation import jobs
    settings = bpy.context.scene.characterforge
    last = ""
    deadline = time.monotonic() + timeout
    while jobs.active() and time.monotonic() < deadline:
        time.sleep(0.5)
        jobs.drain()
        if settings.job_message != last:
            last = settings.job_message
            print(f"  {settings.job_state}: {last}", flush=True)
    jobs.wait_all(timeout=60)
    return settings.job_state, settings.job_message
