"""Run in its own process (the file-size limit is per process): a backend whose data folder
cannot take a result file (RLIMIT_FSIZE below the PNG's size, as when the disk fills up),
one job, then what the job and the folder look like, as one JSON line.

  python tests/backend/disk_full_check.py DATA_DIR LIMIT_BYTES
"""

import json
import os
import resource
import signal
import sys
import time

data, limit = sys.argv[1], int(sys.argv[2])
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from characterforge_addon.backend.serving.server import Backend  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

backend = Backend(data, "tiny")
backend.engine_for("tiny").base()  # load (and read the models) before the limit
backend.start()
client, headers = TestClient(backend.app), {"x-characterforge-token": backend.token}
import base64, io  # noqa: E401,E402
from PIL import Image  # noqa: E402
buf = io.BytesIO()
Image.new("RGB", (512, 512)).save(buf, "PNG")
job = {"kind": "posed_character", "prompt": "a knight", "steps": 1, "width": 512, "height": 512, "profile": "tiny",
       "controls": {"openpose": {"image": base64.b64encode(buf.getvalue()).decode()}}}
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
job_id = client.post("/jobs", json=job, headers=headers).json()["id"]
while (status := client.get(f"/jobs/{job_id}", headers=headers).json())["status"] not in ("completed", "failed"):
    time.sleep(0.1)
health = client.get("/health", headers=headers).json()
files = sorted(os.listdir(os.path.join(data, "results", job_id))) if os.path.isdir(os.path.join(data, "results", job_id)) else []
print(json.dumps({"status": status, "files": files, "health": health}))
backend.stop()
