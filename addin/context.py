"""Request-scoped access to the container and the authenticated principal."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import current_app, g

from services.auth import Principal

if TYPE_CHECKING:
    from bootstrap import Container


def container() -> Container:
    return cast("Container", current_app.extensions["container"])


def principal() -> Principal:
    return cast(Principal, g.principal)
