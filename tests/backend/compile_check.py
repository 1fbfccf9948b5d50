"""Run in its own process (a warm start needs one: torch keeps compiled code in memory too):
a backend started with `--with compile` on DATA_DIR runs one posed job, then prints as one
JSON line the result PNG, the speed-ups its metadata names, torch's compile-cache counts and
the compiled blocks of each model.

  python tests/backend/compile_check.py DATA_DIR
"""

import base64
import io
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import torch  # noqa: E402
from characterforge_addon.backend.serving.server import Backend  # noqa: E402
from conftest import completed_job, spec  # noqa: E402
from PIL import Image  # noqa: E402
from torch._dynamo.utils import counters  # noqa: E402

torch.set_num_threads(1)
backend = Backend(sys.argv[1], "tiny", also=("compile",))
backend.start()
try:
    client, headers, status = completed_job(backend, spec(steps=2, width=64, height=64))
    png = client.get(f"/jobs/{status['id']}/results/{status['results'][0]}", headers=headers).content
    base = backend.engine_for("tiny").base()
    compiled = {name: sum(b._compiled_call_impl is not None for b in getattr(base, name).modules())
                for name in ("unet", "vae")}
finally:
    backend.stop()
record = json.loads(Image.open(io.BytesIO(png)).text["characterforge"])
print(json.dumps({"png": base64.b64encode(png).decode(), "speedups": record["speedups"],
                  "hits": counters["inductor"]["fxgraph_cache_hit"], "misses": counters["inductor"]["fxgraph_cache_miss"],
                  "cache": os.environ["TORCHINDUCTOR_CACHE_DIR"], "compiled": compiled}))
