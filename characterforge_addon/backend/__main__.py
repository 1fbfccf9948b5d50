"""Command line: serve, doctor, convert.

  python -m characterforge_addon.backend serve [--host 127.0.0.1] [--port 7861] [--data DIR] [--profile sdxl]
  python -m characterforge_addon.backend doctor [--profile sdxl] [--data DIR] [--json]
  python -m characterforge_addon.backend convert FILE.ckpt [OUT.safetensors]
"""

import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def main(argv=None):
    from ..core.errors import UserError
    from . import models, profiles, server

    parser = argparse.ArgumentParser(prog="characterforge-backend", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7861)
    serve.add_argument("--data", default=server.default_data_dir(), help="data folder (jobs, results, token, models)")
    serve.add_argument("--profile", default="sdxl", help="default model profile (name or .toml path)")
    serve.add_argument("--memory", default="auto", choices=("auto", "gpu", "model_offload", "sequential_offload"))
    serve.add_argument("--allow-download", action="store_true", help="download missing models from the Hugging Face hub")
    serve.add_argument("--token", help="use this token instead of the generated token file (required off loopback)")
    doctor = sub.add_parser("doctor", help="check a profile's models and the device")
    doctor.add_argument("--profile", default="sdxl")
    doctor.add_argument("--data", default=server.default_data_dir())
    doctor.add_argument("--json", action="store_true")
    convert = sub.add_parser("convert", help="convert a pickle checkpoint (.bin/.ckpt/.pt) to safetensors, once")
    convert.add_argument("file")
    convert.add_argument("out", nargs="?")
    args = parser.parse_args(argv)

    if args.command != "serve" or not args.allow_download:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        if args.command == "serve":
            server.serve(args.host, args.port, args.data, args.profile, args.memory, args.allow_download, args.token)
        elif args.command == "doctor":
            data = os.path.abspath(os.path.expanduser(args.data))
            profile = profiles.load_profile(args.profile, (os.path.join(data, "profiles"),))
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
