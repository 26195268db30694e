"""Companies and the e-mail domains that point to them."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from sqlalchemy import Table, bindparam, select

from services import search
from services.errors import Conflict, InvalidInput, NotFound
from services.tables import Company, CompanyDomain
from services.text import fold, is_valid_domain, normalize_domain
from services.unit_of_work import UnitOfWork

EDITABLE_FIELDS = ("name", "website", "phone", "city", "country", "notes")
SORT_NAME_LENGTH = Company.sort_name.type.length or 200


def sort_key(name: str) -> str:
    """The folded name; folding can lengthen a name (ß -> ss), the column cannot."""
    return fold(name)[:SORT_NAME_LENGTH]


def get_company(uow: UnitOfWork, org_id: int, company_id: int) -> Company:
    company = uow.session.get(Company, company_id)
    if company is None or company.org_id != org_id:
        raise NotFound(f"company {company_id} does not exist")
    return company


def _clean_domains(domains: Iterable[str]) -> list[str]:
    cleaned = sorted({normalize_domain(d) for d in domains if d.strip()})
    bad = [d for d in cleaned if not is_valid_domain(d)]
    if bad:
        raise InvalidInput.field("domains", f"not a domain: {', '.join(bad)}")
    return cleaned


def _check_domains_free(
    uow: UnitOfWork, org_id: int, domains: list[str], company_id: int | None
) -> None:
    if not domains:
        return
    taken = uow.session.execute(
        select(CompanyDomain.domain, CompanyDomain.company_id).where(
            CompanyDomain.org_id == org_id, CompanyDomain.domain.in_(domains)
        )
    ).all()
    clashes = [f"{domain} (company {owner})" for domain, owner in taken if owner != company_id]
    if clashes:
        raise Conflict(
            f"domain already belongs to another company: {', '.join(clashes)}",
            errors={"domains": [f"already used by another company: {', '.join(clashes)}"]},
        )


def _check_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise InvalidInput.field("name", "must not be empty")
    return name


def create_company(
    uow: UnitOfWork, org_id: int, *, name: str, domains: Iterable[str] = (), **fields: str
) -> Company:
    name = _check_name(name)
    clean = _clean_domains(domains)
    _check_domains_free(uow, org_id, clean, None)
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"unknown company fields: {sorted(unknown)}")
    company = Company(org_id=org_id, name=name, sort_name=sort_key(name), **fields)
    company.domains = [CompanyDomain(org_id=org_id, domain=d) for d in clean]
    uow.session.add(company)
    uow.flush()
    search.index_company(uow.session, company)
    return company


def update_company(
    uow: UnitOfWork, org_id: int, company_id: int, changes: Mapping[str, Any]
) -> Company:
    company = get_company(uow, org_id, company_id)
    for field, value in changes.items():
        if field == "domains":
            clean = _clean_domains(value)
            _check_domains_free(uow, org_id, clean, company.id)
            current = {d.domain: d for d in company.domains}
            company.domains = [
                current.get(d) or CompanyDomain(org_id=org_id, domain=d) for d in clean
            ]
        elif field == "name":
            company.name = _check_name(value)
            company.sort_name = sort_key(company.name)
        elif field in EDITABLE_FIELDS:
            setattr(company, field, value)
        else:
            raise TypeError(f"unknown company field: {field}")
    uow.flush()
    search.index_company(uow.session, company)
    return company


def delete_company(uow: UnitOfWork, org_id: int, company_id: int) -> None:
    company = get_company(uow, org_id, company_id)
    search.unindex_company(uow.session, company)
    uow.session.delete(company)
    uow.flush()


@dataclass(frozen=True, slots=True)
class FoundCompany:
    """A search hit: what the add-ins show of a company, read without the ORM. Search runs
    at every keystroke; 20 ORM objects with their domains cost more CPU than the search."""

    id: int
    name: str
    domain_names: tuple[str, ...]
    website: str
    phone: str
    city: str
    country: str
    notes: str
    created_at: dt.datetime
    updated_at: dt.datetime


_COMPANIES: Final = cast(Table, Company.__table__)
_DOMAINS: Final = cast(Table, CompanyDomain.__table__)
_FOUND_COLUMNS: Final = ("id", "name", "website", "phone", "city", "country", "notes")
# Built once, so SQLAlchemy compiles it once per process.
_FOUND: Final = (
    select(
        *(_COMPANIES.c[name] for name in _FOUND_COLUMNS),
        _COMPANIES.c.created_at,
        _COMPANIES.c.updated_at,
        _DOMAINS.c.domain,
    )
    .outerjoin(_DOMAINS, _DOMAINS.c.company_id == _COMPANIES.c.id)
    .where(_COMPANIES.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_COMPANIES.c.id, _DOMAINS.c.domain)
)


def search_companies(
    uow: UnitOfWork, org_id: int, query: str, limit: int = 20
) -> list[FoundCompany]:
    """The best `limit` matches for what the user typed, best first (services.search)."""
    ids = search.search_company_ids(uow.session, org_id, query, limit)
    if not ids:
        return []
    found: dict[int, Sequence[Any]] = {}
    domains: dict[int, list[str]] = defaultdict(list)
    for *company, domain in uow.session.connection().execute(_FOUND, {"ids": ids}):
        found[company[0]] = company  # id, name, then the fields after domain_names
        if domain is not None:
            domains[company[0]].append(domain)
    return [
        FoundCompany(row[0], row[1], tuple(domains[i]), *row[2:])
        for i in ids
        if (row := found.get(i)) is not None
    ]


def list_companies(
    uow: UnitOfWork, org_id: int, *, after: tuple[str, int] | None, limit: int
) -> list[Company]:
    """Alphabetical, keyset-paginated by (sort_name, id)."""
    stmt = select(Company).where(Company.org_id == org_id)
    if after is not None:
        sort_name, last_id = after
        stmt = stmt.where(
            (Company.sort_name > sort_name)
            | ((Company.sort_name == sort_name) & (Company.id > last_id))
        )
    return list(uow.session.scalars(stmt.order_by(Company.sort_name, Company.id).limit(limit)))


def companies_by_domain(uow: UnitOfWork, org_id: int, domains: Iterable[str]) -> dict[str, Company]:
    wanted = {normalize_domain(d) for d in domains}
    if not wanted:
        return {}
    rows = uow.session.execute(
        select(CompanyDomain.domain, Company)
        .join(Company, Company.id == CompanyDomain.company_id)
        .where(CompanyDomain.org_id == org_id, CompanyDomain.domain.in_(wanted))
    ).all()
    return dict(rows)
