"""Who is calling the API: a chain of authenticators keyed by what the bearer token looks like.

Admin API keys are built in; the Outlook (Entra access tokens) and Google (ID tokens) issues add
their authenticators to `app.extensions["authenticators"]` without touching the endpoints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app, g, request

from addin.context import container
from services.auth import Principal, authenticate_api_key, looks_like_api_key
from services.errors import NotAuthenticated


@dataclass(frozen=True, slots=True)
class Authenticator:
    name: str
    accepts: Callable[[str], bool]
    authenticate: Callable[[str], Principal]


def api_key_authenticator() -> Authenticator:
    def authenticate(token: str) -> Principal:
        with container().uow() as uow:
            return authenticate_api_key(uow, token)

    return Authenticator("api_key", looks_like_api_key, authenticate)


def require_principal() -> None:
    """before_request hook of every API blueprint: sets g.principal or raises 401."""
    if request.method == "OPTIONS":
        return
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("send 'Authorization: Bearer <token>'")
    authenticators: list[Authenticator] = current_app.extensions["authenticators"]
    for authenticator in authenticators:
        if authenticator.accepts(token):
            g.principal = authenticator.authenticate(token)
            return
    raise NotAuthenticated("the bearer token is not one this service accepts")
