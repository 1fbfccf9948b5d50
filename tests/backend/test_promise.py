"""The promise of validation (issue 12), as a property: job specs generated from the schema the
backend publishes, valid and near-valid. Every spec is answered (a field error or accepted,
never a crash); the published schema never refuses what the validator accepts; and every
accepted spec runs to completion on the tiny models, or fails with a message meant for the user,
never a traceback.

`make test` runs a few; the soak (RELIABILITY.md) sets CHARACTERFORGE_PROMISE_EXAMPLES.
"""

import base64
import io
import json
import os

import jsonschema_rs
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import wait
from characterforge_addon.core.spec.job_spec import JobSpecError, json_schemas, validate_job

EXAMPLES = int(os.environ.get("CHARACTERFORGE_PROMISE_EXAMPLES", "8"))
SCHEMAS = json_schemas()
CHECKERS = {kind: jsonschema_rs.validator_for(schema) for kind, schema in SCHEMAS.items()}
# what a job costs on the CPU, kept small; the schema's own limits are what is being tested
CAPS = {"width": (64, 128), "height": (64, 128), "steps": (1, 3), "batch": (1, 2), "tile": (64, 128),
        "overlap": (0, 24), "size": (0, 64), "max_tries": (1, 2), "grow": (0, 16), "feather": (0, 8)}
FACTOR_MAX = 1.5
NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,8}", fullmatch=True)


def png(width, height, seed):
    pixels = np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def boxes(size):
    w, h = size

    @st.composite
    def box(draw):
        x0, y0 = draw(st.integers(0, w - 8)), draw(st.integers(0, h - 8))
        return [x0, y0, draw(st.integers(x0 + 1, w)), draw(st.integers(y0 + 1, h))]
    return box()


