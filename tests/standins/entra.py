"""Entra ID (login.microsoftonline.com) stand-in: OIDC metadata, JWKS and the v2.0 token endpoint.

Contracts followed (see README.md in this folder for the links):

* ``GET /{tenant}/v2.0/.well-known/openid-configuration`` - what MSAL Python fetches for an
  ``authority`` of ``{base}/{tenant}`` with ``instance_discovery=False`` (msal/authority.py),
  and ``GET /{tenant}/.well-known/openid-configuration`` (v1 metadata: v1 tokens are validated
  against it, whatever authority the API is configured with).
* ``GET /{tenant}/discovery/v2.0/keys`` and ``/{tenant}/discovery/keys`` - the JWKS (RSA keys
  with ``kid``, ``x5t`` and ``x5c`` like Entra's).
* ``POST /{tenant}/oauth2/v2.0/token`` - ``client_credentials`` (scope ``{resource}/.default``)
  and the on-behalf-of ``urn:ietf:params:oauth:grant-type:jwt-bearer`` grant with
  ``requested_token_use=on_behalf_of``. Client secrets are accepted in the form body
  (``client_secret_post``, what MSAL sends) or as HTTP Basic. Errors have Entra's JSON shape:
  ``error``, ``error_description`` (``AADSTS<n>: ...``), ``error_codes``, ``timestamp``,
  ``trace_id``, ``correlation_id``, ``error_uri``.

Tokens are RS256 JWTs with Entra's claims. Microsoft Graph always receives v1.0 tokens (its
manifest leaves ``accessTokenAcceptedVersion`` null), so tokens for Graph have
``iss = https://sts.windows.net/{tid}/``, ``ver = 1.0`` and ``appid``; a registered API may ask
for v2.0 tokens (``iss = https://login.microsoftonline.com/{tid}/v2.0``, ``azp``). With
``issuer_mode="self"`` the issuers are built from this server's own URL instead, so the
product's issuer checks can be pointed at the stand-in through ``MS_AUTHORITY_HOST``.

Tests drive it from Python: ``register_app``, ``add_user``, ``mint_access_token``,
``mint_id_token``, ``rotate_key``, ``sign_with="unknown" | "impostor" | "none"`` for forged
tokens, ``fail_next`` and the ``token_requests`` log.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from werkzeug.datastructures import Authorization
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tests.standins.server import BackgroundServer
from tests.standins.tls import LocalCA

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "GRAPH_APP_ID",
    "GRAPH_RESOURCE",
    "Entra",
    "EntraUser",
    "RegisteredApp",
    "TokenRejected",
    "TokenRequest",
    "b64url_decode",
    "b64url_encode",
    "decode_unverified",
]

# Microsoft Graph's well-known application id and resource URI: either may be the `aud`.
GRAPH_APP_ID: Final = "00000003-0000-0000-c000-000000000000"
GRAPH_RESOURCE: Final = "https://graph.microsoft.com"
MICROSOFT_LOGIN_HOST: Final = "https://login.microsoftonline.com"
JWT_BEARER: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_OIDC_SCOPES: Final = frozenset({"openid", "profile", "email", "offline_access"})
# Entra accepts tokens up to 5 minutes outside exp/nbf; so do the stand-ins.
CLOCK_SKEW: Final = timedelta(minutes=5)


# --------------------------------------------------------------------------- JWT helpers


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_part(value: Mapping[str, Any]) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode())


def decode_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWT, without checking anything. Raises ValueError."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("a JWT has three dot-separated parts")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"the JWT is not well formed: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("the JWT header and payload must be JSON objects")
    return header, claims


class TokenRejected(ValueError):
    """A JWT that does not pass verification; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class _SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate  # self-signed, published as x5c like Entra does

    @classmethod
    def generate(cls) -> _SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.accesscontrol.test")])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .sign(key, hashes.SHA256())
        )
        # Entra's kid is the certificate's x5t (base64url SHA-1 thumbprint).
        thumbprint = b64url_encode(cert.fingerprint(hashes.SHA1()))  # noqa: S303 - x5t is SHA-1
        return cls(kid=thumbprint, private_key=key, certificate=cert)

    def sign(self, signing_input: bytes) -> bytes:
        return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())

    def jwk(self, issuer: str | None) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        jwk: dict[str, Any] = {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": b64url_encode(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url_encode(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            "x5c": [base64.b64encode(der).decode("ascii")],
        }
        if issuer is not None:
            jwk["issuer"] = issuer
        return jwk


