"""Entra ID's published signing keys and issuers, fetched over HTTPS and cached per tenant.

What an API must check in an Entra access token is listed in
https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-tokens; this module
supplies the two inputs that come from Entra itself:

* the **issuer**: the ``issuer`` of the tenant's OpenID metadata, with ``{tenantid}`` (which the
  ``common``/``organizations`` documents carry literally) replaced by the token's ``tid``. A v2.0
  token is checked against ``{authority}/{tid}/v2.0/.well-known/openid-configuration``, a v1.0
  token against ``{authority}/{tid}/.well-known/openid-configuration``
  (``https://sts.windows.net/{tid}/``), whatever endpoint the client used;
* the **signing keys**: the JWKS at the metadata's ``jwks_uri``, by ``kid``.

Both are cached per (tenant, token version) for ``ttl`` (Entra rolls keys every few weeks and
publishes a new key well before signing with it). An unknown ``kid`` triggers one early JWKS
refresh, at most once per ``refresh_interval`` per tenant, so a flood of forged ``kid`` values
cannot make us hammer Entra. When Entra cannot be reached the cached keys are used past their
TTL; without any, `EntraUnavailable` is raised and the next attempt waits ``retry_interval``.

This is the only part of add-in token validation that talks HTTP, which is why it lives in
graph/ (addin/ makes no provider calls); the checks themselves are in addin/entra.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import requests
from jwt import PyJWK
from jwt.exceptions import PyJWTError

__all__ = ["EntraSigningKeys", "EntraUnavailable", "SigningKey", "TokenVersion"]

log = logging.getLogger(__name__)

TokenVersion = Literal["1.0", "2.0"]

DAY: Final = 24 * 3600.0
_ALGORITHM: Final = "RS256"


class EntraUnavailable(Exception):
    """Entra's metadata or keys could not be read; ``reason`` is a dotted code for logs."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class SigningKey:
    """What a token of one tenant must be checked against: the exact issuer and the key (if any)."""

    issuer: str
    key: PyJWK | None  # None: no published key has the token's kid


@dataclass(frozen=True, slots=True)
class _Entry:
    issuer: str
    jwks_uri: str
    keys: Mapping[str, PyJWK]
    refetch_at: float  # monotonic time after which metadata and keys are read again
    forced_at: float | None = None  # last early refresh for an unknown kid


