"""GoogleIdTokens against the Google identity stand-in, over real HTTPS (its CA trusted).

What is checked (reference/google.md §2.4, §7.1): the signature with a published certificate,
exp with a small skew, the audience, Google's issuer, the exact service-account e-mail with
``email_verified``, certificates cached for their Cache-Control lifetime, an unknown kid
refetched once (rate-limited), and reasons in words that never repeat the token.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gmail.identity import GoogleCertsUnavailable, GoogleIdTokens, InvalidGoogleToken
from tests.standins.google_identity import (
    ADDON_CLIENT_ID,
    ADDON_SERVICE_ACCOUNT,
    GoogleIdentity,
)
from tests.standins.tls import make_ca

ENDPOINT = "https://crm.test/addon/google/homepage"


@pytest.fixture(scope="module")
def google(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoogleIdentity]:
    with GoogleIdentity(make_ca(tmp_path_factory.mktemp("google-ca"))) as standin:
        yield standin


@pytest.fixture
def tokens(google: GoogleIdentity, monkeypatch: pytest.MonkeyPatch) -> GoogleIdTokens:
    for name, value in google.environment().items():
        monkeypatch.setenv(name, value)
    google.certs_requests = 0
    return GoogleIdTokens(google.certs_url)


def _refused(tokens: GoogleIdTokens, token: str, **kwargs: object) -> str:
    options: dict[str, object] = {"audiences": [ENDPOINT], "email": ADDON_SERVICE_ACCOUNT}
    options.update(kwargs)
    with pytest.raises(InvalidGoogleToken) as refused:
        tokens.verify(token, **options)  # type: ignore[arg-type]
    reason = refused.value.reason
    assert token not in reason
    assert token.split(".")[1] not in str(refused.value)
    return reason


def test_good_system_token(google: GoogleIdentity, tokens: GoogleIdTokens) -> None:
    token = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT)
    claims = tokens.verify(token, audiences=[ENDPOINT], email=ADDON_SERVICE_ACCOUNT)
    assert claims["aud"] == ENDPOINT
    assert claims["email"] == ADDON_SERVICE_ACCOUNT


def test_good_user_token_with_hosted_domain(google: GoogleIdentity, tokens: GoogleIdTokens) -> None:
    token = google.mint_id_token(
        ADDON_CLIENT_ID, "julie@northwind.example", hd="northwind.example", sub="1234"
    )
    claims = tokens.verify(token, audiences=[ADDON_CLIENT_ID], require_verified_email=True)
    assert (claims["sub"], claims["hd"]) == ("1234", "northwind.example")


def test_issuer_without_scheme_is_google_too(
    google: GoogleIdentity, tokens: GoogleIdTokens
) -> None:
    token = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT, issuer="accounts.google.com")
    assert tokens.verify(token, audiences=[ENDPOINT], email=ADDON_SERVICE_ACCOUNT)


def test_expired(google: GoogleIdentity, tokens: GoogleIdTokens) -> None:
    token = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT, expires_in=-60)
    assert _refused(tokens, token) == "the token has expired"


def test_expiry_within_the_clock_skew_is_accepted(
    google: GoogleIdentity, tokens: GoogleIdTokens
) -> None:
    token = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT, expires_in=-3)
    assert tokens.verify(token, audiences=[ENDPOINT], email=ADDON_SERVICE_ACCOUNT)


def test_wrong_audience(google: GoogleIdentity, tokens: GoogleIdTokens) -> None:
    token = google.mint_id_token("https://crm.test/addon/google/action", ADDON_SERVICE_ACCOUNT)
    assert _refused(tokens, token) == "the token is for another audience"


def test_wrong_issuer(google: GoogleIdentity, tokens: GoogleIdTokens) -> None:
    token = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT, issuer="https://evil.example")
    assert _refused(tokens, token) == "the token was not issued by Google"


def test_unknown_kid(google: GoogleIdentity, tokens: GoogleIdTokens) -> None:
    token = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT, key="unknown")
    assert _refused(tokens, token) == "the token is signed with a key Google does not publish"


def test_impostor_signature_under_a_published_kid(
    google: GoogleIdentity, tokens: GoogleIdTokens
) -> None:
    good = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT)
    forged = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT, key="unknown")
    head, _, _ = good.partition(".")
    _, body, signature = forged.split(".")
    assert _refused(tokens, f"{head}.{body}.{signature}") == "the token's signature does not verify"


def test_email_not_verified(google: GoogleIdentity, tokens: GoogleIdTokens) -> None:
    token = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT, email_verified=False)
    assert _refused(tokens, token) == "the token's e-mail address is not verified"


def test_other_service_account(google: GoogleIdentity, tokens: GoogleIdTokens) -> None:
    token = google.mint_id_token(ENDPOINT, "attacker@evil-project.iam.gserviceaccount.com")
    assert _refused(tokens, token) == "the token names another account"


@pytest.mark.parametrize(
    "token",
    ["", "not-a-jwt", "a.b", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "x" * 9000],
)
def test_not_a_jwt(tokens: GoogleIdTokens, token: str) -> None:
    with pytest.raises(InvalidGoogleToken):
        tokens.verify(token, audiences=[ENDPOINT], email=ADDON_SERVICE_ACCOUNT)


def test_an_audience_is_required(google: GoogleIdentity, tokens: GoogleIdTokens) -> None:
    token = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT)
    with pytest.raises(ValueError, match="audience"):
        tokens.verify(token, audiences=[])


def test_certs_are_fetched_once_for_many_verifications(
    google: GoogleIdentity, tokens: GoogleIdTokens
) -> None:
    for index in range(25):
        token = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT, sub=str(index))
        tokens.verify(token, audiences=[ENDPOINT], email=ADDON_SERVICE_ACCOUNT)
    assert google.certs_requests == 1


def test_certs_are_refetched_after_max_age(
    google: GoogleIdentity, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in google.environment().items():
        monkeypatch.setenv(name, value)
    google.certs_requests = 0
    now = [1000.0]
    tokens = GoogleIdTokens(google.certs_url, clock=lambda: now[0])
    token = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT)
    tokens.verify(token, audiences=[ENDPOINT], email=ADDON_SERVICE_ACCOUNT)
    now[0] += google.max_age - 1
    tokens.verify(token, audiences=[ENDPOINT], email=ADDON_SERVICE_ACCOUNT)
    assert google.certs_requests == 1
    now[0] += 2
    tokens.verify(token, audiences=[ENDPOINT], email=ADDON_SERVICE_ACCOUNT)
    assert google.certs_requests == 2


def test_unknown_kid_refetches_once_then_is_rate_limited(
    google: GoogleIdentity, tokens: GoogleIdTokens
) -> None:
    good = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT)
    tokens.verify(good, audiences=[ENDPOINT], email=ADDON_SERVICE_ACCOUNT)
    forged = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT, key="unknown")
    for _ in range(10):
        _refused(tokens, forged)
    assert google.certs_requests == 2  # the first read and one early refetch


def test_key_rotation_is_picked_up_through_the_unknown_kid(
    google: GoogleIdentity, tokens: GoogleIdTokens
) -> None:
    tokens.verify(
        google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT),
        audiences=[ENDPOINT],
        email=ADDON_SERVICE_ACCOUNT,
    )
    google.rotate_key()
    rotated = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT)
    assert tokens.verify(rotated, audiences=[ENDPOINT], email=ADDON_SERVICE_ACCOUNT)
    assert google.certs_requests == 2


def test_certs_unreachable(google: GoogleIdentity) -> None:
    tokens = GoogleIdTokens("https://127.0.0.1:9/oauth2/v1/certs")
    token = google.mint_id_token(ENDPOINT, ADDON_SERVICE_ACCOUNT)
    with pytest.raises(GoogleCertsUnavailable):
        tokens.verify(token, audiences=[ENDPOINT], email=ADDON_SERVICE_ACCOUNT)
