"""The HTTP layer: one error shape, default-deny route roles, and the OpenAPI document.

Every error response is
``{"error": {"status": int, "code": str, "message": str, "field": str|null}}``.
This is the only place that maps errors to status codes:

- ``aiohttp.web.HTTPException``            -> its own status
- an exception with ``http_status``        -> that status (``code``/``field`` attributes if present)
                                              and its message: ``kernel.errors.InvalidInput`` (422)
                                              and ``BodyError`` (400, 415) are of this kind; of
                                              the 5xx only 502/504 (an upstream failed, OIDC)
- a lost database or broker (``OSError``, asyncpg connection errors) -> 503 ``unavailable`` with
  ``Retry-After``, logged without a traceback (it is an outage, not a bug)
- ``KeyError``                             -> 500: a missing key is our bug, not a missing thing
- other ``LookupError``                    -> 404
- ``PermissionError``                      -> 403
- anything else, a bare ``ValueError`` too -> 500, logged with its traceback, never shown: an
                                              internal message is no answer for a client

Every ``/api/*`` answer says ``Cache-Control: no-store`` (answers carry personal data that no
browser or proxy may keep). A body slower than ``body_timeout_s`` to arrive is cut off with 408;
headers slower than ``header_timeout_s`` are the server's to cut off (:func:`server_options`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog
from aiohttp import web

from kernel import codec, outages, tenancy
from kernel.access import AUTHENTICATOR, PRINCIPAL, ROUTE
from kernel.body import has_required_fields
from kernel.roles import Route

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROUTES: web.AppKey[list[Route]] = web.AppKey("homecare_routes")


def error_body(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, "field": field}}


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    return web.json_response(error_body(status, code, message, field), status=status)


UNAVAILABLE = outages.UNAVAILABLE  # re-exported for the adapters that map outages
#: Statuses a domain error may declare for an upstream that failed (502 bad gateway, 504 timeout):
#: shown with their code and message; every other 5xx is our bug, a bare 500.
UPSTREAM_STATUSES = frozenset({502, 504})


def _status_for(exc: BaseException) -> tuple[int, str, str | None]:
    status = getattr(exc, "http_status", None)
    code = getattr(exc, "code", None)
    field = getattr(exc, "field", None)
    if isinstance(status, int):
        return status, str(code or "error"), field
    if isinstance(exc, UNAVAILABLE):
        return 503, "unavailable", None
    if isinstance(exc, KeyError):
        return 500, "internal", None
    if isinstance(exc, LookupError):
        return 404, str(code or "not_found"), field
    if isinstance(exc, PermissionError):
        return 403, str(code or "forbidden"), field
    return 500, "internal", None


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400 or e.content_type == "application/json":
            raise
        code = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            408: "timeout",
            413: "too_large",
            415: "unsupported_media_type",
            429: "rate_limited",
        }.get(e.status, "http_error")
        resp = error_response(e.status, code, e.reason or code)
        for name in ("Allow", "Retry-After", "WWW-Authenticate"):
            if name in e.headers:
                resp.headers[name] = e.headers[name]
        return resp
    except Exception as e:
        status, code, field = _status_for(e)
        if status == 503:
            log.warning(
                "request_unavailable",
                path=request.path,
                method=request.method,
                error=type(e).__name__,
            )
            resp = error_response(503, code, "a backing service is unavailable; try again")
            resp.headers["Retry-After"] = "5"
            return resp
        if status in UPSTREAM_STATUSES:  # a service we depend on answered wrongly (OIDC)
            log.warning(
                "request_upstream_failed", path=request.path, method=request.method, code=code
            )
            return error_response(status, code, str(e) or code)
        if status >= 500:
            log.exception("request_failed", path=request.path, method=request.method)
            return error_response(500, "internal", "internal error")
        log.info(
            "request_rejected",
            path=request.path,
            method=request.method,
            status=status,
            code=code,
            field=field,
        )
        return error_response(status, code, str(e) or code, field)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Default deny: a route must be declared with its roles, and the caller must hold one."""
    route: Route | None = getattr(request.match_info.route.handler, "__homecare_route__", None)
    if route is None:
        if request.match_info.http_exception is not None:
            raise request.match_info.http_exception
        if request.match_info.route.resource is not None and getattr(
            request.match_info.route.resource, "canonical", ""
        ).startswith("/static"):
            return await handler(request)
        raise web.HTTPForbidden(reason="route has no declared access")
    request[ROUTE] = route
    authenticate = request.app.get(AUTHENTICATOR)
    who = await authenticate(request) if authenticate is not None else None
    if who is not None:
        request[PRINCIPAL] = who
    if route.is_public:
        return await handler(request)
    if who is None:
        raise web.HTTPUnauthorized(reason="login required")
    if not route.allows(who):
        raise web.HTTPForbidden(reason=f"role {who.role} may not {route.method} {route.path}")
    with tenancy.scoped(who.scope):  # the database shows this caller their organisations only
        return await handler(request)


