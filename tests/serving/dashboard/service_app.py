"""Application factory that `uvicorn --factory` runs for the browser tests: the real service.

It builds the app as `escalation serve` does, from the environment settings, but without
importing the command line module and its registered subcommands.
"""

from __future__ import annotations

from fastapi import FastAPI

from serving.api import create_app
from serving.service import EscalationService
from serving.settings import load_settings


def create() -> FastAPI:
    """Return the service's FastAPI app, configured from the environment."""
    return create_app(EscalationService(load_settings()))
