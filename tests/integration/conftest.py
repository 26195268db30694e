"""The Entra and Graph stand-ins with the product's app registration, for the Graph tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from graph.auth import AppTokenProvider
from tests.standins import MicrosoftStandIns, microsoft_standins

CLIENT_ID = "5a0b1c2d-3e4f-4a5b-8c6d-7e8f90a1b2c3"
SECRET = "app-secret-value-1234"


@pytest.fixture
def ms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MicrosoftStandIns]:
    """Both stand-ins running, the app registered, and the product's settings pointing at them."""
    with microsoft_standins(tmp_path) as standins:
        standins.entra.register_app(CLIENT_ID, SECRET)
        for name, value in standins.environment().items():
            monkeypatch.setenv(name, value)
        yield standins


def app_tokens(ms: MicrosoftStandIns, secret: str = SECRET) -> AppTokenProvider:
    """The product's app-only token provider, against the Entra stand-in."""
    return AppTokenProvider(
        tenant_id=ms.entra.tenant_id,
        client_id=CLIENT_ID,
        client_secret=secret,
        authority_host=ms.entra.base_url,
        graph_base_url=ms.graph.root_url,
    )
