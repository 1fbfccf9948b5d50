"""The HTTP API (FastAPI). Every request needs the token; browser pages are refused; bodies
are capped as they stream in; every error answers {type, message, details, fix}.
The job spec's schema in the OpenAPI document is the one the validator reads (core.job_spec)."""

import base64
import binascii
import hmac
import json
import os
import re
import tempfile

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...core.characters.character_lora import lora_record
from ...core.errors import UserError
from ...core.spec.animation_spec import LIMITS as ANIMATION_LIMITS
from ...core.spec.job_spec import (image_fields, JOB_KINDS, JobSpecError, json_schemas, LIMITS, picture_ref, picture_refs,
                                   validate_job)
from ...core.spec.spec_fields import safe_name
from ...core.spec.training_spec import SHA256_PATTERN
from ..engine.pictures import decode_image_bytes
from ..models.lora_files import MAX_UPLOAD_BYTES

TOKEN_HEADER = "x-characterforge-token"
MAX_REQUEST_BYTES = 4 * LIMITS["max_control_bytes"] + 1024 * 1024
MAX_PICTURE_BYTES = ANIMATION_LIMITS["max_media_bytes"]  # one picture PUT to /pictures: a 1280x720 frame's map
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
SHA256 = re.compile(SHA256_PATTERN)
UPLOAD_PATH = re.compile(r"^/(loras|pictures)/[^/]+$")  # PUT here streams to disk: a LoRA is larger than any job


def error(status, type_, message, details=None, fix=""):
    return JSONResponse(status_code=status, content={"type": type_, "message": message, "details": details or {},
                                                     "fix": fix})


def _too_large(size, limit=MAX_REQUEST_BYTES):
    return error(413, "too_large", f"request of {size} bytes is over the {limit}-byte limit",
                 fix="send smaller control images" if limit == MAX_REQUEST_BYTES else "send a smaller file")