class EntraSigningKeys:
    """Issuers and signing keys of Entra tenants, cached; safe to share between threads."""

    def __init__(
        self,
        *,
        authority_host: str,
        ttl: float = DAY,
        refresh_interval: float = 300.0,
        retry_interval: float = 30.0,
        timeout: tuple[float, float] = (3.05, 10.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._authority = authority_host.rstrip("/")
        self._ttl = ttl
        self._refresh_interval = refresh_interval
        self._retry_interval = retry_interval
        self._timeout = timeout
        self._clock = clock
        self._entries: dict[tuple[str, TokenVersion], _Entry] = {}
        self._failed_until: dict[tuple[str, TokenVersion], float] = {}
        # Fetches happen under the lock: they are rare (once per TTL, rate-limited refreshes)
        # and bounded by the timeout, and concurrent requests then share one fetch.
        self._lock = threading.Lock()

    def metadata_url(self, tenant_id: str, version: TokenVersion) -> str:
        infix = "/v2.0" if version == "2.0" else ""
        return f"{self._authority}/{tenant_id}{infix}/.well-known/openid-configuration"

    def has_keys(self, tenant_id: str, version: TokenVersion) -> bool:
        """True when the tenant's issuer and keys are cached and current: checking a token
        against them asks Entra nothing (except, rate-limited, for a kid it does not know)."""
        with self._lock:
            entry = self._entries.get((tenant_id, version))
            return entry is not None and self._clock() < entry.refetch_at

    def signing_key(self, tenant_id: str, version: TokenVersion, kid: str) -> SigningKey:
        """The issuer of ``tenant_id``'s ``version`` tokens and its published key ``kid``.

        ``tenant_id`` must already be known good (a GUID of a connected tenant): it goes into
        the URL. Raises `EntraUnavailable` when nothing is cached and Entra cannot be read.
        """
        slot = (tenant_id, version)
        with self._lock:
            now = self._clock()
            entry = self._entries.get(slot)
            if entry is None or now >= entry.refetch_at:
                entry = self._reload(slot, entry, now)
            if kid not in entry.keys and (
                entry.forced_at is None or now - entry.forced_at >= self._refresh_interval
            ):
                entry = self._refresh_keys(slot, entry, now)
            return SigningKey(issuer=entry.issuer, key=entry.keys.get(kid))

    # ----------------------------------------------------------------------- fetching

    def _reload(self, slot: tuple[str, TokenVersion], stale: _Entry | None, now: float) -> _Entry:
        tenant_id, version = slot
        if stale is None and now < self._failed_until.get(slot, 0.0):
            raise EntraUnavailable(
                "Microsoft Entra ID could not be reached recently", reason="entra.backoff"
            )
        try:
            metadata = self._get_json(self.metadata_url(tenant_id, version))
            issuer, jwks_uri = _issuer_and_jwks_uri(metadata, tenant_id)
            keys = _parse_jwks(self._get_json(jwks_uri))
        except EntraUnavailable as failure:
            log.warning("entra.keys.fetch_failed reason=%s version=%s", failure.reason, version)
            if stale is None:
                self._failed_until[slot] = now + self._retry_interval
                raise
            # Keep serving the keys we have; try again after the retry interval.
            entry = replace(stale, refetch_at=now + self._retry_interval)
        else:
            entry = _Entry(issuer=issuer, jwks_uri=jwks_uri, keys=keys, refetch_at=now + self._ttl)
            self._failed_until.pop(slot, None)
        self._entries[slot] = entry
        return entry

    def _refresh_keys(self, slot: tuple[str, TokenVersion], entry: _Entry, now: float) -> _Entry:
        """An early JWKS read for an unknown kid (Entra may have started signing with a new key)."""
        keys: Mapping[str, PyJWK]
        try:
            keys = _parse_jwks(self._get_json(entry.jwks_uri))
        except EntraUnavailable as failure:
            log.warning("entra.keys.refresh_failed reason=%s", failure.reason)
            keys = entry.keys
        refreshed = replace(entry, keys=keys, forced_at=now)
        self._entries[slot] = refreshed
        return refreshed

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = requests.get(
                url, timeout=self._timeout, headers={"Accept": "application/json"}
            )
        except requests.RequestException as failure:
            raise EntraUnavailable(
                f"Microsoft Entra ID could not be reached: {type(failure).__name__}",
                reason="entra.unreachable",
            ) from None
        if response.status_code != 200:
            raise EntraUnavailable(
                f"Microsoft Entra ID answered HTTP {response.status_code}",
                reason=f"entra.http_{response.status_code}",
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise EntraUnavailable(
                "Microsoft Entra ID answered something other than a JSON object",
                reason="entra.bad_response",
            )
        return body


def _issuer_and_jwks_uri(metadata: Mapping[str, Any], tenant_id: str) -> tuple[str, str]:
    issuer, jwks_uri = metadata.get("issuer"), metadata.get("jwks_uri")
    if not isinstance(issuer, str) or not isinstance(jwks_uri, str) or not jwks_uri:
        raise EntraUnavailable(
            "the OpenID metadata has no issuer or jwks_uri", reason="entra.bad_metadata"
        )
    issuer = issuer.replace("{tenantid}", tenant_id)
    if tenant_id not in issuer:
        raise EntraUnavailable(
            "the OpenID metadata names another tenant's issuer", reason="entra.bad_metadata"
        )
    return issuer, jwks_uri


def _parse_jwks(jwks: Mapping[str, Any]) -> dict[str, PyJWK]:
    """The RSA signature keys of a JWKS, by kid; other and unreadable keys are left out."""
    keys: dict[str, PyJWK] = {}
    listed = jwks.get("keys")
    for jwk in listed if isinstance(listed, list) else []:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            keys[kid] = PyJWK(jwk, algorithm=_ALGORITHM)
        except (PyJWTError, ValueError):
            log.warning("entra.keys.unreadable_key")
    if not keys:
        raise EntraUnavailable("the JWKS has no usable RSA key", reason="entra.bad_jwks")
    return keys
