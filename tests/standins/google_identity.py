"""Google's ID-token issuer stand-in: the x509 certs endpoint and Google-signed ID tokens.

Contract followed (reference/google.md §2.4 and §7.1; google-auth ``google/oauth2/id_token.py``):

* ``GET /oauth2/v1/certs`` answers what https://www.googleapis.com/oauth2/v1/certs answers: a JSON
  object mapping each key id (``kid``) to a self-signed x509 certificate in PEM, with
  ``Cache-Control: public, max-age=<n>, must-revalidate, no-transform`` and ``Expires``. This is
  the format ``google.oauth2.id_token.verify_token(..., certs_url=...)`` and
  ``google.auth.jwt.decode(certs=...)`` read (the JWK format at ``/oauth2/v3/certs`` is not served).
* Tokens are RS256 JWTs with header ``{"alg": "RS256", "kid": ..., "typ": "JWT"}`` and Google's
  claims: ``iss``, ``azp``, ``aud``, ``sub``, ``email``, ``email_verified``, ``iat``, ``exp`` and,
  for Workspace users, ``hd`` (the hosted domain). An add-on's system ID token is one of these for
  the ``service-<n>@gcp-sa-gsuiteaddons.iam.gserviceaccount.com`` account with ``aud`` = the
  endpoint URL; its ``userIdToken`` is one for the user with ``aud`` = the add-on's OAuth client id.

Tests drive it from Python::

    with GoogleIdentity(make_ca(tmp_path)) as google:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(google.ca.ca_path))
        token = google.mint_id_token("https://crm.test/addon/google/homepage", SERVICE_ACCOUNT)
        ... GOOGLE_CERTS_URL = google.certs_url ...
        assert google.certs_requests == 1

``key="unknown"`` signs with a key the certs endpoint never serves (a forged token);
``rotate_key()`` starts signing with a new key (served from then on); ``max_age`` sets the
certificates' Cache-Control lifetime.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from tests.standins.server import BackgroundServer
from tests.standins.tls import LocalCA

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "ADDON_CLIENT_ID",
    "ADDON_SERVICE_ACCOUNT",
    "CERTS_PATH",
    "GOOGLE_ISSUER",
    "GoogleIdentity",
]

GOOGLE_ISSUER: Final = "https://accounts.google.com"
CERTS_PATH: Final = "/oauth2/v1/certs"
# Sample identities of an add-on deployment (what `gcloud workspace-add-ons get-authorization`
# prints): the service account that calls the endpoints and the OAuth client of userIdToken.
ADDON_SERVICE_ACCOUNT: Final = "service-123456789012@gcp-sa-gsuiteaddons.iam.gserviceaccount.com"
ADDON_CLIENT_ID: Final = "123456789012-addon0example.apps.googleusercontent.com"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_part(value: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


@dataclass(frozen=True)
class _SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    certificate_pem: str

    @classmethod
    def generate(cls) -> _SigningKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, "federated-signon.system.gserviceaccount.com")]
        )
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=14))
            .sign(key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        kid = hashlib.sha1(der).hexdigest()  # noqa: S324 - Google's kids are 40 hex digits
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        return cls(kid=kid, private_key=key, certificate_pem=pem)

    def sign(self, signing_input: bytes) -> bytes:
        return self.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())


class GoogleIdentity:
    """The stand-in. ``start()`` serves the certs endpoint over HTTPS with ``ca``."""

    def __init__(self, ca: LocalCA, *, max_age: int = 19_800) -> None:
        self.ca = ca
        self.max_age = max_age  # seconds in Cache-Control (Google sends ~5-7 hours)
        self.certs_requests = 0  # GETs of the certs endpoint served so far
        self._lock = threading.Lock()
        self._keys: list[_SigningKey] = [_SigningKey.generate()]  # served; [0] signs
        self._unknown = _SigningKey.generate()  # never served
        self._server = BackgroundServer(self._wsgi, ssl_context=ca.server_context())
        self._urls = Map([Rule(CERTS_PATH, endpoint="certs", methods=["GET"])])

    # ----------------------------------------------------------------------- lifecycle

    def start(self) -> GoogleIdentity:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> GoogleIdentity:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def certs_url(self) -> str:
        """The value for ``GOOGLE_CERTS_URL``."""
        return self.base_url + CERTS_PATH

    def environment(self) -> dict[str, str]:
        """Settings pointing the product at the stand-in (and trusting its CA)."""
        ca = str(self.ca.ca_path)
        return {
            "GOOGLE_CERTS_URL": self.certs_url,
            "REQUESTS_CA_BUNDLE": ca,
            "SSL_CERT_FILE": ca,
            "CURL_CA_BUNDLE": ca,
        }

    # ----------------------------------------------------------------------- keys

    @property
    def current_kid(self) -> str:
        return self._keys[0].kid

    def rotate_key(self, *, keep_old: bool = True) -> str:
        """Sign with a new key from now on (served first); returns its kid."""
        key = _SigningKey.generate()
        with self._lock:
            self._keys = [key, *(self._keys if keep_old else [])]
        return key.kid

    def certs(self) -> dict[str, str]:
        with self._lock:
            return {key.kid: key.certificate_pem for key in self._keys}

    # ----------------------------------------------------------------------- minting

    def mint_id_token(
        self,
        audience: str,
        email: str,
        *,
        email_verified: bool = True,
        sub: str | None = None,
        hd: str | None = None,
        issuer: str = GOOGLE_ISSUER,
        expires_in: int = 3600,
        extra_claims: Mapping[str, Any] | None = None,
        key: Literal["good", "unknown"] = "good",
    ) -> str:
        """A Google-signed ID token for ``email`` with ``aud`` = ``audience``.

        ``sub`` defaults to a stable 21-digit number derived from the e-mail address;
        ``expires_in`` may be negative for an expired token; ``extra_claims`` are merged last
        (a value of None removes the claim); ``key="unknown"`` signs with a key never served.
        """
        now = int(time.time())
        subject = sub or str(int(hashlib.sha256(email.encode()).hexdigest(), 16) % 10**21).zfill(21)
        claims: dict[str, Any] = {
            "iss": issuer,
            "azp": audience if audience.endswith(".apps.googleusercontent.com") else subject,
            "aud": audience,
            "sub": subject,
            "email": email,
            "email_verified": email_verified,
            "iat": min(now, now + expires_in - 60),
            "exp": now + expires_in,
        }
        if hd is not None:
            claims["hd"] = hd
        for name, value in (extra_claims or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        signer = self._keys[0] if key == "good" else self._unknown
        header = {"alg": "RS256", "kid": signer.kid, "typ": "JWT"}
        signing_input = f"{_json_part(header)}.{_json_part(claims)}"
        signature = _b64url(signer.sign(signing_input.encode("ascii")))
        return f"{signing_input}.{signature}"

    # ----------------------------------------------------------------------- HTTP

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Any:
        request = Request(environ)
        try:
            endpoint, _ = self._urls.bind_to_environ(environ).match()
            if endpoint != "certs":  # pragma: no cover - the map has one rule
                raise NotFound
            response = self._certs_response()
        except HTTPException as exc:
            response = Response(
                json.dumps({"error": {"code": exc.code, "message": exc.description}}),
                status=exc.code or 500,
                content_type="application/json; charset=UTF-8",
            )
        del request
        return response(environ, start_response)

    def _certs_response(self) -> Response:
        with self._lock:
            self.certs_requests += 1
        expires = datetime.now(UTC) + timedelta(seconds=self.max_age)
        response = Response(
            json.dumps(self.certs(), indent=2),
            content_type="application/json; charset=UTF-8",
        )
        response.headers["Cache-Control"] = (
            f"public, max-age={self.max_age}, must-revalidate, no-transform"
        )
        response.headers["Expires"] = format_datetime(expires, usegmt=True)
        return response