def _encode(header: Mapping[str, Any], claims: Mapping[str, Any], key: _SigningKey | None) -> str:
    signing_input = f"{_json_part(header)}.{_json_part(claims)}"
    signature = "" if key is None else b64url_encode(key.sign(signing_input.encode("ascii")))
    return f"{signing_input}.{signature}"


# --------------------------------------------------------------------------- directory


@dataclass(frozen=True)
class EntraUser:
    """A user in the directory; ``oid`` is also their id in the Graph stand-in."""

    oid: str
    upn: str
    name: str
    tenant_id: str


@dataclass
class RegisteredApp:
    """An app registration: a client with a secret, and optionally an API (a resource).

    ``graph_roles`` are the application permissions granted on Microsoft Graph (they become
    ``roles`` in client-credential tokens); ``delegated_scopes`` are the consented delegated
    permissions an on-behalf-of ``.default`` request receives. As a resource, the app is known
    by its client id and its ``identifier_uris`` and issues ``access_token_version`` tokens.
    """

    client_id: str
    secret: str
    tenant_id: str
    graph_roles: tuple[str, ...] = ("Calendars.ReadWrite", "User.Read.All", "GroupMember.Read.All")
    delegated_scopes: tuple[str, ...] = ("Calendars.ReadWrite", "User.Read")
    identifier_uris: tuple[str, ...] = ()
    access_token_version: Literal[1, 2] = 2
    exposed_scopes: tuple[str, ...] = ("access_as_user",)
    app_roles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # resource -> roles
    display_name: str = "Meeting-to-CRM"
    service_principal_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class TokenRequest:
    """One call of the token endpoint, as the tests see it (secrets and assertions left out)."""

    at: float  # time.monotonic() on arrival
    wall: datetime
    tenant: str
    grant_type: str
    client_id: str
    scope: str
    status: int
    error: str | None
    auth_method: str  # client_secret_post, client_secret_basic or none


@dataclass
class _Failure:
    remaining: int
    status: int
    error: str
    code: int
    description: str


def _now() -> datetime:
    return datetime.now(UTC)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


