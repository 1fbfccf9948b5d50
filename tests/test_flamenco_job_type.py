"""The Flamenco job type (blender_scripts/flamenco/characterforge_batch.js) through Node's own
test runner (tests/flamenco/*.test.mjs): Node 20 is part of the test machine, as Blender is."""

import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_the_flamenco_job_type_compiles_chunks_of_batch_tasks():
    node = shutil.which("node")
    assert node, "Node.js is needed to test the Flamenco job type (apt install nodejs)"
    run = subprocess.run([node, "--test", os.path.join(ROOT, "tests", "flamenco")], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout
