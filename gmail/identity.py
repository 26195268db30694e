"""Google-signed ID tokens: the add-on's system token and the user's ``userIdToken``.

A Google Workspace add-on over HTTP is called with ``Authorization: Bearer <ID token>`` of the
deployment's service account (``aud`` = the endpoint URL) and, in the body, the user's ID token
(``aud`` = the add-on's OAuth client id); reference/google.md §2.4. Both are RS256 JWTs signed
with the keys published at ``GOOGLE_CERTS_URL`` (a JSON map kid -> x509 PEM certificate).

Checks, in this order: shape (three parts, RS256, a ``kid``), the signature with the published
certificate of that ``kid``, ``iat``/``exp`` with a small clock skew, ``aud`` among the allowed
audiences, ``iss`` is Google's, and when asked ``email`` is exactly the expected address and
``email_verified`` is true. google-auth's ``verify_oauth2_token`` cannot be pointed at another
certs URL and ``verify_token`` fetches the certs on every call, so the certificates are fetched
here and cached for the ``Cache-Control: max-age`` Google sends; an unknown ``kid`` causes one
early refetch, at most once per ``refresh_interval`` (forged kids cannot make us hammer Google).

Refusals raise `InvalidGoogleToken` with a short reason in words; the token never appears in a
message or a log line. When the certificates cannot be read at all, `GoogleCertsUnavailable`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import requests
from google.auth import exceptions as google_exceptions
from google.auth import jwt as google_jwt

__all__ = [
    "GOOGLE_ISSUERS",
    "GoogleCertsUnavailable",
    "GoogleIdTokens",
    "InvalidGoogleToken",
]

log = logging.getLogger(__name__)

GOOGLE_ISSUERS: Final = frozenset({"accounts.google.com", "https://accounts.google.com"})
_MAX_TOKEN_CHARS: Final = 8192
_JWT_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_MAX_AGE: Final = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)
_DEFAULT_TTL: Final = 3600.0
_MAX_TTL: Final = 24 * 3600.0
_MIN_TTL: Final = 60.0


class InvalidGoogleToken(Exception):
    """The token is not a valid Google ID token for this use; ``reason`` says why, in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class GoogleCertsUnavailable(Exception):
    """Google's signing certificates could not be read and none are cached."""


@dataclass(frozen=True, slots=True)
class _Certs:
    by_kid: Mapping[str, str]
    refetch_at: float  # clock time after which they are read again
    forced_at: float | None = None  # last early refetch for an unknown kid