class Entra:
    """The Entra stand-in. ``start()`` serves it over HTTPS with the CA from tls.py.

    ``base_url`` is what the product's ``MS_AUTHORITY_HOST`` is set to; its authority for a
    tenant is ``f"{base_url}/{tenant_id}"``.
    """

    def __init__(
        self,
        ca: LocalCA,
        *,
        tenant_id: str | None = None,
        tenant_domain: str = "contoso.onmicrosoft.com",
        issuer_mode: Literal["microsoft", "self"] = "microsoft",
    ) -> None:
        self._lock = threading.RLock()
        self.issuer_mode = issuer_mode
        self.tenant_id = tenant_id or str(uuid.uuid4())
        # tenant id -> its verified domains (a tenant segment may be either).
        self.tenants: dict[str, set[str]] = {self.tenant_id: {tenant_domain}}
        self.apps: dict[str, RegisteredApp] = {}
        self.users: dict[str, EntraUser] = {}
        # Graph answers to these resource identifiers; Graph's own stand-in adds its root URL.
        self.graph_resources: set[str] = {GRAPH_RESOURCE, GRAPH_APP_ID}
        # expires_in of issued access tokens. MSAL treats a token with under 5 minutes left as
        # expired, so a value below 300 makes every acquire_token_for_client call fetch anew.
        self.token_lifetime = 3599
        self.token_requests: list[TokenRequest] = []
        self._keys: list[_SigningKey] = [_SigningKey.generate()]  # served in JWKS, [0] signs
        self._unknown_key: _SigningKey | None = None  # never served: for forged tokens
        self._failures: list[_Failure] = []
        self.default_user = self.add_user("adele.vance@" + tenant_domain, name="Adele Vance")
        # The audience of user tokens minted without an explicit `aud`: our API's client id.
        self.default_audience = str(uuid.uuid4())
        # The client (the Outlook add-in's SPA registration) that user tokens are issued to.
        self.default_client_id = str(uuid.uuid4())
        self._server = BackgroundServer(self._wsgi, ssl_context=ca.server_context())
        self._urls = Map(
            [
                Rule("/<tenant>/v2.0/.well-known/openid-configuration", endpoint="metadata_v2"),
                Rule("/<tenant>/.well-known/openid-configuration", endpoint="metadata_v1"),
                Rule("/<tenant>/discovery/v2.0/keys", endpoint="keys_v2"),
                Rule("/<tenant>/discovery/keys", endpoint="keys_v1"),
                Rule("/<tenant>/oauth2/v2.0/token", endpoint="token", methods=["POST"]),
            ]
        )

    # ----------------------------------------------------------------------- lifecycle

    def start(self) -> Entra:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Entra:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``https://localhost:<port>``: the value for ``MS_AUTHORITY_HOST``."""
        return self._server.base_url

    def authority(self, tenant: str | None = None) -> str:
        return f"{self.base_url}/{tenant or self.tenant_id}"

    # ----------------------------------------------------------------------- issuers

    def issuer_v2(self, tenant_id: str | None = None) -> str:
        tid = tenant_id or self.tenant_id
        host = self.base_url if self.issuer_mode == "self" else MICROSOFT_LOGIN_HOST
        return f"{host}/{tid}/v2.0"

    def issuer_v1(self, tenant_id: str | None = None) -> str:
        tid = tenant_id or self.tenant_id
        if self.issuer_mode == "self":
            return f"{self.base_url}/{tid}/"
        return f"https://sts.windows.net/{tid}/"

    # ----------------------------------------------------------------------- directory API

    def add_tenant(self, tenant_id: str | None = None, domain: str | None = None) -> str:
        tid = tenant_id or str(uuid.uuid4())
        with self._lock:
            self.tenants.setdefault(tid, set()).update({domain} if domain else set())
        return tid

    def add_user(
        self,
        upn: str,
        *,
        oid: str | None = None,
        name: str | None = None,
        tenant_id: str | None = None,
    ) -> EntraUser:
        user = EntraUser(
            oid=oid or str(uuid.uuid4()),
            upn=upn,
            name=name or upn.split("@")[0].replace(".", " ").title(),
            tenant_id=tenant_id or self.tenant_id,
        )
        with self._lock:
            self.users[user.oid] = user
        return user

    def register_app(
        self,
        client_id: str,
        secret: str,
        *,
        tenant_id: str | None = None,
        **options: Any,
    ) -> RegisteredApp:
        """Register a confidential client; ``options`` are RegisteredApp fields."""
        app = RegisteredApp(
            client_id=client_id, secret=secret, tenant_id=tenant_id or self.tenant_id, **options
        )
        with self._lock:
            self.apps[client_id] = app
        return app

    # ----------------------------------------------------------------------- keys

    @property
    def current_kid(self) -> str:
        return self._keys[0].kid

    @property
    def served_kids(self) -> list[str]:
        return [key.kid for key in self._keys]

    def rotate_key(self, *, keep_old: bool = True) -> str:
        """Sign with a new key from now on; the JWKS serves it first. Returns its kid.

        Entra publishes the next key before using it and keeps old keys for a while;
        ``keep_old=False`` drops them at once, so tokens they signed stop verifying.
        """
        key = _SigningKey.generate()
        with self._lock:
            self._keys = [key, *(self._keys if keep_old else [])]
        return key.kid

    def retire_key(self, kid: str) -> None:
        with self._lock:
            self._keys = [key for key in self._keys if key.kid != kid] or self._keys

    def jwks(self, *, v2: bool = True) -> dict[str, Any]:
        issuer = f"{MICROSOFT_LOGIN_HOST}/{{tenantid}}/v2.0" if v2 else None
        return {"keys": [key.jwk(issuer) for key in self._keys]}

    def _signer(
        self, sign_with: str
    ) -> tuple[_SigningKey | None, str | None]:  # (key, kid to put in the header)
        if sign_with == "current":
            return self._keys[0], self._keys[0].kid
        if sign_with == "none":
            return None, None
        if sign_with in ("unknown", "impostor"):
            if self._unknown_key is None:
                self._unknown_key = _SigningKey.generate()
            # "impostor" claims the real kid but signs with another key.
            kid = self._keys[0].kid if sign_with == "impostor" else self._unknown_key.kid
            return self._unknown_key, kid
        for key in self._keys:
            if key.kid == sign_with:
                return key, key.kid
        raise ValueError("sign_with must be current, unknown, impostor, none or a served kid")

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        sign_with: str = "current",
        header: Mapping[str, Any] | None = None,
    ) -> str:
        """A compact JWT of ``claims``. ``sign_with`` picks the key (see ``_signer``)."""
        key, kid = self._signer(sign_with)
        head: dict[str, Any] = {"typ": "JWT", "alg": "RS256" if key else "none"}
        if kid is not None:
            head.update({"x5t": kid, "kid": kid})
        head.update(header or {})
        return _encode(head, claims, key)

    # ----------------------------------------------------------------------- minting

    def user_claims(
        self,
        *,
        version: Literal["1.0", "2.0"] = "2.0",
        user: EntraUser | None = None,
        audience: str | None = None,
        client_id: str | None = None,
        scp: str | None = "access_as_user",
        roles: Sequence[str] | None = None,
        lifetime: int | None = None,
    ) -> dict[str, Any]:
        """The claims of an access token issued to ``client_id`` for ``user`` (Entra's set)."""
        person = user or self.default_user
        now = _now()
        issued = _epoch(now)
        expires = issued + (lifetime if lifetime is not None else self.token_lifetime + 1)
        claims: dict[str, Any] = {
            "aud": audience or self.default_audience,
            "iss": self.issuer_v2(person.tenant_id)
            if version == "2.0"
            else self.issuer_v1(person.tenant_id),
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "aio": b64url_encode(secrets.token_bytes(48)),
            "name": person.name,
            "oid": person.oid,
            "rh": "0.AAAA" + b64url_encode(secrets.token_bytes(24)) + ".",
            "sub": b64url_encode(
                hashlib.sha256(f"{person.oid}:{client_id}".encode()).digest()[:32]
            ),
            "tid": person.tenant_id,
            "uti": b64url_encode(secrets.token_bytes(16)),
            "ver": version,
            "idtyp": "user",
        }
        client = client_id or self.default_client_id
        if version == "2.0":
            claims.update({"azp": client, "azpacr": "0", "preferred_username": person.upn})
        else:
            claims.update(
                {
                    "appid": client,
                    "appidacr": "0",
                    "acr": "1",
                    "amr": ["pwd"],
                    "upn": person.upn,
                    "unique_name": person.upn,
                    "ipaddr": "127.0.0.1",
                }
            )
        if scp is not None:
            claims["scp"] = scp
        if roles:
            claims["roles"] = list(roles)
        return claims

    def app_claims(
        self,
        app: RegisteredApp,
        *,
        audience: str,
        roles: Sequence[str],
        version: Literal["1.0", "2.0"] = "1.0",
        lifetime: int | None = None,
    ) -> dict[str, Any]:
        """The claims of an app-only (client credentials) access token."""
        issued = _epoch(_now())
        expires = issued + (lifetime if lifetime is not None else self.token_lifetime + 1)
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer_v2(app.tenant_id)
            if version == "2.0"
            else self.issuer_v1(app.tenant_id),
            "iat": issued,
            "nbf": issued,
            "exp": expires,
            "aio": b64url_encode(secrets.token_bytes(48)),
            "idp": self.issuer_v1(app.tenant_id),
            "idtyp": "app",
            "oid": app.service_principal_id,
            "rh": "0.AAAA" + b64url_encode(secrets.token_bytes(24)) + ".",
            "sub": app.service_principal_id,
            "tid": app.tenant_id,
            "uti": b64url_encode(secrets.token_bytes(16)),
            "ver": version,
        }
        if version == "2.0":
            claims.update({"azp": app.client_id, "azpacr": "1"})
        else:
            claims.update(
                {"appid": app.client_id, "appidacr": "1", "app_displayname": app.display_name}
            )
        if roles:
            claims["roles"] = list(roles)
        return claims

    def mint_access_token(
        self,
        *,
        version: Literal["1.0", "2.0"] = "2.0",
        user: EntraUser | None = None,
        sign_with: str = "current",
        header: Mapping[str, Any] | None = None,
        **claims_overrides: Any,
    ) -> str:
        """A delegated (user) access token, by default for our API: v2, ``scp=access_as_user``.

        Keyword arguments other than the four above replace claims (``aud="api://x"``,
        ``exp=0``, ``tid=...``); ``None`` removes a claim. ``sign_with`` is ``"current"``,
        a served kid, ``"unknown"`` (a key never published), ``"impostor"`` (the current
        kid in the header, another key's signature) or ``"none"`` (``alg: none``).
        """
        claims = self.user_claims(version=version, user=user)
        return self.sign(_apply(claims, claims_overrides), sign_with=sign_with, header=header)

    def mint_app_token(
        self,
        client_id: str,
        *,
        audience: str = GRAPH_RESOURCE,
        sign_with: str = "current",
        **claims_overrides: Any,
    ) -> str:
        """An app-only token like the token endpoint issues for ``{audience}/.default``."""
        app = self.apps[client_id]
        claims = self.app_claims(app, audience=audience, roles=self._roles_for(app, audience))
        return self.sign(_apply(claims, claims_overrides), sign_with=sign_with)

    def mint_id_token(
        self,
        *,
        client_id: str | None = None,
        user: EntraUser | None = None,
        nonce: str | None = None,
        sign_with: str = "current",
        **claims_overrides: Any,
    ) -> str:
        """A v2.0 ID token for ``client_id`` (an API must never accept one as an access token)."""
        person = user or self.default_user
        issued = _epoch(_now())
        claims: dict[str, Any] = {
            "aud": client_id or self.default_client_id,
            "iss": self.issuer_v2(person.tenant_id),
            "iat": issued,
            "nbf": issued,
            "exp": issued + 3600,
            "name": person.name,
            "oid": person.oid,
            "preferred_username": person.upn,
            "rh": "0.AAAA" + b64url_encode(secrets.token_bytes(24)) + ".",
            "sub": b64url_encode(hashlib.sha256(person.oid.encode()).digest()[:32]),
            "tid": person.tenant_id,
            "uti": b64url_encode(secrets.token_bytes(16)),
            "ver": "2.0",
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return self.sign(_apply(claims, claims_overrides), sign_with=sign_with)

    # ----------------------------------------------------------------------- verification

    def verify(
        self,
        token: str,
        *,
        audiences: Iterable[str] | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """Claims of a token this stand-in signed with a served key; else TokenRejected.

        Checks the RS256 signature against the JWKS, ``nbf``/``exp`` with 5 minutes of skew,
        that ``iss`` is this directory's v1 or v2 issuer for the token's ``tid``, and (when
        given) that ``aud`` is one of ``audiences``. Used by the Graph stand-in and for OBO
        assertions, as the real services validate tokens.
        """
        try:
            header, claims = decode_unverified(token)
        except ValueError as exc:
            raise TokenRejected("malformed", str(exc)) from None
        if header.get("alg") != "RS256":
            raise TokenRejected("signature", f"unsupported alg {header.get('alg')!r}")
        key = next((k for k in self._keys if k.kid == header.get("kid")), None)
        if key is None:
            raise TokenRejected("signature", "the signing key (kid) is not published")
        signing_input, _, signature = token.rpartition(".")
        try:
            key.private_key.public_key().verify(
                b64url_decode(signature),
                signing_input.encode("ascii"),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError):
            raise TokenRejected("signature", "the signature does not verify") from None
        moment = _epoch(now or _now())
        skew = int(CLOCK_SKEW.total_seconds())
        if not isinstance(claims.get("exp"), int) or moment - skew >= claims["exp"]:
            raise TokenRejected("expired", "the token is expired")
        if isinstance(claims.get("nbf"), int) and moment + skew < claims["nbf"]:
            raise TokenRejected("not_yet_valid", "the token is not yet valid")
        tid = claims.get("tid")
        if tid not in self.tenants:
            raise TokenRejected("tenant", f"unknown tenant {tid!r}")
        if claims.get("iss") not in (self.issuer_v1(tid), self.issuer_v2(tid)):
            raise TokenRejected("issuer", f"issuer {claims.get('iss')!r} is not {tid}'s")
        if audiences is not None and claims.get("aud") not in set(audiences):
            raise TokenRejected("audience", f"audience {claims.get('aud')!r} is not accepted")
        return claims

    # ----------------------------------------------------------------------- test hooks

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        error: str = "temporarily_unavailable",
        code: int = 90033,
        description: str = "A transient error has occurred. Please try again.",
    ) -> None:
        """Answer the next ``count`` token requests with this error (before any checks)."""
        with self._lock:
            self._failures.append(_Failure(count, status, error, code, description))

    def count_token_requests(
        self, *, grant_type: str | None = None, client_id: str | None = None
    ) -> int:
        return sum(
            1
            for r in self.token_requests
            if (grant_type is None or r.grant_type == grant_type)
            and (client_id is None or r.client_id == client_id)
        )

    # ----------------------------------------------------------------------- HTTP

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._respond(Request(environ))(environ, start_response)

    def _respond(self, request: Request) -> Response:
        adapter = self._urls.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except NotFound:
            return _json({"error": "not_found", "error_description": "No such endpoint."}, 404)
        except MethodNotAllowed as exc:
            return exc.get_response()
        except HTTPException as exc:  # pragma: no cover - redirects etc.
            return exc.get_response()
        handler = getattr(self, f"_handle_{endpoint}")
        return handler(request, **args)  # type: ignore[no-any-return]

    def _resolve_tenant(self, segment: str) -> str | None:
        """A tenant GUID for a path segment (GUID, verified domain, common, organizations)."""
        if segment in ("common", "organizations"):
            return segment
        for tid, domains in self.tenants.items():
            if segment == tid or segment.casefold() in {d.casefold() for d in domains}:
                return tid
        return None

    def _tenant_error(self, segment: str) -> Response:
        return _entra_error(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID "
            "and are signing into the correct cloud.",
        )

    def _handle_metadata_v2(self, request: Request, tenant: str) -> Response:
        tid = self._resolve_tenant(tenant)
        if tid is None:
            return self._tenant_error(tenant)
        base = f"{self.base_url}/{tid}"
        # For common/organizations Entra publishes the issuer with a literal {tenantid}.
        issuer = self.issuer_v2("{tenantid}" if tid in ("common", "organizations") else tid)
        return _json(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": issuer,
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "claims_supported": [
                    "sub",
                    "iss",
                    "cloud_instance_name",
                    "cloud_instance_host_name",
                    "cloud_graph_host_name",
                    "msgraph_host",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "acr",
                    "nonce",
                    "preferred_username",
                    "name",
                    "tid",
                    "ver",
                    "at_hash",
                    "c_hash",
                    "email",
                ],
                "kerberos_endpoint": f"{base}/kerberos",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com",
                "rbac_url": "https://pas.windows.net",
            }
        )

    def _handle_metadata_v1(self, request: Request, tenant: str) -> Response:
        tid = self._resolve_tenant(tenant)
        if tid is None:
            return self._tenant_error(tenant)
        base = f"{self.base_url}/{tid}"
        issuer = self.issuer_v1("{tenantid}" if tid in ("common", "organizations") else tid)
        return _json(
            {
                "token_endpoint": f"{base}/oauth2/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{self.base_url}/common/discovery/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": [
                    "code",
                    "id_token",
                    "code id_token",
                    "token id_token",
                    "token",
                ],
                "scopes_supported": ["openid"],
                "issuer": issuer,
                "authorization_endpoint": f"{base}/oauth2/authorize",
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "end_session_endpoint": f"{base}/oauth2/logout",
                "cloud_instance_name": "microsoftonline.com",
                "msgraph_host": "graph.microsoft.com",
            }
        )

    def _handle_keys_v2(self, request: Request, tenant: str) -> Response:
        if self._resolve_tenant(tenant) is None:
            return self._tenant_error(tenant)
        return _json(self.jwks(v2=True))

    def _handle_keys_v1(self, request: Request, tenant: str) -> Response:
        if self._resolve_tenant(tenant) is None:
            return self._tenant_error(tenant)
        return _json(self.jwks(v2=False))

    def _handle_token(self, request: Request, tenant: str) -> Response:
        form = request.form
        grant_type = form.get("grant_type", "")
        client_id, secret, method = _client_credentials(request)
        arrived, wall = time.monotonic(), _now()
        response = self._token(request, tenant, grant_type, client_id, secret)
        error = None
        if response.status_code != 200:
            error = json.loads(response.get_data(as_text=True)).get("error")
        with self._lock:
            self.token_requests.append(
                TokenRequest(
                    at=arrived,
                    wall=wall,
                    tenant=tenant,
                    grant_type=grant_type,
                    client_id=client_id,
                    scope=form.get("scope", ""),
                    status=response.status_code,
                    error=error,
                    auth_method=method,
                )
            )
        return response

    def _token(
        self, request: Request, tenant: str, grant_type: str, client_id: str, secret: str | None
    ) -> Response:
        with self._lock:
            failure = next((f for f in self._failures if f.remaining > 0), None)
            if failure is not None:
                failure.remaining -= 1
        if failure is not None:
            return _entra_error(failure.status, failure.error, failure.code, failure.description)
        tid = self._resolve_tenant(tenant)
        if tid is None:
            return self._tenant_error(tenant)
        if grant_type not in ("client_credentials", JWT_BEARER):
            return _entra_error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        app = self.apps.get(client_id)
        if app is None or (tid not in ("common", "organizations") and app.tenant_id != tid):
            return _entra_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You may "
                "have sent your authentication request to the wrong tenant.",
            )
        if secret is None:
            return _entra_error(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' "
                "or 'client_secret'.",
            )
        if not secrets.compare_digest(secret, app.secret):
            return _entra_error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is "
                "the client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        scopes = request.form.get("scope", "").split()
        if grant_type == "client_credentials":
            return self._client_credentials_grant(app, scopes)
        return self._on_behalf_of_grant(request, app, scopes)

    def _resource_of(self, scope: str) -> str:
        resource, _, _ = scope.rpartition("/")
        return resource

    def _is_known_resource(self, resource: str) -> bool:
        return resource in self.graph_resources or self._api_app(resource) is not None

    def _api_app(self, resource: str) -> RegisteredApp | None:
        for app in self.apps.values():
            if resource == app.client_id or resource in app.identifier_uris:
                return app
        return None

    def _roles_for(self, app: RegisteredApp, resource: str) -> tuple[str, ...]:
        if resource in self.graph_resources:
            return app.graph_roles
        return tuple(app.app_roles.get(resource, ()))

    def _token_version(self, resource: str) -> Literal["1.0", "2.0"]:
        api = self._api_app(resource)
        return "2.0" if api is not None and api.access_token_version == 2 else "1.0"

    def _audience(self, resource: str) -> str:
        # A v2 API's tokens always carry its client id; v1 tokens the identifier asked for.
        api = self._api_app(resource)
        if api is not None and api.access_token_version == 2:
            return api.client_id
        return resource

    def _client_credentials_grant(self, app: RegisteredApp, scopes: list[str]) -> Response:
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return _entra_error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {' '.join(scopes)} is not valid. Client credential "
                "flows must have a scope value with /.default suffixed to the resource "
                "identifier (application ID URI).",
            )
        resource = self._resource_of(scopes[0])
        if not self._is_known_resource(resource):
            return self._unknown_resource(resource, app.tenant_id)
        claims = self.app_claims(
            app,
            audience=self._audience(resource),
            roles=self._roles_for(app, resource),
            version=self._token_version(resource),
        )
        return _json(
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": self.sign(claims),
            },
            no_store=True,
        )

    def _unknown_resource(self, resource: str, tenant_id: str) -> Response:
        return _entra_error(
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{tenant_id}. This can happen if the application has not been installed by the "
            "administrator of the tenant or consented to by any user in the tenant. You might "
            "have sent your authentication request to the wrong tenant.",
        )

    def _on_behalf_of_grant(
        self, request: Request, app: RegisteredApp, scopes: list[str]
    ) -> Response:
        form = request.form
        if form.get("requested_token_use") != "on_behalf_of":
            return _entra_error(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'requested_token_use'.",
            )
        assertion = form.get("assertion", "")
        try:
            claims = self.verify(assertion)
        except TokenRejected as exc:
            if exc.reason == "expired":
                return _entra_error(
                    400,
                    "invalid_grant",
                    500133,
                    "Assertion is not within its valid time range. Ensure that the access "
                    "token is not expired before using it for user assertion, or request a new "
                    "token.",
                )
            return _entra_error(
                400, "invalid_grant", 50013, f"Assertion failed signature validation. [{exc}]"
            )
        own_ids = {app.client_id, *app.identifier_uris}
        if claims.get("aud") not in own_ids:
            return _entra_error(
                400,
                "invalid_grant",
                500131,
                "Assertion audience does not match the Client app presenting the assertion. "
                f"The audience in the assertion was '{claims.get('aud')}' and the expected "
                f"audience is '{app.client_id}' or one of the Application Id URIs of this "
                "application.",
            )
        if "scp" not in claims:
            return _entra_error(
                400,
                "invalid_grant",
                50013,
                "Assertion failed signature validation. [Reason - an app-only token cannot be "
                "used as a user assertion.]",
            )
        resource_scopes = [s for s in scopes if s not in _OIDC_SCOPES]
        resources = {self._resource_of(s) for s in resource_scopes}
        if len(resources) != 1:
            return _entra_error(
                400,
                "invalid_scope",
                70011,
                "The provided request must include a 'scope' input parameter with scopes of "
                "exactly one resource.",
            )
        resource = resources.pop()
        if not self._is_known_resource(resource):
            return self._unknown_resource(resource, app.tenant_id)
        names = [s.rpartition("/")[2] for s in resource_scopes]
        if names == [".default"]:
            names = list(
                app.delegated_scopes
                if resource in self.graph_resources
                else (self._api_app(resource) or app).exposed_scopes
            )
        user = self.users.get(claims["oid"]) or EntraUser(
            oid=claims["oid"],
            upn=claims.get("preferred_username") or claims.get("upn", ""),
            name=claims.get("name", ""),
            tenant_id=claims["tid"],
        )
        version = self._token_version(resource)
        token_claims = self.user_claims(
            version=version,
            user=user,
            audience=self._audience(resource),
            client_id=app.client_id,
            scp=" ".join(names),
        )
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join(
                names if resource in self.graph_resources else [f"{resource}/{n}" for n in names]
            ),
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": self.sign(token_claims),
        }
        if "offline_access" in scopes:
            body["refresh_token"] = "0.AAAA" + b64url_encode(secrets.token_bytes(64))
        if "openid" in scopes:
            body["id_token"] = self.mint_id_token(client_id=app.client_id, user=user)
        if form.get("client_info") == "1":
            info = {"uid": user.oid, "utid": user.tenant_id}
            body["client_info"] = b64url_encode(json.dumps(info).encode())
        return _json(body, no_store=True)


