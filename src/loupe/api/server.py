"""The HTTP server: uvicorn with Loupe's guarded connections (deadlines and a connection cap)."""

from __future__ import annotations

import resource

import uvicorn
from fastapi import FastAPI

from loupe.api.connection import ConnectionLimits, GuardedProtocol

# File descriptors beyond the connections: the model files, the database, the listening socket.
SPARE_FILES = 256


def build_server(app: FastAPI, host: str, port: int, limits: ConnectionLimits, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for `app` whose connections are `GuardedProtocol`s with `limits`."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=GuardedProtocol.with_limits(limits),
        timeout_keep_alive=int(limits.keep_alive_s),
        log_level=log_level,
        access_log=False,  # Loupe's RequestContext logs each request
        log_config=None,
    )
    return uvicorn.Server(config)


def allow_open_files(wanted: int) -> int:
    """Raise this process's soft limit on open files towards `wanted` (never above the hard
    limit, never lowering it); return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        return ceiling
    return soft


def serve(app: FastAPI, host: str, port: int, limits: ConnectionLimits, log_level: str = "info") -> None:
    """Serve `app` until interrupted, with room in the file limit for every allowed connection."""
    allow_open_files(limits.max_connections + SPARE_FILES)
    build_server(app, host, port, limits, log_level).run()
