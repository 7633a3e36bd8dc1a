"""The admin API's endpoints that change the backends: add, replace, remove, enable and disable backends and tools.

Paths are relative to ``/admin/api``, where the admin app mounts them behind its access control. JSON in and out;
a refusal is ``{"error": {"code", "message"[, "field"]}}``: 400 for a body that is not JSON, 404 for an unknown
backend or tool, 409 for a name already taken, 422 for a definition that fails validation (``field`` names what is
wrong), and then nothing has changed. Each endpoint's docstring, after ``---``, is its OpenAPI operation.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from gateway.operations.errors import ChangeError
from gateway.operations.runtime import Runtime

Endpoint = Callable[[Request], Awaitable[JSONResponse]]
STATUS = {
    "invalid": 422,
    "unknown_backend": 404,
    "unknown_tool": 404,
    "unknown_server": 404,
    "unknown_composite": 404,
    "backend_exists": 409,
    "not_json": 400,
}


def change_routes(runtime: Runtime) -> list[BaseRoute]:
    """The routes, bound to ``runtime``."""

    async def add_backend(request: Request) -> JSONResponse:
        """Add a backend while serving.
        ---
        summary: Add a backend
        description: The body is one entry of the config file's `backends:`, validated as the file is.
        requestBody: {required: true, content: {application/json: {schema: {type: object}}}}
        responses:
          201: {description: "The backend, as GET /backends/{name} shows it"}
          400: {description: "The body is not JSON"}
          409: {description: "A backend of that name exists (backend_exists)"}
          422: {description: "The definition is invalid (invalid); error.field names the field"}
        """
        return JSONResponse(await runtime.add(await json_body(request)), status_code=201)

    async def replace_backend(request: Request) -> JSONResponse:
        """Replace a backend's definition; an unchanged connection is kept where the change allows.
        ---
        summary: Replace a backend's definition
        parameters: [{name: name, in: path, required: true, schema: {type: string}}]
        requestBody: {required: true, content: {application/json: {schema: {type: object}}}}
        responses:
          200: {description: "The backend, as GET /backends/{name} shows it"}
          400: {description: "The body is not JSON"}
          404: {description: "No such backend (unknown_backend)"}
          422: {description: "The definition is invalid (invalid); error.field names the field"}
        """
        return JSONResponse(await runtime.replace(request.path_params["name"], await json_body(request)))

    async def remove_backend(request: Request) -> JSONResponse:
        """Remove a backend; answers once its calls in flight finished or were cut short after the grace period.
        ---
        summary: Remove a backend
        parameters: [{name: name, in: path, required: true, schema: {type: string}}]
        responses:
          200: {description: '{"removed": name}'}
          404: {description: "No such backend (unknown_backend)"}
        """
        name = request.path_params["name"]
        await runtime.remove(name)
        return JSONResponse({"removed": name})

    async def enable_backend(request: Request) -> JSONResponse:
        """Switch a backend on again (it connects).
        ---
        summary: Enable a backend
        parameters: [{name: name, in: path, required: true, schema: {type: string}}]
        responses:
          200: {description: '{"backend": name, "enabled": true}'}
          404: {description: "No such backend (unknown_backend)"}
        """
        return await _switch_backend(runtime, request, True)

    async def disable_backend(request: Request) -> JSONResponse:
        """Switch a backend off: its items leave the lists, its calls are answered -32050, its connection closes.
        ---
        summary: Disable a backend
        parameters: [{name: name, in: path, required: true, schema: {type: string}}]
        responses:
          200: {description: '{"backend": name, "enabled": false}'}
          404: {description: "No such backend (unknown_backend)"}
        """
        return await _switch_backend(runtime, request, False)

    async def enable_tool(request: Request) -> JSONResponse:
        """Switch a tool on again.
        ---
        summary: Enable a tool
        requestBody:
          required: true
          content: {application/json: {schema: {type: object, properties: {tool: {type: string}}}}}
        responses:
          200: {description: '{"tool": canonical name, "enabled": true}'}
          404: {description: "No such tool (unknown_tool)"}
        """
        return await _switch_tool(runtime, request, True)

    async def disable_tool(request: Request) -> JSONResponse:
        """Switch a tool off: it leaves the lists, and calls to it are answered as to an unknown tool (-32602).
        ---
        summary: Disable a tool
        requestBody:
          required: true
          content: {application/json: {schema: {type: object, properties: {tool: {type: string}}}}}
        responses:
          200: {description: '{"tool": canonical name, "enabled": false}'}
          404: {description: "No such tool (unknown_tool)"}
        """
        return await _switch_tool(runtime, request, False)

    return [
        Route("/backends", refusing(add_backend), methods=["POST"]),
        Route("/backends/{name}", refusing(replace_backend), methods=["PUT"]),
        Route("/backends/{name}", refusing(remove_backend), methods=["DELETE"]),
        Route("/backends/{name}/enable", refusing(enable_backend), methods=["POST"]),
        Route("/backends/{name}/disable", refusing(disable_backend), methods=["POST"]),
        Route("/tools/enable", refusing(enable_tool), methods=["POST"]),
        Route("/tools/disable", refusing(disable_tool), methods=["POST"]),
    ]


async def _switch_backend(runtime: Runtime, request: Request, enabled: bool) -> JSONResponse:
    name = request.path_params["name"]
    await runtime.set_enabled(name, enabled)
    return JSONResponse({"backend": name, "enabled": enabled})


async def _switch_tool(runtime: Runtime, request: Request, enabled: bool) -> JSONResponse:
    body = await json_body(request)
    tool = body.get("tool") if isinstance(body, dict) else None
    if not isinstance(tool, str) or not tool:
        raise ChangeError("invalid", 'expected {"tool": "<name>"}', "tool")
    return JSONResponse({"tool": await runtime.set_tool_enabled(tool, enabled), "enabled": enabled})


async def json_body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ChangeError("not_json", f"the body is not JSON: {exc}") from None


def refusing(endpoint: Endpoint) -> Endpoint:
    """``endpoint`` with its refusals answered in the admin API's error shape (its docstring kept for OpenAPI)."""

    async def answer(request: Request) -> JSONResponse:
        try:
            return await endpoint(request)
        except ChangeError as exc:
            error: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.code == "invalid":
                error["field"] = exc.field
            return JSONResponse({"error": error}, status_code=STATUS[exc.code])

    answer.__doc__ = endpoint.__doc__
    answer.__name__ = endpoint.__name__
    return answer
