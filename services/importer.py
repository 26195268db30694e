"""CSV import of companies and contacts (being written)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str


@dataclass(slots=True)
class ImportReport:
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)


def import_csv(
    uow_factory: Callable[..., Any],
    org_id: int,
    kind: str,
    handle: IO[str],
    *,
    progress: Callable[[int], object] | None = None,
) -> ImportReport:
    raise NotImplementedError
