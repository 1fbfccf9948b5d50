"""Command line: serve, serve-ray, doctor, download, convert, setup.

  python -m characterforge_addon.backend serve [--host 127.0.0.1] [--port 7861] [--data DIR] [--profile sdxl]
                                               [--memory auto] [--weights native|fp8] [--without SPEEDUP ...] [--with SPEEDUP ...]
  python -m characterforge_addon.backend serve-ray [the serve options] [--replicas N | --autoscale MIN-MAX]
                                               [--gpus-per-replica 1] [--address auto|HOST:PORT] [--local-gpus N]
  python -m characterforge_addon.backend doctor [--profile sdxl] [--data DIR] [--json]
  python -m characterforge_addon.backend download [--profile sdxl] [--role ROLE ...] [--accept-non-commercial] [--dry-run]
  python -m characterforge_addon.backend convert FILE.ckpt [OUT.safetensors]
  python -m characterforge_addon.backend setup [--dry-run] [--platform linux|windows|macos]
                                               [--gpu nvidia|amd|intel|apple|none] [--env DIR]

`setup` needs no torch: it runs from any Python 3 (it makes the environment torch lives in).
"""

import argparse
import json
import os
import sys

from ..core.spec.speedups import ON_WHERE, SPEEDUPS

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def default_data_dir():
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "characterforge")


def _parser():
    parser = argparse.ArgumentParser(prog="characterforge-backend", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve_ray = sub.add_parser("serve-ray", help="run the HTTP server with the jobs on engine replicas of a Ray "
                                                 "Serve application (several GPUs or machines)")
    for parser_ in (serve, serve_ray):
        _serve_options(parser_)
    serve_ray.add_argument("--replicas", type=int, default=1, help="engine replicas, one job at a time each")
    serve_ray.add_argument("--autoscale", metavar="MIN-MAX", type=_bounds,
                           help="let Serve scale the replicas between MIN and MAX with the queue")
    serve_ray.add_argument("--gpus-per-replica", type=float, default=1.0, help="GPUs Ray reserves for each replica")
    serve_ray.add_argument("--cpus-per-replica", type=float, default=1.0,
                           help="CPUs Ray reserves for each replica (what is left runs batch.py --ray's map tasks)")
    serve_ray.add_argument("--address", help="join this Ray cluster ('auto': the one on this machine; default: "
                                             "start one here)")
    serve_ray.add_argument("--local-gpus", type=int, help="GPUs a cluster started here offers (default: detected)")
    doctor = sub.add_parser("doctor", help="check a profile's models and the device")
    doctor.add_argument("--profile", default="sdxl")
    doctor.add_argument("--data", default=default_data_dir())
    doctor.add_argument("--json", action="store_true")
    download = sub.add_parser("download", help="download a profile's models (only the files the loader reads)")
    download.add_argument("--profile", default="sdxl")
    download.add_argument("--data", default=default_data_dir())
    download.add_argument("--role", action="append", default=[],
                          help="an optional role to download too (repeatable); the core roles always come")
    download.add_argument("--accept-non-commercial", action="store_true",
                          help="agree to the non-commercial licence of the roles that have one (FaceID)")
    download.add_argument("--dry-run", action="store_true", help="print the files, sizes and licences; fetch nothing")
    download.add_argument("--json", action="store_true", help="progress as JSON lines (for the add-on)")
    convert = sub.add_parser("convert", help="convert a pickle checkpoint (.bin/.ckpt/.pt) to safetensors, once")
    convert.add_argument("file")
    convert.add_argument("out", nargs="?")
    setup = sub.add_parser("setup", help="make the backend's environment with the PyTorch build for this GPU")
    setup.add_argument("--dry-run", action="store_true", help="print the commands, one per line, and run nothing")
    setup.add_argument("--platform", choices=("linux", "windows", "macos"), help="default: this machine's")
    setup.add_argument("--gpu", choices=("nvidia", "amd", "intel", "apple", "none"), help="default: detected")
    setup.add_argument("--env", default=os.path.join(default_data_dir(), "backend-env"), help="environment folder")
    setup.add_argument("--uv", help="the uv program to use (default: uv on PATH, else venv + pip)")
    return parser


def _setup(args):
    import shutil

    from ..core.setup import install_plan, installer
    from ..core.setup.gpus import detect_gpus, main_vendor
    system = install_plan.platform_name(args.platform)
    here = system == install_plan.platform_name()  # else: a plan for another machine, to read
    gpus = detect_gpus(install_plan.SYSTEMS[system]) if here else []
    default = main_vendor(gpus) if here else ("apple" if system == "macos" else "none")
    tgt = install_plan.target(system, args.gpu or default,
                              next((g.driver for g in gpus if g.vendor == "nvidia"), ""))
    uv = args.uv or (shutil.which("uv") if here else None)
    env = os.path.abspath(args.env) if here else args.env
    steps = install_plan.plan(tgt, env, uv=uv, base_python=sys.executable if here else "python")
    print(f"# {system}, GPU {tgt.gpu} (found: {', '.join(g.name for g in gpus) or 'none'}): {tgt.label}", file=sys.stderr)
    if args.dry_run:
        print(install_plan.format_plan(steps, system))
        return 0
    if not uv:
        refusal = install_plan.pip_fallback_refusal(sys.version_info)
        if refusal:
            print(f"error: {refusal}", file=sys.stderr)
            return 2
    if not here:
        print(f"error: this is a {install_plan.platform_name()} machine: a {system} plan can only be printed "
              "(--dry-run)", file=sys.stderr)
        return 2
    log = os.path.join(os.path.dirname(env), "backend-setup.log")
    installer.run(steps, env, tgt.label, log,
                  report=lambda progress, message: print(f"[{progress:4.0%}] {message}", file=sys.stderr))
    print(install_plan.env_python(env, system))
    return 0


def _serve_options(parser):
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7861)
    parser.add_argument("--data", default=default_data_dir(), help="data folder (jobs, results, token, models)")
    parser.add_argument("--profile", default="sdxl", help="default model profile (name or .toml path)")
    parser.add_argument("--memory", default="auto",
                       choices=("auto", "gpu", "model_offload", "group_offload", "sequential_offload"))
    parser.add_argument("--weights", default="native", choices=("native", "fp8"),
                       help="fp8: keep the denoiser's weights in float8 (half its memory, slightly different pictures)")
    parser.add_argument("--without", action="append", default=[], choices=sorted(SPEEDUPS), metavar="SPEEDUP",
                       help="turn one speed-up of the fast path off (repeatable): " + "; ".join(
                           f"{name}: {what}" for name, what in SPEEDUPS.items()).replace("%", "%%"))
    parser.add_argument("--with", dest="also", action="append", default=[], choices=sorted(ON_WHERE), metavar="SPEEDUP",
                       help="turn on a speed-up that is on by default only where it pays: " + "; ".join(
                           f"{name}: on {where}" for name, where in ON_WHERE.items()))
    parser.add_argument("--allow-download", action="store_true", help="download missing models from the Hugging Face hub")
    parser.add_argument("--token", help="use this token instead of the generated token file (required off loopback)")


