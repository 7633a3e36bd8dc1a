"""The admin API's endpoints for the virtual servers, the composite tools and ``/mcp``'s search.

Paths are relative to ``/admin/api``, as ``gateway.operations.changes``'s, with the same error shape: 400 for a
body that is not JSON, 404 for an unknown server or composite, 422 for a definition the config file would be
refused for (``field`` names the place as in the file: ``servers.team.overrides.ops/echo``), and then nothing has
changed. A PUT's body is what the file has under the name (``servers.<name>``, an entry of ``composites`` whose
``name`` may be left out, or ``search``); it adds or replaces. Each endpoint's docstring, after ``---``, is its
OpenAPI operation.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from gateway.operations.changes import json_body, refusing
from gateway.operations.endpoints import SEARCH, Endpoints


def endpoint_routes(endpoints: Endpoints) -> list[BaseRoute]:
    """The routes, bound to ``endpoints``."""

    async def list_servers(request: Request) -> JSONResponse:
        """Every virtual server, with its definition, where it comes from, its sessions and its tools.
        ---
        summary: List the virtual servers
        responses:
          200: {description: '{"servers": [Server, ...]}'}
        """
        return JSONResponse({"servers": endpoints.servers()})

    async def get_server(request: Request) -> JSONResponse:
        """One virtual server.
        ---
        summary: Show one virtual server
        parameters: [{name: name, in: path, required: true, schema: {type: string}}]
        responses:
          200: {description: "Server: name, path, source, config, sessions, tools"}
          404: {description: "No such server (unknown_server)"}
        """
        return JSONResponse(endpoints.server(request.path_params["name"]))

    async def put_server(request: Request) -> JSONResponse:
        """Add a virtual server, or replace one's definition (its clients keep their sessions and hear that the lists
        changed, unless its instructions changed).
        ---
        summary: Add or replace a virtual server
        description: The body is what the config file has under `servers.<name>`, validated as the file is.
        parameters: [{name: name, in: path, required: true, schema: {type: string}}]
        requestBody: {required: true, content: {application/json: {schema: {type: object}}}}
        responses:
          200: {description: "Replaced: the server, as GET /servers/{name} shows it"}
          201: {description: "Added: the server, as GET /servers/{name} shows it"}
          400: {description: "The body is not JSON"}
          422: {description: "The definition is invalid (invalid); error.field names the place"}
        """
        return await _put(endpoints, "servers", request)

    async def delete_server(request: Request) -> JSONResponse:
        """Remove a virtual server: its sessions end, and its path answers 404.
        ---
        summary: Remove a virtual server
        parameters: [{name: name, in: path, required: true, schema: {type: string}}]
        responses:
          200: {description: '{"removed": name}'}
          404: {description: "No such server (unknown_server)"}
        """
        return await _delete(endpoints, "servers", request)

    async def list_composites(request: Request) -> JSONResponse:
        """Every composite tool, with its definition, where it comes from, and the virtual servers that offer it.
        ---
        summary: List the composite tools
        responses:
          200: {description: '{"composites": [Composite, ...]}'}
        """
        return JSONResponse({"composites": endpoints.composites()})

    async def get_composite(request: Request) -> JSONResponse:
        """One composite tool.
        ---
        summary: Show one composite tool
        parameters: [{name: name, in: path, required: true, schema: {type: string}}]
        responses:
          200: {description: "Composite: name, source, config, servers"}
          404: {description: "No such composite (unknown_composite)"}
        """
        return JSONResponse(endpoints.composite(request.path_params["name"]))

    async def put_composite(request: Request) -> JSONResponse:
        """Add a composite tool, or replace one's definition.
        ---
        summary: Add or replace a composite tool
        description: The body is an entry of the config file's `composites:`, validated as the file is.
        parameters: [{name: name, in: path, required: true, schema: {type: string}}]
        requestBody: {required: true, content: {application/json: {schema: {type: object}}}}
        responses:
          200: {description: "Replaced: the composite, as GET /composites/{name} shows it"}
          201: {description: "Added: the composite, as GET /composites/{name} shows it"}
          400: {description: "The body is not JSON"}
          422: {description: "The definition is invalid (invalid); error.field names the place"}
        """
        return await _put(endpoints, "composites", request)

    async def delete_composite(request: Request) -> JSONResponse:
        """Remove a composite tool.
        ---
        summary: Remove a composite tool
        parameters: [{name: name, in: path, required: true, schema: {type: string}}]
        responses:
          200: {description: '{"removed": name}'}
          404: {description: "No such composite (unknown_composite)"}
        """
        return await _delete(endpoints, "composites", request)

    async def get_search(request: Request) -> JSONResponse:
        """The meta tools of /mcp: search, describe and call tools by name; lazy listing.
        ---
        summary: Show /mcp's search settings
        responses:
          200: {description: '{"source", "config"}'}
        """
        return JSONResponse(endpoints.search())

    async def put_search(request: Request) -> JSONResponse:
        """Replace /mcp's search settings.
        ---
        summary: Replace /mcp's search settings
        description: The body is what the config file has under `search`, validated as the file is.
        requestBody: {required: true, content: {application/json: {schema: {type: object}}}}
        responses:
          200: {description: '{"source", "config"}'}
          400: {description: "The body is not JSON"}
          422: {description: "The settings are invalid (invalid); error.field names the place"}
        """
        made, _ = await endpoints.put("search", SEARCH, await json_body(request))
        return JSONResponse(made)

    async def reset_search(request: Request) -> JSONResponse:
        """Drop the change to /mcp's search settings: the config file's apply again.
        ---
        summary: Reset /mcp's search settings to the file's
        responses:
          200: {description: '{"source", "config"}'}
        """
        await endpoints.remove("search", SEARCH)
        return JSONResponse(endpoints.search())

    return [
        Route("/servers", refusing(list_servers), methods=["GET"]),
        Route("/servers/{name}", refusing(get_server), methods=["GET"]),
        Route("/servers/{name}", refusing(put_server), methods=["PUT"]),
        Route("/servers/{name}", refusing(delete_server), methods=["DELETE"]),
        Route("/composites", refusing(list_composites), methods=["GET"]),
        Route("/composites/{name}", refusing(get_composite), methods=["GET"]),
        Route("/composites/{name}", refusing(put_composite), methods=["PUT"]),
        Route("/composites/{name}", refusing(delete_composite), methods=["DELETE"]),
        Route("/search", refusing(get_search), methods=["GET"]),
        Route("/search", refusing(put_search), methods=["PUT"]),
        Route("/search", refusing(reset_search), methods=["DELETE"]),
    ]


async def _put(endpoints: Endpoints, section: str, request: Request) -> JSONResponse:
    made, new = await endpoints.put(section, request.path_params["name"], await json_body(request))
    return JSONResponse(made, status_code=201 if new else 200)


async def _delete(endpoints: Endpoints, section: str, request: Request) -> JSONResponse:
    name = request.path_params["name"]
    await endpoints.remove(section, name)
    return JSONResponse({"removed": name})
