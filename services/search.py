"""Company search as the add-ins type: prefix and word matches, case- and accent-insensitive.

Placeholder implementation (LIKE over the folded name); replaced by FTS5 / pg_trgm.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.tables import Company
from services.text import fold


def index_company(session: Session, company: Company) -> None:
    """Keep the search index in step with a created or changed company."""


def unindex_company(session: Session, company: Company) -> None:
    """Remove a company from the search index before it is deleted."""


def search_company_ids(session: Session, org_id: int, query: str, limit: int) -> list[int]:
    words = fold(query).split()
    if not words:
        return []
    stmt = select(Company.id).where(Company.org_id == org_id)
    for word in words:
        stmt = stmt.where(
            Company.sort_name.like(f"{word}%") | Company.sort_name.like(f"% {word}%")
        )
    return list(session.scalars(stmt.order_by(Company.sort_name).limit(limit)))