def _bounds(text):
    low, _, high = text.partition("-")
    if not (low.isdigit() and high.isdigit()) or not 1 <= int(low) <= int(high):
        raise argparse.ArgumentTypeError(f"{text!r}: give MIN-MAX replicas, e.g. 1-4")
    return int(low), int(high)


def main(argv=None):
    from ..core.errors import UserError

    args = _parser().parse_args(argv)
    if args.command != "download" and (args.command not in ("serve", "serve-ray") or not args.allow_download):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if args.command == "setup":
            return _setup(args)
        from .models import models, profiles
        if args.command == "serve":
            from .serving import server
            server.serve(args.host, args.port, args.data, args.profile, args.memory, args.allow_download, args.token,
                         weights=args.weights, without=args.without, also=args.also)
        elif args.command == "serve-ray":
            try:
                from .serving import ray_serve
            except ImportError as exc:
                raise UserError(f"serve-ray needs Ray ({exc}): install it into this environment with "
                                f"{sys.executable} -m pip install 'ray[serve]==2.60.0'") from None
            ray_serve.serve_ray(args.host, args.port, args.data, args.profile, args.memory, args.allow_download,
                                args.token, args.weights, args.without, args.replicas, args.autoscale,
                                args.gpus_per_replica, args.address, args.local_gpus, args.cpus_per_replica, args.also)
        elif args.command in ("doctor", "download"):
            data = os.path.abspath(os.path.expanduser(args.data))
            profile = profiles.load_profile(args.profile, (os.path.join(data, "profiles"),))
            if args.command == "download":
                from .models import downloads
                return downloads.main(profile, args.role, args.accept_non_commercial, args.dry_run, args.json)
            report = models.doctor(profile, os.path.join(data, "models"))
            print(json.dumps(report, indent=1) if args.json else models.format_doctor(report))
            return 0 if report["ready"] else 3
        elif args.command == "convert":
            out, count = models.convert(args.file, args.out)
            print(f"wrote {out} ({count} tensors); point the profile at it")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
