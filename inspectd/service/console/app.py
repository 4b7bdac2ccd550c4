"""The console's routes (FastAPI): the page, its JSON API (described at /openapi.json), and server push.

Reads come from the console's snapshot store and ring; changes need a password and a same-origin request
(see auth.py) and go through the console, which logs who changed what.
"""

import asyncio
import time
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse, SendTimeoutError

from inspectd import __version__
from inspectd.logs import get_logger
from inspectd.service.console.auth import Operator, basic_credentials, cross_site_reason
from inspectd.service.console.errors import ChangeRefused

if TYPE_CHECKING:
    from inspectd.service.console.console import Console

log = get_logger("console.http")

MAX_BODY = 64 * 1024
ARTIFACT_TYPES = {
    "frame.jpg": "image/jpeg",
    "heatmap.jpg": "image/jpeg",
    "map.png": "image/png",
    "frame.png": "image/png",
}
RecordId = Annotated[str, Path(pattern=r"^\d{10}-[A-Za-z0-9_.\-]+$", max_length=200)]
CameraName = Annotated[str, Path(max_length=200)]


class PushResponse(EventSourceResponse):
    """Server push that drops a client whose send stays blocked past its timeout, and says so in the log."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            client = scope.get("client") or ("?", 0)
            log.warning(
                "console_client_dropped",
                client=f"{client[0]}:{client[1]}",
                reason="it stopped reading: its send buffer stayed full",
                send_timeout_s=self.send_timeout,
            )


class ThresholdProposal(BaseModel):
    """Thresholds to preview or apply; a missing one keeps the camera's current value."""

    model_config = ConfigDict(extra="forbid")

    image_threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="score at or above which a part fails"
    )
    pixel_threshold: float | None = Field(None, ge=0.0, le=1.0, description="anomaly level of a defect pixel")


class ReferenceRequest(BaseModel):
    """Recent good parts (record ids from the history) to add to the camera's reference bank."""

    model_config = ConfigDict(extra="forbid")

    records: list[str] = Field(min_length=1, max_length=64)


