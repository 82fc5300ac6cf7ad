"""The HTTP layer: one error shape, default-deny route roles, and the OpenAPI document.

Every error response is
``{"error": {"status": int, "code": str, "message": str, "field": str|null}}``.
This is the only place that maps errors to status codes:

- ``aiohttp.web.HTTPException``            -> its own status
- an exception with ``http_status``        -> that status (``code``/``field`` attributes if present)
- ``LookupError``                          -> 404
- ``PermissionError``                      -> 403
- ``ValueError`` (bad JSON, UTF-8, values) -> 400 for an unreadable body, 422 for a bad value
- a lost database or broker (``OSError``, asyncpg connection errors) -> 503 ``unavailable`` with
  ``Retry-After``, logged without a traceback (it is an outage, not a bug)
- anything else                            -> 500, logged with its traceback, never shown
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog
from aiohttp import web

from kernel import outages
from kernel.access import AUTHENTICATOR, PRINCIPAL, ROUTE
from kernel.roles import Route

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ROUTES: web.AppKey[list[Route]] = web.AppKey("homecare_routes")


def error_body(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, "field": field}}


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    return web.json_response(error_body(status, code, message, field), status=status)


UNAVAILABLE = outages.UNAVAILABLE  # re-exported for the adapters that map outages


def _status_for(exc: BaseException) -> tuple[int, str, str | None]:
    status = getattr(exc, "http_status", None)
    code = getattr(exc, "code", None)
    field = getattr(exc, "field", None)
    if isinstance(status, int):
        return status, str(code or "error"), field
    if isinstance(exc, UNAVAILABLE):
        return 503, "unavailable", None
    if isinstance(exc, LookupError):
        return 404, str(code or "not_found"), field
    if isinstance(exc, PermissionError):
        return 403, str(code or "forbidden"), field
    if isinstance(exc, ValueError):
        return 422, str(code or "invalid"), field
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
            413: "too_large",
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
    """An OpenAPI 3.1 document for the declared routes."""
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
        if r.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": r.body}},
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


def make_app(*, max_body_bytes: int) -> web.Application:
    """A bare application with the error and auth middlewares, in that order."""
    return web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=max_body_bytes
    )
