"""Domain errors. The web layer maps each to one HTTP status and the shared JSON error shape."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: `code` is a stable machine-readable string, the message is for people."""

    code = "error"

    def __init__(self, message: str, *, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class InvalidInput(DomainError):
    """Input that is well-formed but breaks a domain rule (unknown owner, end before start)."""

    code = "invalid_input"

    @classmethod
    def field(cls, name: str, message: str) -> InvalidInput:
        return cls(f"{name}: {message}", errors={name: [message]})


class NotAuthenticated(DomainError):
    code = "not_authenticated"


class Forbidden(DomainError):
    code = "forbidden"