async def _received(request, folder, limit, keep, what, fix):
    """A PUT's body streamed into a temporary file in `folder` (413 past `limit` bytes), then
    answered by `await keep(path)`; 507 when the disk fills (`what` could not be kept; `fix`).
    The temporary file never outlives the request."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        size = 0
        with os.fdopen(fd, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    return _too_large(f"over {limit}", limit)
                f.write(chunk)
        return await keep(tmp)
    except OSError as exc:
        return error(507, "disk_full", f"could not keep the {what} in {folder} ({exc.strerror or exc})", fix=fix)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class Guard:
    """Plain ASGI in front of the app: browser pages refused (any Origin, `null` from sandboxed
    and file:// pages too, or a browser's Sec-Fetch-Mode), the token checked, and the body counted
    as it arrives, so a chunked body without Content-Length cannot grow past the cap in memory."""

    def __init__(self, app, token):
        self.app, self.token = app, token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        refusal = self._refusal(headers)
        upload = scope["method"] == "PUT" and UPLOAD_PATH.match(scope["path"])
        if refusal is None:
            limit = MAX_REQUEST_BYTES if not upload else MAX_PICTURE_BYTES if upload.group(1) == "pictures" else \
                MAX_UPLOAD_BYTES
            refusal = self._length_refusal(headers, limit)
        if refusal is None and upload:
            return await self.app(scope, receive, send)  # the upload route counts and streams it to disk
        if refusal is None:
            body, refusal = await self._body(receive, headers)
        if refusal is not None:
            return await refusal(scope, receive, send)
        sent = False

        async def replay():  # the app reads the body we already hold, then waits as usual
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _refusal(self, headers):
        origin = headers.get("origin")
        if origin is not None or "sec-fetch-mode" in headers:
            return error(403, "forbidden_origin", f"requests from web pages ({origin or 'a browser'}) are refused",
                         fix="only the Blender add-on and local tools may call this server")
        supplied = headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(supplied.encode("utf-8", "replace"), self.token):
            return error(401, "unauthorized", "missing or wrong token" if supplied else "missing token",
                         fix=f"send the token from the backend's token file in the {TOKEN_HEADER} header")
        return None

    @staticmethod
    def _length_refusal(headers, limit):
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return _too_large(length, limit)
        return None

    @staticmethod
    async def _body(receive, headers):
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", Response(status_code=400)  # nobody is listening for the answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_REQUEST_BYTES:
                return b"", _too_large(f"over {MAX_REQUEST_BYTES}")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None


def _openapi(app):
    """FastAPI's document with each job kind's spec schema as a component, POST /jobs taking one
    of them (told apart by `kind`)."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        doc.setdefault("components", {}).setdefault("schemas", {}).update(json_schemas())
        refs = {kind: f"#/components/schemas/{kind}" for kind in JOB_KINDS}
        doc["paths"]["/jobs"]["post"]["requestBody"] = {"required": True, "content": {"application/json": {"schema": {
            "oneOf": [{"$ref": ref} for ref in refs.values()],
            "discriminator": {"propertyName": "kind", "mapping": refs}}}}}
        app.openapi_schema = doc
    return app.openapi_schema


def _parse_json(body):
    try:
        return json.loads(body)
    except RecursionError:
        raise UserError("the request body nests too deeply to be a job spec") from None
    except ValueError as exc:  # bad JSON, bad UTF-8, a number of over 4300 digits
        raise UserError(f"the request body is not valid JSON: {str(exc)[:200]}") from None


def _missing_pictures(missing):
    """The answer to a job naming pictures by hash that this backend lacks: which, so the
    client sends them (PUT /pictures/SHA256) and the job again."""
    field = sorted(missing)[0]
    return error(400, "missing_pictures", f"{field}: this backend has no picture {missing[field]} "
                 f"({len(set(missing.values()))} of the job's pictures named by hash are missing)",
                 {"field": field, "missing": sorted(set(missing.values()))},
                 "send each with PUT /pictures/SHA256 (the add-on does this itself), then the job again")


def create_app(store, runner, token, doctor_report, check_runnable=lambda job: None, loras=None, speedups=(),
               version="0.1.0", pictures=None):
    """`check_runnable(job)` raises JobSpecError when the job's profile cannot run it;
    `speedups`: the fast path's speed-ups on (said by /health); `pictures`: the PictureStore
    that pictures named by hash come from (None: every hash is missing)."""
    app = FastAPI(title="CharacterForge backend", version=version,
                  description="Local generation server for the CharacterForge Blender add-on.")
    app.add_middleware(Guard, token=token)
    app.openapi = lambda: _openapi(app)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request, exc):
        return error(400, "invalid_request", "the request body is not valid JSON or not an object",
                     {"errors": [str(e.get("msg")) for e in exc.errors()][:5]}, "send the job spec as a JSON object")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        return error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def crash(request, exc):  # never a bare 500 page: say what failed
        return error(500, "server_error", f"{type(exc).__name__}: {exc}", fix="see the backend log")

    @app.get("/health")
    def health():
        return {"status": "ok", "version": version, "pending": store.count("pending"),
                "running": store.count("running"), "workers": runner.workers, "notices": store.notices,
                "speedups": sorted(speedups)}

    @app.get("/models")
    def models_report(profile: str | None = None):
        """The doctor's report on a profile (default: the backend's): each role present or
        missing, what it can do, and its `identity` (what pins each model's weights; a batch
        keeps it in its units' fingerprints)."""
        if profile is None:
            return doctor_report()
        try:
            safe_name(profile, "profile")
        except JobSpecError as exc:
            return error(400, "invalid_request", str(exc), {"field": "profile"}, exc.fix)
        try:
            return doctor_report(profile)
        except UserError as exc:
            return error(404, "not_found", str(exc), fix="choose a profile the doctor lists")

    @app.post("/jobs", status_code=201)
    async def submit(request: Request):
        """Queue a job: the body is one job spec (see the components' schemas, one per kind)."""
        try:
            spec = _parse_json(await request.body())
        except UserError as exc:
            return error(400, "invalid_request", str(exc), fix="send the job spec as a JSON object")
        try:
            job = validate_job(spec)
            for field, image in image_fields(job):  # every picture must be a readable PNG before the job is queued
                if picture_ref(image):
                    continue  # kept by hash: checked when it was sent
                try:
                    data = base64.b64decode(image, validate=True)
                except (binascii.Error, ValueError):
                    raise JobSpecError(field, "is not base64") from None
                decode_image_bytes(data, field)
            if picture_refs(job):  # pictures named by hash go back inline: nothing after this sees a hash
                missing = pictures.missing(job) if pictures is not None else picture_refs(job)
                if missing:
                    return _missing_pictures(missing)
                try:
                    job = pictures.resolve(job)
                except KeyError:  # dropped from the store since: ask for it again
                    return _missing_pictures(pictures.missing(job))
            check_runnable(job)
        except JobSpecError as exc:
            return error(400, "invalid_job", str(exc), {"field": exc.field}, exc.fix)
        except UserError as exc:
            return error(400, "invalid_job", str(exc))
        if runner.queue_full():
            wait_s = runner.retry_after()
            answer = error(429, "queue_full", f"{runner.max_pending} jobs are already waiting",
                           {"retry_after_s": wait_s}, f"send again in {wait_s} s, or cancel some jobs")
            answer.headers["Retry-After"] = str(wait_s)
            return answer
        return {"id": runner.submit(job)}

    def _job_or_404(job_id):
        job = store.get(job_id) if JOB_ID.match(job_id) else None
        if job is None:
            return None, error(404, "not_found", f"no job {job_id!r}")
        return job, None

    @app.get("/jobs/{job_id}")
    def status(job_id: str):
        job, missing = _job_or_404(job_id)
        if missing:
            return missing
        return {"id": job["id"], "kind": job["spec"]["kind"], "status": job["status"], "step": job["step"],
                "total": job["total"], "stage": job["stage"], "eta_s": runner.eta(job), "error": job["error"],
                "results": job["results"], "created": job["created"], "started": job["started"],
                "finished": job["finished"], "attempts": job["attempts"]}

    @app.post("/jobs/{job_id}/cancel")
    def cancel(job_id: str):
        job, missing = _job_or_404(job_id)
        if missing:
            return missing
        if job["status"] in ("completed", "failed", "canceled"):
            return {"id": job_id, "status": job["status"], "canceled": False}
        runner.cancel(job_id)
        return {"id": job_id, "status": store.get(job_id)["status"], "canceled": True}

    @app.get("/jobs/{job_id}/preview")
    def preview(job_id: str):
        """A small picture of the running job's latest denoising step (404 when there is none)."""
        job, missing = _job_or_404(job_id)
        if missing:
            return missing
        png = runner.previews.get(job_id)
        if png is None:
            return error(404, "no_preview", f"job {job_id} has no preview now ({job['status']})",
                         fix="previews exist only while a job denoises")
        return Response(png, media_type="image/png")

    @app.get("/jobs/{job_id}/results/{name}")
    def result(job_id: str, name: str):
        job, missing = _job_or_404(job_id)
        if missing:
            return missing
        if name not in job["results"]:
            return error(404, "not_found", f"job {job_id} has no result {name!r}",
                         {"results": job["results"], "status": job["status"]})
        try:
            path = store.result_path(job_id, name)
        except (UserError, ValueError) as exc:
            return error(400, "invalid_name", str(exc))
        if not os.path.isfile(path):
            return error(404, "not_found", f"result file of {name!r} is gone from the data folder")
        return FileResponse(path, media_type="image/png" if path.endswith(".png") else "application/octet-stream")

    def _lora_or_error(sha256):
        if not SHA256.match(sha256):
            return error(400, "invalid_name", f"{sha256[:80]!r} is not a SHA-256", fix="name a LoRA by its SHA-256 in hex")
        if loras is None or not loras.has(sha256):
            return error(404, "not_found", f"this backend has no LoRA {sha256}", fix="send it with PUT /loras/SHA256")
        return None

    @app.get("/loras/{sha256}")
    def lora(sha256: str):
        """Whether this backend holds the LoRA (and what it records about its training)."""
        missing = _lora_or_error(sha256)
        if missing:
            return missing
        record, _ = lora_record(loras.path(sha256))
        return {"sha256": sha256, "bytes": os.path.getsize(loras.path(sha256)), "record": record}

    @app.put("/loras/{sha256}", status_code=201)
    async def upload_lora(sha256: str, request: Request):
        """Keep a LoRA file (a .safetensors up to 2 GiB) under its SHA-256, which must match it."""
        if not SHA256.match(sha256) or loras is None:
            return _lora_or_error(sha256)
        if loras.has(sha256):
            return {"sha256": sha256, "kept": "already"}

        async def keep(path):
            try:
                loras.keep(path, sha256)
            except UserError as exc:
                return error(400, "invalid_lora", f"the file sent as LoRA {sha256[:12]}…: {exc}",
                             fix="send the .safetensors file the character's pack holds (lora/)")
            return {"sha256": sha256, "kept": "now"}
        return await _received(request, loras.folder, MAX_UPLOAD_BYTES, keep, "LoRA",
                               "free disk space there and send it again")

    def _picture_or_error(sha256):
        if not SHA256.match(sha256):
            return error(400, "invalid_name", f"{sha256[:80]!r} is not a SHA-256",
                         fix="name a picture by the SHA-256 of its PNG bytes in lowercase hex")
        if pictures is None or not pictures.has(sha256):
            return error(404, "not_found", f"this backend has no picture {sha256}",
                         fix="send it with PUT /pictures/SHA256")
        return None

    @app.get("/pictures/{sha256}")
    def picture(sha256: str):
        """Whether this backend keeps the picture (a job may then name it as sha256:<hex>)."""
        missing = _picture_or_error(sha256)
        if missing:
            return missing
        return {"sha256": sha256, "bytes": os.path.getsize(pictures.path(sha256))}

    @app.put("/pictures/{sha256}", status_code=201)
    async def upload_picture(sha256: str, request: Request):
        """Keep a PNG (up to 16 MiB) under its SHA-256, which must match it; jobs then name it as
        sha256:<hex> wherever they take a picture, and animation segments by its SHA-256."""
        if not SHA256.match(sha256) or pictures is None:
            return _picture_or_error(sha256)
        if pictures.has(sha256):
            return {"sha256": sha256, "kept": "already"}

        async def keep(path):
            try:
                kept = await run_in_threadpool(pictures.keep_file, sha256, path)
            except UserError as exc:
                return error(400, "invalid_picture", str(exc), {"sha256": sha256},
                             "send the PNG file's bytes under the SHA-256 of those bytes")
            return {"sha256": sha256, "kept": "now" if kept else "already"}
        return await _received(request, pictures.folder, MAX_PICTURE_BYTES, keep, "picture",
                               "free disk space there, or send the picture inline in the job")

    return app
