"""The trading engine's HTTP service (seed task 20.1): API, health probes and the dashboard."""

from __future__ import annotations

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI(
        title="stonks-oracle trading engine",
        description="Control plane of the autonomous trading engine.",
        version="0.1.0",
    )

    @app.get("/health", tags=["probes"], summary="Liveness: the process answers")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()
