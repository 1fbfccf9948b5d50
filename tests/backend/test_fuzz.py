"""Fuzzing: the HTTP API from its own OpenAPI schema (schemathesis), and job specs mutated field
by field (hypothesis). No request may crash the server or answer without our error shape.

`make test` runs a small number of examples; the soak run (RELIABILITY.md) sets
CHARACTERFORGE_FUZZ_EXAMPLES for 10,000+ requests.
"""

import json
import os
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import png_b64, spec

EXAMPLES = int(os.environ.get("CHARACTERFORGE_FUZZ_EXAMPLES", "60"))
COUNTS = {"requests": 0, "server_errors": 0, "slowest_s": 0.0}
ERROR_KEYS = {"type", "message", "details", "fix"}


@pytest.fixture
def fuzzed(make_backend):
    backend = make_backend()  # the runner is not started: valid jobs queue up, then the queue answers 429
    return backend


def test_api_never_fails_from_its_schema(fuzzed):
    """Every operation of the OpenAPI schema, valid and invalid data (schemathesis strategies
    driven by hypothesis: its pytest plugin does not run on pytest 9)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app, headers={"x-characterforge-token": fuzzed.token})
    schema.config.generation.update(modes=list(schemathesis.GenerationMode))
    headers = {"x-characterforge-token": fuzzed.token}

    @settings(max_examples=EXAMPLES * 4, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=schema.as_strategy())
    def call(case):
        start = time.perf_counter()
        response = case.call(headers=headers)
        took = time.perf_counter() - start
        COUNTS["requests"] += 1
        COUNTS["slowest_s"] = max(COUNTS["slowest_s"], took)
        COUNTS["server_errors"] += response.status_code >= 500
        assert response.status_code < 500, (case.method, case.path, response.text[:500])
        assert took < 5.0, "a request took over 5 s"
        if response.status_code >= 400:
            assert ERROR_KEYS <= set(response.json()), response.text[:500]

    call()
    print(f"\nfuzz: {COUNTS['requests']} requests, {COUNTS['server_errors']} server errors, slowest "
          f"{COUNTS['slowest_s']:.3f} s")


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**40, 2**40) |
                           st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=8)
FIELDS = ["kind", "prompt", "negative_prompt", "seed", "steps", "guidance", "batch", "width", "height", "profile",
          "name", "controls", "identity", "keypoints", "retry", "views", "upscale", "faces", "style", "background",
          "characters", "composite", "hands", "image", "expression", "custom", "face_box", "strength", "detector"]


def sheet_spec():
    return spec(kind="character_sheet", views=[{"name": "front", "kind": "body", "box": [0, 0, 32, 32]}])


def shot_spec():
    return spec(kind="shot", background={"image": png_b64()},
                characters=[{"name": "Hero", "prompt": "a knight", "mask": png_b64(),
                             "identity": {"images": [png_b64()], "scale": 0.5}}],
                composite={"mode": "cutout", "grow": 8}, hands={"boxes": [[0, 0, 16, 16]]})


def expression_spec():
    return spec(kind="expression", controls={}, image=png_b64(), expression="sad", face_box=[8, 8, 40, 40])


def test_the_specs_mutated_below_are_valid():
    from characterforge_addon.core.spec.job_spec import validate_job
    for base in (spec(), sheet_spec(), shot_spec(), expression_spec()):
        validate_job(base)


@settings(max_examples=max(EXAMPLES * 5, 200), deadline=None)
@given(base=st.sampled_from([spec(), sheet_spec(), shot_spec(), expression_spec()]),
       field=st.sampled_from(FIELDS + ["controls.openpose", "identity.images", "views.0", "views.0.box",
                                       "upscale.factor", "faces.size", "background.image", "characters.0",
                                       "characters.0.mask", "characters.0.name", "characters.0.identity",
                                       "characters.0.identity.embedding", "composite.mode", "composite.grow",
                                       "hands.boxes", "hands.strength"]), value=json_values)
def test_validator_refuses_any_mutation_with_a_field_error(base, field, value):
    from characterforge_addon.core.spec.job_spec import JobSpecError, validate_job
    mutated = json.loads(json.dumps(base))
    target, *rest = field.split(".")
    holder = mutated
    path = [target] + rest
    for key in path[:-1]:
        holder = holder.setdefault(key, {}) if isinstance(holder, dict) else holder
        if isinstance(holder, list):
            holder = holder[0] if holder else {}
    if isinstance(holder, dict):
        holder[path[-1]] = value
    try:
        out = validate_job(mutated)
    except JobSpecError as exc:
        assert exc.field and str(exc)
        return
    json.dumps(out, allow_nan=False)  # whatever passes is plain, finite JSON


def test_images_that_are_not_pngs_are_refused_not_crashed(fuzzed):
    from fastapi.testclient import TestClient
    client, headers = TestClient(fuzzed.app), {"x-characterforge-token": fuzzed.token}
    import base64
    for data in (b"GIF89a" + b"\0" * 20, b"\x89PNG\r\n\x1a\n" + b"\xff" * 40, b""):
        job = spec(controls={"openpose": {"image": base64.b64encode(data).decode() or "AA=="}})
        response = client.post("/jobs", json=job, headers=headers)
        assert response.status_code == 400 and ERROR_KEYS <= set(response.json())
    good = spec(controls={"openpose": {"image": png_b64()}})
    assert client.post("/jobs", json=good, headers=headers).status_code == 201
