"""The HTTP API (FastAPI)."""

from ragserve.api.app import create_app

__all__ = ["create_app"]
