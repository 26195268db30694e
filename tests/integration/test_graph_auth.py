"""App-only Graph tokens from the Entra stand-in over HTTPS: cached, and failures in words."""

from __future__ import annotations

import jwt
import pytest

from graph.auth import AppTokenProvider, GraphAuthError
from tests.integration.conftest import CLIENT_ID, SECRET, app_tokens
from tests.standins import MicrosoftStandIns


def test_token_is_for_graph_and_reused_from_the_cache(ms: MicrosoftStandIns) -> None:
    tokens = app_tokens(ms)
    first = tokens.token()
    second = tokens.token()
    assert first == second
    assert ms.entra.count_token_requests(grant_type="client_credentials") == 1
    claims = jwt.decode(first, options={"verify_signature": False})
    assert claims["tid"] == ms.entra.tenant_id
    assert claims["appid"] == CLIENT_ID
    assert tokens.scope.endswith("/.default")


def test_wrong_secret_is_refused_in_words_without_the_secret(ms: MicrosoftStandIns) -> None:
    with pytest.raises(GraphAuthError) as refused:
        app_tokens(ms, secret="not-the-secret").token()
    assert refused.value.reason == "entra.invalid_client"
    assert "not-the-secret" not in str(refused.value)
    assert str(refused.value).startswith("Entra refused the token request: AADSTS")


def test_entra_outage_is_reported_and_not_hammered(ms: MicrosoftStandIns) -> None:
    tokens = app_tokens(ms)
    ms.entra.fail_next(1, status=503)
    for _ in range(3):
        with pytest.raises(GraphAuthError) as failed:
            tokens.token()
        assert failed.value.reason == "entra.unavailable"
    # msal keeps a 5xx answer for a while instead of retrying at once: one request reached Entra.
    assert ms.entra.count_token_requests() == 1


def test_unreachable_authority(ms: MicrosoftStandIns) -> None:
    tokens = AppTokenProvider(
        tenant_id=ms.entra.tenant_id,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        authority_host="https://127.0.0.1:9",  # nothing listens on the discard port
        graph_base_url=ms.graph.root_url,
    )
    with pytest.raises(GraphAuthError) as failed:
        tokens.token()
    assert failed.value.reason == "entra.unreachable"
