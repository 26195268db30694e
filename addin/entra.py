"""The Outlook task pane's Entra ID access tokens: validated, then mapped to a CRM user.

The task pane gets an access token for our own API (scope ``access_as_user``) through nested
app authentication or Office SSO and sends it as ``Authorization: Bearer``. This authenticator
checks it as https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-tokens
says, in this order:

1. shape: an RS256 JWT with a ``kid``, ``ver`` 1.0 or 2.0, a GUID ``tid`` (nothing else is
   accepted: no ``none``, no HMAC);
2. the tenant is on the allow-list (an organization with that ``ms_tenant_id``) - checked before
   any key is fetched, so tokens naming arbitrary tenants never make us call Entra;
3. the signature, with the tenant's published key ``kid`` (graph/identity.py fetches and caches
   the JWKS and the issuer from the v2.0 or v1.0 OpenID metadata, by the token's ``ver``);
4. ``iss`` equals that metadata issuer with ``{tenantid}`` = the token's ``tid``, exactly (so
   ``tid`` and ``iss`` agree); ``aud`` is our client id (v2.0) or App ID URI (v1.0), a single
   string; ``exp``, ``nbf`` and ``iat`` hold with a minute of leeway; ``oid`` is present;
5. it is a delegated token with ``scp`` containing ``access_as_user``: app-only tokens
   (``roles``, ``idtyp=app``) and ID tokens (no ``scp``) are refused.

Then services/identities.py maps (tid, oid, e-mail, name) to the CRM user. Refusals are 401
(not a valid token) or 403 (a valid token that may not use the CRM); the token itself never
appears in a message or a log line, refusals are logged with a reason code only.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import TYPE_CHECKING, Any, Final

import jwt
from werkzeug.exceptions import ServiceUnavailable

from addin.auth import Authenticator
from addin.context import container
from graph.identity import EntraSigningKeys, EntraUnavailable, TokenVersion
from services import identities
from services.auth import Principal, PrincipalKind
from services.errors import Forbidden, NotAuthenticated

if TYPE_CHECKING:
    from bootstrap import Settings

__all__ = ["REQUIRED_SCOPE", "EntraAuthenticator", "entra_authenticator"]

log = logging.getLogger(__name__)

REQUIRED_SCOPE: Final = "access_as_user"
LEEWAY_SECONDS: Final = 60
_MAX_TOKEN_CHARS: Final = 16_384
_JWT_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_GUID: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_VERSIONS: Final[dict[Any, TokenVersion]] = {"1.0": "1.0", "2.0": "2.0"}
# The claims every Entra access token carries; a token without one of them is not accepted.
_REQUIRED_CLAIMS: Final = ["iss", "aud", "exp", "nbf", "iat", "tid", "oid"]


def _refused(reason: str, message: str, *, forbidden: bool = False) -> Exception:
    log.info("auth.entra.refused reason=%s", reason)
    return Forbidden(message) if forbidden else NotAuthenticated(message)


def _not_connected() -> Exception:
    return _refused(
        "tenant_not_connected",
        "this Microsoft 365 tenant is not connected to the CRM: an administrator must connect "
        "it first",
        forbidden=True,
    )


@functools.lru_cache(maxsize=32)
def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and claims, unchecked (only to pick the tenant and key); None when unreadable.

    Cached for a few tokens: `accepts` and `authenticate` read the same token in a row.
    Callers must not change what it returns.
    """
    try:
        decoded = jwt.decode_complete(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    header, claims = decoded["header"], decoded["payload"]
    return (header, claims) if isinstance(header, dict) and isinstance(claims, dict) else None


class EntraAuthenticator:
    """Validates Entra access tokens for our API; see the module docstring for the checks."""

    def __init__(
        self,
        *,
        client_id: str,
        api_audience: str | None,
        keys: EntraSigningKeys,
        leeway: int = LEEWAY_SECONDS,
    ) -> None:
        # v2.0 tokens carry the client id, v1.0 tokens the App ID URI: both, nothing else.
        self.audiences = frozenset(aud for aud in (client_id, api_audience) if aud)
        self.keys = keys
        self.leeway = leeway

    def accepts(self, token: str) -> bool:
        """A JWT that names an Entra tenant (``tid``); other JWTs are left to other issuers."""
        if len(token) > _MAX_TOKEN_CHARS or not _JWT_SHAPE.fullmatch(token):
            return False
        parts = _unverified(token)
        return parts is not None and "tid" in parts[1]

    def authenticate(self, token: str) -> Principal:
        header, unverified = self._shape(token)
        kid, tid = header["kid"], unverified["tid"]
        version = _VERSIONS[unverified["ver"]]
        # Only a connected tenant may make us fetch its keys from Entra. Keys already cached
        # are a connected tenant's: then sign_in's own lookup is the check (one query less).
        if not self.keys.has_keys(tid, version):
            with container().uow(read_only=True) as uow:
                connected = identities.organization_for(uow, PrincipalKind.ENTRA, tid) is not None
            if not connected:
                raise _not_connected()
        claims = self._verified_claims(token, kid, tid, version)
        self._check_delegated(claims)
        email_claims = ("preferred_username",) if version == "2.0" else ("upn", "unique_name")
        email = next((claims[c] for c in email_claims if isinstance(claims.get(c), str)), "")
        name = claims.get("name")
        identity = identities.VerifiedIdentity(
            kind=PrincipalKind.ENTRA,
            tenant=tid,
            subject=claims["oid"],
            email=email,
            name=name if isinstance(name, str) else "",
        )
        try:
            return identities.sign_in(container().uow, identity)
        except identities.NotConnected:
            raise _not_connected() from None  # disconnected since its keys were cached
        except Forbidden:
            log.info("auth.entra.refused reason=user_not_allowed")
            raise

    # ----------------------------------------------------------------------- the checks

    def _shape(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        parts = _unverified(token)
        if parts is None:
            raise _refused("malformed", "the bearer token is not a well-formed JWT")
        header, claims = parts
        if header.get("alg") != "RS256":
            raise _refused("algorithm", "only RS256-signed Microsoft Entra tokens are accepted")
        if not isinstance(header.get("kid"), str) or not header["kid"]:
            raise _refused("no_kid", "the token does not name its signing key (kid)")
        if claims.get("ver") not in _VERSIONS:
            raise _refused("version", "the token is not a Microsoft Entra v1.0 or v2.0 token")
        tid = claims.get("tid")
        if not isinstance(tid, str) or not _GUID.fullmatch(tid):
            raise _refused("tenant_id", "the token's tenant (tid) is not a tenant id")
        return header, claims

    def _verified_claims(
        self, token: str, kid: str, tid: str, version: TokenVersion
    ) -> dict[str, Any]:
        try:
            signing = self.keys.signing_key(tid, version, kid)
        except EntraUnavailable as failure:
            log.warning("auth.entra.unavailable reason=%s", failure.reason)
            raise ServiceUnavailable(
                "Microsoft Entra ID could not be reached to check the sign-in; try again shortly"
            ) from None
        if signing.key is None:
            raise _refused("unknown_key", "the token is not signed with a key Entra publishes")
        try:
            claims = jwt.decode(
                token,
                key=signing.key,
                algorithms=["RS256"],
                issuer=signing.issuer,
                leeway=self.leeway,
                options={"require": _REQUIRED_CLAIMS, "verify_aud": False},
            )
        except jwt.InvalidSignatureError:
            raise _refused("signature", "the token's signature is not valid") from None
        except jwt.ExpiredSignatureError:
            raise _refused("expired", "the access token has expired") from None
        except jwt.ImmatureSignatureError:
            raise _refused("not_yet_valid", "the access token is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise _refused("issuer", "the token is not issued by the tenant it names") from None
        except jwt.MissingRequiredClaimError as missing:
            raise _refused("missing_claim", f"the token has no {missing.claim} claim") from None
        except jwt.PyJWTError:
            raise _refused("invalid", "the access token is not valid") from None
        audience = claims["aud"]
        if not isinstance(audience, str) or audience not in self.audiences:
            raise _refused("audience", "the access token is not for this API (audience)")
        if not isinstance(claims["oid"], str):
            raise _refused("missing_claim", "the token has no oid claim")
        return claims

    def _check_delegated(self, claims: dict[str, Any]) -> None:
        scopes = claims.get("scp")
        if claims.get("idtyp") == "app" or (scopes is None and "roles" in claims):
            raise _refused(
                "app_only",
                "app-only tokens are not accepted: the add-in must call for a signed-in user",
                forbidden=True,
            )
        if not isinstance(scopes, str):
            raise _refused(
                "not_access_token",
                "the token is not a delegated access token for this API (no scp claim)",
            )
        if REQUIRED_SCOPE not in scopes.split():
            raise _refused(
                "scope",
                f"the access token does not grant the {REQUIRED_SCOPE} scope",
                forbidden=True,
            )


def entra_authenticator(settings: Settings) -> Authenticator:
    """The chain entry for Entra access tokens; create_app adds it when MS_CLIENT_ID is set."""
    validator = EntraAuthenticator(
        client_id=settings.ms_client_id or "",
        api_audience=settings.ms_api_audience,
        keys=EntraSigningKeys(authority_host=settings.ms_authority_host),
    )
    return Authenticator("entra", validator.accepts, validator.authenticate)