class BodyLimit:
    """Plain ASGI middleware (no buffering of streamed responses): refuses bodies over ``MAX_BODY`` (declared or
    chunked), and adds the headers that keep the page out of other sites' frames and type guesses."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            response = JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, status_code=413)
            await response(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY:
                    raise HTTPException(413, f"request body over {MAX_BODY} bytes")
            return message

        async def guarded_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                ]
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


def _static() -> Any:
    return resources.files("inspectd.service.console") / "static"


def create_app(console: "Console") -> FastAPI:
    """The console's ASGI app, bound to one Console."""

    app = FastAPI(
        title="inspectd console",
        version=__version__,
        description="Live view of the line, verdict history, models and threshold tuning of one inspectd daemon.",
        docs_url=None,
        redoc_url=None,
    )
    static_dir = _static()
    app.mount("/static", StaticFiles(directory=str(static_dir)), name="static")

    app.add_middleware(BodyLimit)

    @app.exception_handler(ChangeRefused)
    async def refused(request: Request, exc: ChangeRefused) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "console_request_failed",
            path=request.url.path,
            error=f"{type(exc).__name__}: {exc}",
            exc_info=exc,
        )
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    def operator(request: Request) -> Operator:
        """Authorise a change: same-origin request, then a known name and password."""
        address = request.client.host if request.client else "?"
        reason = cross_site_reason(
            {k.lower(): v for k, v in request.headers.items()}, request.headers.get("host")
        )
        if reason is not None:
            log.warning("console_change_refused", address=address, path=request.url.path, reason=reason)
            raise HTTPException(403, f"cross-site request refused: {reason}")
        if not console.passwords.enabled:
            raise HTTPException(403, "changes are off: set console.password_file to allow them")
        creds = basic_credentials(request.headers.get("authorization"))
        if creds is None or not console.passwords.check(*creds):
            log.warning(
                "console_change_refused",
                address=address,
                path=request.url.path,
                who=creds[0] if creds else None,
                reason="wrong or missing password",
            )
            raise HTTPException(401, "name and password required (console.password_file)")
        return Operator(creds[0], address)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse((static_dir / "index.html").read_text(), headers={"Cache-Control": "no-store"})

    @app.get("/api/health", summary="Whether the console answers")
    def health() -> dict[str, Any]:
        return {"ok": True, "version": __version__}

    @app.get(
        "/api/overview", summary="One tile per camera: latest part, verdict, score, state, fps, queue, p95"
    )
    def overview() -> dict[str, Any]:
        return console.overview()

    @app.get(
        "/api/events",
        summary="Server push (text/event-stream): the overview whenever it changes, at least once a second",
        response_class=Response,
    )
    async def events(request: Request) -> Response:
        if not console.client_opened():
            return JSONResponse(
                {"detail": "too many live connections (console.max_clients)"}, status_code=503
            )

        async def stream():
            try:
                sent, last = -1, 0.0
                interval = console.cfg.push_interval_s
                while not console.stopping:
                    now = time.monotonic()
                    version = console.snapshots.version
                    if version != sent or now - last >= interval:
                        sent, last = version, now
                        yield {"event": "overview", "data": console.overview_json()}
                    await asyncio.sleep(0.1)
            finally:
                console.client_closed()

        return PushResponse(stream(), send_timeout=console.cfg.send_timeout_s, ping=15)

    @app.get("/api/cameras/{camera}/history", summary="Recent parts of a camera, newest first")
    def history(
        camera: CameraName,
        kind: Annotated[Literal["all", "fail", "error", "pass"], Query(alias="filter")] = "all",
        limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
    ) -> list[dict[str, Any]]:
        if camera not in console.snapshots.cameras:
            raise HTTPException(404, f"camera {camera!r} is not in the config")
        return console.snapshots.history(camera, kind, limit)

    @app.get("/api/fails", summary="Recent fails of every camera, newest first (the gallery)")
    def fails(limit: Annotated[int, Query(ge=1, le=1000)] = 24) -> list[dict[str, Any]]:
        items = [r for c in console.snapshots.cameras for r in console.snapshots.history(c, "fail", limit)]
        items.sort(key=lambda r: r["id"].split("-", 1)[0], reverse=True)
        return items[:limit]

    @app.get("/api/records/{record_id}", summary="One part: verdict, score, thresholds, defect boxes")
    def record(record_id: RecordId) -> dict[str, Any]:
        found = console.snapshots.find(record_id)
        if found is None:
            raise HTTPException(404, f"part {record_id} is not in the recent history")
        return found

    @app.get(
        "/api/records/{record_id}/{artifact}",
        summary="A part's stored frame (frame.jpg), heatmap with defect boxes (heatmap.jpg), 16-bit map (map.png) "
        "or, for the newest passed parts, the frame as the camera delivered it (frame.png)",
        response_class=Response,
    )
    def artifact(
        record_id: RecordId, artifact: Literal["frame.jpg", "heatmap.jpg", "map.png", "frame.png"]
    ) -> Response:
        data = console.ring.read(record_id, artifact)
        if data is None:
            raise HTTPException(
                404, f"{artifact} of part {record_id} is not in the ring (dropped or never made)"
            )
        return Response(
            data, media_type=ARTIFACT_TYPES[artifact], headers={"Cache-Control": "private, max-age=3600"}
        )

    @app.get("/api/models", summary="Model ids and hashes in use, the device, and random-weight models")
    def models() -> dict[str, Any]:
        return console.models()

    @app.post("/api/cameras/{camera}/preview", summary="Which recent parts would flip at these thresholds")
    def preview_route(camera: CameraName, body: ThresholdProposal) -> dict[str, Any]:
        return console.preview(camera, body.image_threshold, body.pixel_threshold)

    @app.post(
        "/api/cameras/{camera}/thresholds",
        summary="Write thresholds to the config file and reload (needs the password and X-Inspectd-Console: 1)",
    )
    def apply_route(
        camera: CameraName, body: ThresholdProposal, who: Annotated[Operator, Depends(operator)]
    ) -> dict[str, Any]:
        values = body.model_dump(exclude_none=True)
        return console.apply_thresholds(camera, values, who)

    @app.post(
        "/api/cameras/{camera}/references",
        summary="Build or extend the camera's reference bank from recent good parts (needs the password)",
    )
    def references_route(
        camera: CameraName, body: ReferenceRequest, who: Annotated[Operator, Depends(operator)]
    ) -> dict[str, Any]:
        return console.add_references(camera, body.records, who)

    return app
