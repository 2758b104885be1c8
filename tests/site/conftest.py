"""Fixtures of the site's tests: where the drawing site is served."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def site_url(base_url: str) -> str:
    """The drawing site, served by the same local host at / (the API is under /api)."""
    return base_url.removesuffix("/api") + "/"