# --------------------------------------------------------------------------- helpers


def _apply(claims: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**claims, **overrides}
    return {name: value for name, value in merged.items() if value is not None}


def _client_credentials(request: Request) -> tuple[str, str | None, str]:
    """(client_id, secret or None, method) from the form or an HTTP Basic header."""
    auth: Authorization | None = request.authorization
    if auth is not None and auth.type == "basic" and auth.username:
        return auth.username, auth.password, "client_secret_basic"
    secret = request.form.get("client_secret")
    return request.form.get("client_id", ""), secret, "client_secret_post" if secret else "none"


def _json(body: Mapping[str, Any], status: int = 200, *, no_store: bool = False) -> Response:
    response = Response(
        json.dumps(body), status=status, content_type="application/json; charset=utf-8"
    )
    if no_store:
        response.headers["Cache-Control"] = "no-store, no-cache"
        response.headers["Pragma"] = "no-cache"
    return response


def _entra_error(status: int, error: str, code: int, description: str) -> Response:
    """An error in the token endpoint's JSON shape (AADSTS code in the description)."""
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = _now().strftime("%Y-%m-%d %H:%M:%SZ")
    prefix = f"AADSTS{code}: " if code else ""
    return _json(
        {
            "error": error,
            "error_description": f"{prefix}{description}\r\nTrace ID: {trace}\r\n"
            f"Correlation ID: {correlation}\r\nTimestamp: {stamp}",
            "error_codes": [code] if code else [],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"{MICROSOFT_LOGIN_HOST}/error?code={code}",
        },
        status,
        no_store=True,
    )
