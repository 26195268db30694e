"""Who is calling: the principal every API request runs as, and admin API keys.

Add-in identities (Entra, Google) resolve to the same Principal; see addin/auth.py for the chain.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from services.db import utcnow
from services.errors import NotAuthenticated, NotFound
from services.tables import ApiKey, Organization, User
from services.unit_of_work import UnitOfWork

API_KEY_PREFIX = "mtc"
# last_used_at is informative; writing it on every request would serialize readers on SQLite.
_LAST_USED_RESOLUTION = dt.timedelta(minutes=5)


class PrincipalKind(enum.StrEnum):
    API_KEY = "api_key"
    ENTRA = "entra"
    GOOGLE = "google"


@dataclass(frozen=True, slots=True)
class Principal:
    org_id: int
    user_id: int | None
    kind: PrincipalKind
    name: str

    def can_see_private(self, owner_id: int | None) -> bool:
        """Private activities are visible to their owner only (scenario B7)."""
        return self.user_id is not None and self.user_id == owner_id


@dataclass(frozen=True, slots=True)
class IssuedKey:
    id: int
    token: str  # shown once; only its hash is stored


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(
    uow: UnitOfWork, *, org_id: int, name: str, user_email: str | None = None
) -> IssuedKey:
    if uow.session.get(Organization, org_id) is None:
        raise NotFound(f"organization {org_id} does not exist")
    user_id = None
    if user_email is not None:
        user = uow.session.scalar(
            select(User).where(User.org_id == org_id, User.email == user_email.strip().lower())
        )
        if user is None:
            raise NotFound(f"no user {user_email} in organization {org_id}")
        user_id = user.id
    lookup_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        org_id=org_id, user_id=user_id, name=name, lookup_id=lookup_id, secret_hash=_hash(secret)
    )
    uow.session.add(key)
    uow.flush()
    return IssuedKey(id=key.id, token=f"{API_KEY_PREFIX}_{lookup_id}_{secret}")


def looks_like_api_key(token: str) -> bool:
    return token.startswith(f"{API_KEY_PREFIX}_") and token.count("_") >= 2


def authenticate_api_key(uow: UnitOfWork, token: str) -> Principal:
    """Resolve an API key to its principal, or raise NotAuthenticated (never says which part)."""
    _, _, rest = token.partition("_")
    lookup_id, _, secret = rest.partition("_")
    key = uow.session.scalar(select(ApiKey).where(ApiKey.lookup_id == lookup_id))
    # Compare even when the key is unknown so timing does not tell ids apart.
    expected = key.secret_hash if key is not None else _hash("")
    if not hmac.compare_digest(expected, _hash(secret)) or key is None or key.revoked_at:
        raise NotAuthenticated("the API key is not valid")
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > _LAST_USED_RESOLUTION:
        key.last_used_at = now
        uow.commit()
    return Principal(
        org_id=key.org_id, user_id=key.user_id, kind=PrincipalKind.API_KEY, name=key.name
    )


def revoke_api_key(uow: UnitOfWork, key_id: int) -> None:
    key = uow.session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"API key {key_id} does not exist")
    key.revoked_at = utcnow()
