"""The backend's command line, except that the process kills itself (SIGKILL, as a power cut or
the OOM killer would) at the moment a result PNG is being renamed into place.

  python tests/backend/kill_on_rename.py serve --data DIR ...
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
_replace = os.replace


def replace(src, dst, *args, **kwargs):
    if str(dst).endswith(".png") and f"{os.sep}results{os.sep}" in str(dst):
        os.kill(os.getpid(), signal.SIGKILL)
    return _replace(src, dst, *args, **kwargs)


os.replace = replace
from characterforge_addon.backend.__main__ import main  # noqa: E402

sys.exit(main())