def _tag(route: Route) -> Handler:
    handler = route.handler

    async def wrapped(request: web.Request) -> web.StreamResponse:
        return await handler(request)  # type: ignore[no-any-return]

    wrapped.__homecare_route__ = route  # type: ignore[attr-defined]
    wrapped.__name__ = getattr(handler, "__name__", "handler")
    return wrapped


def add_routes(app: web.Application, routes: Iterable[Route]) -> None:
    """Register declared routes; they appear in the OpenAPI document."""
    listed = app.setdefault(ROUTES, [])
    for route in routes:
        app.router.add_route(route.method, route.path, _tag(route))
        listed.append(route)


def _operation_id(route: Route) -> str:
    path = route.path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
    return f"{route.method.lower()}_{path}"


def _openapi_path(path: str) -> str:
    """aiohttp's ``{name:regex}`` path parameters as OpenAPI's ``{name}``."""
    return "/".join(
        "{" + p[1:-1].partition(":")[0] + "}" if p.startswith("{") and p.endswith("}") else p
        for p in path.split("/")
    )


def openapi(routes: Iterable[Route], *, title: str, version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document for the declared routes; a request body's schema is the JSON Schema
    of the route's Struct, the same definition its handler decodes with, and the body is required
    where the Struct has a field without a default (else an empty body stands for ``{}``)."""
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        params = [
            {
                "name": part[1:-1].partition(":")[0],
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
            }
            for part in r.path.split("/")
            if part.startswith("{") and part.endswith("}")
        ]
        params += [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": description,
                "schema": {"type": "string"},
            }
            for name, description in r.query
        ]
        op: dict[str, Any] = {
            "summary": r.summary,
            "operationId": _operation_id(r),
            "responses": {
                "200": {
                    "description": "OK",
                    "content": {"application/json": {"schema": r.response or {}}},
                },
                "default": {
                    "description": "Error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
            "x-roles": sorted(r.roles) or ["public"],
        }
        if r.tags:
            op["tags"] = list(r.tags)
        if params:
            op["parameters"] = params
        if r.body is not None:  # the Struct the handler decodes (kernel.body.read_body)
            op["requestBody"] = {
                "required": has_required_fields(r.body),
                "content": {"application/json": {"schema": codec.schema(r.body)}},
            }
        if not r.is_public:
            op["security"] = [{"session": []}, {"bearer": []}]
        paths.setdefault(_openapi_path(r.path), {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "hc_session"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["status", "code", "message"],
                            "properties": {
                                "status": {"type": "integer"},
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                                "field": {"type": ["string", "null"]},
                            },
                        }
                    },
                }
            },
        },
    }


BODY_TIMEOUT_S: web.AppKey[float] = web.AppKey("homecare_body_timeout_s", float)
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@web.middleware
async def body_timeout_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read a request's body within ``BODY_TIMEOUT_S`` (408 and the connection closed if not), so
    a client that trickles its body cannot hold a connection; handlers then read it from memory.
    The size limit (``client_max_size``, 413) applies as it reads."""
    if request.method in _BODY_METHODS and request.body_exists:
        try:
            async with asyncio.timeout(request.app[BODY_TIMEOUT_S]):
                await request.read()
        except TimeoutError:
            log.info("request_body_timed_out", path=request.path, method=request.method)
            resp = error_response(408, "body_timeout", "the body did not arrive in time")
            resp.force_close()
            return resp
    return await handler(request)


async def _no_store(request: web.Request, response: web.StreamResponse) -> None:
    if request.path.startswith("/api/") and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"


def make_app(*, max_body_bytes: int, body_timeout_s: float = 30.0) -> web.Application:
    """A bare application with the error, auth and body-timeout middlewares, in that order, and
    ``Cache-Control: no-store`` on every ``/api/*`` answer (errors included)."""
    app = web.Application(
        middlewares=[error_middleware, auth_middleware, body_timeout_middleware],
        client_max_size=max_body_bytes,
    )
    app[BODY_TIMEOUT_S] = body_timeout_s
    app.on_response_prepare.append(_no_store)
    return app


def server_options(*, header_timeout_s: float) -> dict[str, Any]:
    """Options for ``web.AppRunner``: a connection whose request line and headers are not complete
    within ``header_timeout_s`` of its opening (or of its last answer, on a kept-alive connection)
    is closed (aiohttp's keep-alive timer also runs while a request's headers are still arriving;
    the parser's own limits bound only their size). Idle kept-alive connections close as well.
    After an answer that did not read the whole body (a 408, a 413), the rest is read and dropped
    for at most 2 s (aiohttp's default is 10 s), so the client sees the answer, not a reset."""
    return {"keepalive_timeout": header_timeout_s, "lingering_time": min(2.0, header_timeout_s)}