def from_schema(schema, key, size):
    """A strategy of values valid for `schema` (a piece of the published JSON Schema)."""
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "anyOf" in schema and schema["anyOf"][0].get("contentMediaType") == "image/png":
        return from_schema(schema["anyOf"][0], key, size)  # inline: pictures by hash have their own tests
    if "anyOf" in schema:
        return st.one_of([from_schema(s, key, size) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "integer":
        lo, hi = CAPS.get(key, (schema["minimum"], schema["maximum"]))
        step = schema.get("multipleOf", 1)
        return st.integers(-(-lo // step), hi // step).map(lambda v: v * step)
    if kind == "number":
        hi = FACTOR_MAX if key == "factor" else schema["maximum"]
        return st.floats(schema["minimum"], hi, allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "string":
        if schema.get("contentMediaType") == "image/png":
            return st.integers(0, 2**16).map(lambda seed: png(*size, seed))
        if "pattern" in schema:
            return NAMES
        return st.text(max_size=30)
    if kind == "array":
        if schema.get("minItems") == 4 and schema.get("maxItems") == 4:  # a box in the image
            return boxes(size)
        lo = schema["minItems"]
        return st.lists(from_schema(schema["items"], key, size), min_size=lo, max_size=max(lo, min(2, schema["maxItems"])))
    if kind == "object":
        properties = schema.get("properties", {})
        if not properties and schema["additionalProperties"] is False:  # an object that must stay empty
            return st.just({})
        if not properties:
            return st.dictionaries(NAMES, from_schema(schema["additionalProperties"], key, size), max_size=2)
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {k: from_schema(v, k, size) for k, v in properties.items() if k in required},
            optional={k: from_schema(v, k, size) for k, v in properties.items() if k not in required})
    raise AssertionError(f"no strategy for {schema}")


@st.composite
def specs(draw):
    kind = draw(st.sampled_from(sorted(SCHEMAS)))
    size = (draw(st.sampled_from([64, 128])), draw(st.sampled_from([64, 128])))
    schema = SCHEMAS[kind]
    spec = draw(from_schema(schema, "", size))
    spec["profile"] = "tiny"
    if "width" in schema["properties"]:  # the kinds that make pictures (a LoRA or a found pose has no size)
        spec.update(width=size[0], height=size[1])
    for holder in (spec, spec.get("relight") or {}):  # a light reference mostly from the picture's own camera
        if "light" in holder and "view" in holder and draw(st.integers(0, 3)):
            holder["light"]["view"] = holder["view"]
    return spec


def leaves(value, path=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, path + (k,))
    elif isinstance(value, list) and value:
        yield from leaves(value[0], path + (0,))
    else:
        yield path


NEAR = st.sampled_from([None, True, -1, 10**30, 1e308, float("nan"), "", "x" * 5000, "a\ud800", [], {}, [1, 2],
                        {"unknown": 1}, 65, 0.5])


@st.composite
def near_valid(draw):
    spec = draw(specs())
    paths = list(leaves(spec))
    path = draw(st.sampled_from(paths))
    holder = spec
    for part in path[:-1]:
        holder = holder[part]
    if path:
        holder[path[-1]] = draw(NEAR)
    if draw(st.booleans()):
        holder_key = draw(st.sampled_from(["stpes", "extra", "mode"]))
        spec[holder_key] = 1
    return spec


def schema_accepts(spec):
    try:
        return CHECKERS[spec["kind"]].is_valid(spec)
    except (ValueError, TypeError, KeyError):  # text the JSON Schema library cannot even hold
        return False


@settings(max_examples=max(EXAMPLES * 40, 200), deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(spec=st.one_of(specs(), near_valid()))
def test_every_spec_is_answered_and_the_schema_never_refuses_an_accepted_one(spec):
    try:
        checked = validate_job(spec)
    except JobSpecError as exc:
        assert exc.field and str(exc)
        return
    assert schema_accepts(spec), ("the validator accepts what the published schema refuses", spec)
    json.dumps(checked, allow_nan=False)


def test_generated_valid_specs_are_mostly_accepted():
    """The generator speaks the schema: most of its specs pass the validator too (cross-field
    rules refuse the rest), so the run below runs real jobs."""
    accepted = 0

    # With relights, animations and found poses the cross-field rules refuse more: 9-17 % of 200
    # examples passed, and which examples Hypothesis draws shifts with what ran before in the
    # process (derandomized or not), so 600 examples against a bar of 40 (below 7 %).
    @settings(max_examples=600, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(spec=specs())
    def count(spec):
        nonlocal accepted
        assert schema_accepts(spec) or not _accepted(spec)
        accepted += _accepted(spec)
    count()
    assert accepted >= 40, accepted


def _accepted(spec):
    try:
        validate_job(spec)
        return True
    except JobSpecError:
        return False


@pytest.fixture(scope="module")
def running(tmp_path_factory, models_dir):
    from characterforge_addon.backend.serving.server import Backend
    data = tmp_path_factory.mktemp("promise")
    (data / "models").symlink_to(models_dir)
    backend = Backend(str(data), "tiny")
    backend.start()
    yield backend, TestClient(backend.app, raise_server_exceptions=False), {"x-characterforge-token": backend.token}
    backend.stop()


OUTCOMES = {}


def test_every_accepted_spec_runs_to_completion(running):
    backend, client, headers = running

    # Half the examples are specs the validator accepts (8 plain examples, ~10 % accepted, were
    # all refused in some runs), so every run sends real jobs; the other half may be refused.
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(spec=st.booleans().flatmap(lambda accepted: specs().filter(_accepted) if accepted else specs()))
    def run(spec):
        r = client.post("/jobs", content=json.dumps(spec), headers=dict(headers, **{"content-type": "application/json"}))
        assert r.status_code in (201, 400), r.text[:500]
        if r.status_code == 400:
            OUTCOMES["refused"] = OUTCOMES.get("refused", 0) + 1
            return
        status = wait(client, headers, r.json()["id"], timeout=600)
        OUTCOMES[status["status"]] = OUTCOMES.get(status["status"], 0) + 1
        assert status["status"] in ("completed", "failed"), status
        if status["status"] == "failed":
            assert "traceback" not in status["error"], (spec["kind"], status["error"])
    run()
    print(f"\npromise: {OUTCOMES}")
    assert OUTCOMES.get("completed", 0) >= 1
