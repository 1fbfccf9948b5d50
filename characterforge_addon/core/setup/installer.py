"""Run an install plan's steps (install_plan.py), each command's output into one log file, and
mark the environment ready only once its final check passed: a failed or interrupted set-up
never leaves an environment that looks finished."""

import os
import subprocess
import time

from ..errors import UserError
from .install_plan import READY_FILE


def ready_label(env_dir):
    """What a finished environment was made for ("PyTorch with CUDA 13.0 …"), or None."""
    try:
        with open(os.path.join(env_dir, READY_FILE), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def run(steps, env_dir, label, log_path, report=lambda progress, message: None):
    """Run `steps` in order; `report(progress 0-1, message)` after each line of output. Raises
    UserError naming the step, its exit code, its last lines and the log."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)) or ".", exist_ok=True)
    marker = os.path.join(env_dir, READY_FILE)
    if os.path.exists(marker):
        os.remove(marker)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n=== CharacterForge backend set-up {time.strftime('%Y-%m-%d %H:%M:%S')}: {label} ===\n")
        for i, step in enumerate(steps):
            report(i / len(steps), step.what)
            log.write(f"$ {subprocess.list2cmdline(step.argv) if os.name == 'nt' else ' '.join(step.argv)}\n")
            log.flush()
            try:
                proc = subprocess.Popen(step.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        bufsize=1, errors="replace")
            except OSError as exc:
                raise UserError(f"{step.what.rstrip('…')} failed: cannot run {step.argv[0]} ({exc.strerror or exc}) "
                                f"(full log: {log_path})") from None
            tail = []
            for line in proc.stdout:
                log.write(line)
                if line.strip():
                    tail = (tail + [line.strip()])[-3:]
                    report(i / len(steps), f"{step.what} {line.strip()[:80]}")
            if proc.wait():
                log.write(f"FAILED: exit {proc.returncode}\n")
                raise UserError(f"{step.what.rstrip('…')} failed (exit {proc.returncode}): "
                                f"{' / '.join(tail) or 'no output'} (full log: {log_path})")
        with open(marker, "w", encoding="utf-8") as f:
            f.write(label + "\n")
        log.write("ready\n")
    report(1.0, f"Backend environment ready: {label}")

