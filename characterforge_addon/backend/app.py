"""The HTTP API (FastAPI). Every request needs the token; browser pages are refused; every
error answers {type, message, details, fix}."""

import base64
import binascii
import hmac
import os

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..core.errors import UserError
from ..core.job_spec import JobSpecError, LIMITS, image_fields, validate_job
from .pipelines import decode_image_bytes

TOKEN_HEADER = "x-characterforge-token"
MAX_REQUEST_BYTES = 4 * LIMITS["max_control_bytes"] + 1024 * 1024


def error(status, type_, message, details=None, fix=""):
    return JSONResponse(status_code=status, content={"type": type_, "message": message, "details": details or {},
                                                     "fix": fix})


def create_app(store, runner, token, doctor_report, version="0.1.0"):
    app = FastAPI(title="CharacterForge backend", version=version,
                  description="Local generation server for the CharacterForge Blender add-on.")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        origin = request.headers.get("origin")
        if origin not in (None, "null"):
            return error(403, "forbidden_origin", f"requests from web pages ({origin}) are refused",
                         fix="only the Blender add-on and local tools may call this server")
        supplied = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            return error(401, "unauthorized", "missing or wrong token" if supplied else "missing token",
                         fix=f"send the token from the backend's token file in the {TOKEN_HEADER} header")
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_REQUEST_BYTES):
            return error(413, "too_large", f"request of {length} bytes is over the {MAX_REQUEST_BYTES}-byte limit",
                         fix="send smaller control images")
        return await call_next(request)

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
                "running": store.count("running")}

    @app.get("/models")
    def models_report():
        return doctor_report()

    @app.post("/jobs", status_code=201)
    async def submit(request: Request, spec: dict = Body(...)):
        try:
            job = validate_job(spec)
            for field, image in image_fields(job):  # every picture must be a readable PNG before the job is queued
                try:
                    data = base64.b64decode(image, validate=True)
                except (binascii.Error, ValueError):
                    raise JobSpecError(field, "is not base64") from None
                decode_image_bytes(data, field)
        except JobSpecError as exc:
            return error(400, "invalid_job", str(exc), {"field": exc.field}, exc.fix)
        except UserError as exc:
            return error(400, "invalid_job", str(exc))
        if runner.queue_full():
            return error(429, "queue_full", f"{runner.max_pending} jobs are already waiting",
                         fix="wait for jobs to finish or cancel some, then send again")
        return {"id": runner.submit(job)}

    def _job_or_404(job_id):
        job = store.get(job_id) if len(job_id) <= 64 else None
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
        return FileResponse(path, media_type="image/png")

    return app
