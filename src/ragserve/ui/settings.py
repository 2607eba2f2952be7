"""The UI's settings, read once by the entry point from ``RAGSERVE_UI__*`` variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_API_URL = "http://127.0.0.1:8000"


class UiSettings(BaseSettings):
    """Where the API is (``RAGSERVE_UI__API_URL``) and how long to wait for it."""

    model_config = SettingsConfigDict(env_prefix="RAGSERVE_UI__", extra="ignore")

    api_url: str = DEFAULT_API_URL
    timeout_s: float = Field(
        default=60.0, gt=0, description="per request; per chunk when streaming"
    )
