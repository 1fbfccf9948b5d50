"""The fast path: speed-ups on by default, each one switchable off for a user who hits a
problem with it (`serve --without NAME`, repeatable; the preferences' *Speed-ups off*); those
that pay only on some machines are on there and turned on elsewhere with `serve --with NAME`
(*Speed-ups on*). Exact ones give the same pixels as without them (tests check each);
BENCHMARKS.md has their figures. The names and what they do: core/spec/speedups.py."""

from ...core.errors import UserError
from ...core.spec.speedups import ON_WHERE, SPEEDUPS


def chosen(without=(), also=()):
    """The speed-ups on: all but those in `without`, those of ON_WHERE only where they help
    or when named in `also` (UserError naming an unknown one)."""
    for option, names in (("--without", without), ("--with", also)):
        unknown = sorted(set(names) - set(SPEEDUPS))
        if unknown:
            raise UserError(f"{option} {unknown[0]}: no such speed-up; they are {', '.join(SPEEDUPS)}")
    from .device import compile_helps  # imports torch: only when a backend starts, not for the CLI's help
    helps = set(ON_WHERE) if compile_helps() else set()
    return frozenset(n for n in SPEEDUPS if n not in ON_WHERE or n in helps or n in also) - set(without)
