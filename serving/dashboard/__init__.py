"""The analyst dashboard at /dashboard: live board, history and prediction quality.

`create_dashboard_router` returns the FastAPI router that `serving.api` mounts. The pages are
static HTML and JavaScript under `static/`. They draw charts with the plotly.min.js of the
installed `plotly` package, which this router serves, so the dashboard needs no network.
"""

from __future__ import annotations

from serving.dashboard.routes import create_dashboard_router

__all__ = ["create_dashboard_router"]