class GoogleIdTokens:
    """Verifies Google-signed ID tokens against cached certificates; thread-safe."""

    def __init__(
        self,
        certs_url: str,
        *,
        clock_skew: int = 10,
        session: requests.Session | None = None,
        refresh_interval: float = 60.0,
        timeout: tuple[float, float] = (3.05, 10.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.certs_url = certs_url
        self.clock_skew = clock_skew
        self._session = session
        self._refresh_interval = refresh_interval
        self._timeout = timeout
        self._clock = clock
        self._certs: _Certs | None = None
        self._lock = threading.Lock()

    def verify(
        self,
        token: str,
        *,
        audiences: Sequence[str],
        email: str | None = None,
        require_verified_email: bool = False,
    ) -> Mapping[str, Any]:
        """The claims of ``token`` once every check passed; `InvalidGoogleToken` otherwise.

        ``audiences``: the accepted ``aud`` values (never empty). ``email``: the exact address
        the token must name (the add-on's service account), which implies a verified e-mail;
        ``require_verified_email`` asks for ``email_verified`` without naming the address.
        """
        allowed = [aud for aud in audiences if aud]
        if not allowed:
            raise ValueError("at least one audience is required")
        kid = _kid_of(token)
        certs = self._certs_for(kid)
        if kid not in certs:
            raise InvalidGoogleToken("the token is signed with a key Google does not publish")
        try:
            claims = google_jwt.decode(  # type: ignore[no-untyped-call]
                token,
                certs={kid: certs[kid]},
                audience=allowed,
                clock_skew_in_seconds=self.clock_skew,
            )
        except (google_exceptions.GoogleAuthError, ValueError) as failure:
            raise InvalidGoogleToken(_reason(str(failure))) from None
        if not isinstance(claims, Mapping):
            raise InvalidGoogleToken("the token payload is not a JSON object")
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise InvalidGoogleToken("the token was not issued by Google")
        verified = claims.get("email_verified") in (True, "true")
        if (email is not None or require_verified_email) and not verified:
            raise InvalidGoogleToken("the token's e-mail address is not verified")
        if email is not None:
            named = claims.get("email")
            if not isinstance(named, str) or named.strip().lower() != email.strip().lower():
                raise InvalidGoogleToken("the token names another account")
        return claims

    # ----------------------------------------------------------------------- certificates

    def _certs_for(self, kid: str) -> Mapping[str, str]:
        with self._lock:
            now = self._clock()
            certs = self._certs
            if certs is None or now >= certs.refetch_at:
                certs = self._reload(certs, now)
            if kid not in certs.by_kid and (
                certs.forced_at is None or now - certs.forced_at >= self._refresh_interval
            ):
                # Google may have started signing with a new key since we last looked.
                certs = self._reload(certs, now, forced=True)
            return certs.by_kid

    def _reload(self, stale: _Certs | None, now: float, *, forced: bool = False) -> _Certs:
        try:
            by_kid, ttl = self._fetch()
        except GoogleCertsUnavailable as failure:
            log.warning("google.certs.fetch_failed error=%s", failure)
            if stale is None:
                raise
            # Keep the certificates we have; look again after the refresh interval.
            fresh = _Certs(
                stale.by_kid,
                refetch_at=now + self._refresh_interval,
                forced_at=now if forced else stale.forced_at,
            )
        else:
            fresh = _Certs(by_kid, refetch_at=now + ttl, forced_at=now if forced else None)
        self._certs = fresh
        return fresh

    def _fetch(self) -> tuple[dict[str, str], float]:
        get = self._session.get if self._session is not None else requests.get
        try:
            response = get(
                self.certs_url, timeout=self._timeout, headers={"Accept": "application/json"}
            )
        except requests.RequestException as failure:
            raise GoogleCertsUnavailable(
                f"Google's certificates could not be read: {type(failure).__name__}"
            ) from None
        if response.status_code != 200:
            raise GoogleCertsUnavailable(
                f"Google's certificates endpoint answered HTTP {response.status_code}"
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "keys" in body:
            raise GoogleCertsUnavailable(
                "Google's certificates endpoint did not answer a kid -> PEM certificate map"
            )
        by_kid = {
            str(kid): pem
            for kid, pem in body.items()
            if isinstance(pem, str) and "BEGIN CERTIFICATE" in pem
        }
        if not by_kid:
            raise GoogleCertsUnavailable("Google's certificates endpoint published no certificate")
        return by_kid, _ttl(response.headers.get("Cache-Control", ""))


def _kid_of(token: str) -> str:
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        raise InvalidGoogleToken("the token is not a JWT")
    if not _JWT_SHAPE.fullmatch(token):
        raise InvalidGoogleToken("the token is not a JWT")
    try:
        header = google_jwt.decode_header(token)  # type: ignore[no-untyped-call]
    except (google_exceptions.GoogleAuthError, ValueError, UnicodeDecodeError):
        raise InvalidGoogleToken("the token is not a JWT") from None
    if not isinstance(header, Mapping) or header.get("alg") != "RS256":
        raise InvalidGoogleToken("the token is not signed with RS256")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidGoogleToken("the token names no signing key")
    return kid


def _reason(message: str) -> str:
    """google-auth's error message, as a reason that repeats nothing from the token."""
    lowered = message.lower()
    if "expired" in lowered:
        return "the token has expired"
    if "too early" in lowered:
        return "the token is not valid yet"
    if "audience" in lowered:
        return "the token is for another audience"
    if "signature" in lowered or "certificate" in lowered:
        return "the token's signature does not verify"
    return "the token is not a valid Google ID token"


def _ttl(cache_control: str) -> float:
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return _DEFAULT_TTL
    return min(max(float(match.group(1)), _MIN_TTL), _MAX_TTL)
