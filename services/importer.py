"""CSV import of companies and contacts: every row is checked first, then all are written or none.

The rules are those of services.companies and services.contacts (names collapsed to single
spaces, sort_name = fold(name), domains and e-mails normalised and validated with services.text),
but rows are matched against the database with a few set-wise queries and written with bulk
INSERT/UPDATE statements instead of create_company/update_company, which cost a SELECT and a
flush per row. The file format is described in docs/import.md.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar, TypeVarTuple, cast

from sqlalchemy import Row, Select, Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from services.db import utcnow
from services.tables import Company, CompanyDomain, Contact, ContactEmail
from services.text import fold, is_valid_domain, is_valid_email, normalize_domain, normalize_email
from services.unit_of_work import UnitOfWork

KINDS = ("companies", "contacts")
COMPANY_COLUMNS = ("name", "domains", "website", "phone", "city", "country", "notes")
CONTACT_COLUMNS = ("first_name", "last_name", "emails", "title", "phone", "company")

# Same limits as addin/api/schemas.py CompanyIn and ContactIn (and within the column sizes).
COMPANY_LIMITS = {
    "name": 200, "website": 500, "phone": 64, "city": 120, "country": 120, "notes": 20_000,
}  # fmt: skip
CONTACT_LIMITS = {"first_name": 120, "last_name": 120, "title": 200, "phone": 64}
MAX_DOMAINS, MAX_DOMAIN_LENGTH = 50, 253
MAX_EMAILS, MAX_EMAIL_LENGTH = 20, 320

# Neither a domain nor an e-mail address can contain these, so any of them separates two.
_LIST_SEPARATORS = re.compile(r"[;,\s]+")
_PROGRESS_EVERY = 1000  # lines between progress callbacks
_LOOKUP_CHUNK = 500  # IN (...) list size: far below SQLite's bound-parameter limit
_SCAN_ABOVE = 2000  # more keys than this: read the organization's rows instead (_matching)
_WRITE_CHUNK = 5000  # rows per bulk INSERT call

T = TypeVar("T")
K = TypeVar("K", int, str)
Ts = TypeVarTuple("Ts")
# A row's target: ("id", company/contact id), ("name", folded name) or ("line", line number).
_Key = tuple[str, int | str]


@dataclass(frozen=True, slots=True)
class RowError:
    """A refused row (or header, line 1): `line` is the physical line the row starts on."""

    line: int
    message: str


@dataclass(slots=True)
class ImportReport:
    """Companies/contacts created and updated (0 and 0 when there are errors)."""

    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)


@dataclass(slots=True)
class _Row:
    """One data row after field checks: non-empty cleaned values, domains or e-mails, problems."""

    line: int
    values: dict[str, str]
    items: list[str]
    problems: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Plan:
    """What will be written for one company or contact: an update when `id` is set."""

    id: int | None
    values: dict[str, Any] = field(default_factory=dict)
    items: dict[str, None] = field(default_factory=dict)  # ordered set of domains / e-mails


class _Unreadable(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def import_csv(
    uow_factory: Callable[[], UnitOfWork],
    org_id: int,
    kind: str,
    handle: IO[str],
    *,
    progress: Callable[[int], object] | None = None,
) -> ImportReport:
    """Import `kind` ("companies" or "contacts") from a CSV text handle into one organization.

    Row problems never raise: they come back in the report and then nothing is written.
    `progress(n)` is called while reading with the number of file lines just consumed (one per
    row, more for quoted multi-line fields), so it adds up to the file's line count minus the
    header, which is the total the CLI gives its progress bar.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    report = ImportReport()
    rows: list[_Row] = []
    try:
        records = _records(handle, progress)
        first = next(records, None)
        header = _header(first[1] if first else None, kind)
        for line, cells in records:
            if not any(cell.strip() for cell in cells):
                continue  # blank lines and rows of empty cells (spreadsheet exports) say nothing
            rows.append(_clean_row(kind, header, line, cells))
    except _Unreadable as unreadable:
        report.errors.append(RowError(unreadable.line, unreadable.message))
        if unreadable.line == 1:
            return report

    # Matching and writing share one unit of work, so what was checked is what gets written.
    with uow_factory() as uow:
        if kind == "companies":
            plans = _plan_companies(uow.session, org_id, rows)
        else:
            plans = _plan_contacts(uow.session, org_id, rows)
        report.errors.extend(
            RowError(row.line, "; ".join(row.problems)) for row in rows if row.problems
        )
        if report.errors:
            report.errors.sort(key=lambda error: error.line)
            return report
        report.created = sum(1 for plan in plans if plan.id is None)
        report.updated = len(plans) - report.created
        if kind == "companies":
            _write_companies(uow.session, org_id, plans)
        else:
            _write_contacts(uow.session, org_id, plans)
        uow.commit()
    return report


# --- reading -------------------------------------------------------------------------------


def _records(
    handle: IO[str], progress: Callable[[int], object] | None
) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, cells) per CSV record; raises _Unreadable on bad quoting/encoding."""
    reader = csv.reader(handle, strict=True)  # strict: `"a"b` is an error, not a guess
    consumed = reported = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise _Unreadable(
                consumed + 1, f"cannot read the CSV from here on ({error}): check the quotes"
            ) from None
        except UnicodeDecodeError:
            raise _Unreadable(
                consumed + 1, "the file is not UTF-8 (near this line): save it as UTF-8 CSV"
            ) from None
        line, consumed = consumed + 1, reader.line_num
        if line == 1:
            reported = consumed  # the header is not counted
        elif progress is not None and consumed - reported >= _PROGRESS_EVERY:
            progress(consumed - reported)
            reported = consumed
        yield line, cells
    if progress is not None and consumed > reported:
        progress(consumed - reported)


def _header(cells: list[str] | None, kind: str) -> list[str]:
    if cells is None:
        raise _Unreadable(1, "the file is empty: the first line must name the columns")
    if not any(cell.strip() for cell in cells):
        raise _Unreadable(1, "the first line is blank: it must name the columns")
    # A BOM survives when the caller did not open the file as utf-8-sig.
    names = [cell.strip().lower() for cell in [cells[0].lstrip("\ufeff"), *cells[1:]]]
    known = COMPANY_COLUMNS if kind == "companies" else CONTACT_COLUMNS
    problems: list[str] = []
    unknown = [
        name or f"(column {i} has no name)" for i, name in enumerate(names, 1) if name not in known
    ]
    if unknown:
        problems.append(f"unknown column(s): {', '.join(unknown)} (known: {', '.join(known)})")
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        problems.append(f"column(s) named twice: {', '.join(repeated)}")
    if kind == "companies" and "name" not in names:
        problems.append("missing column: name")
    if kind == "contacts" and not {"first_name", "last_name", "emails"} & set(names):
        problems.append("missing column: need first_name, last_name or emails")
    if problems:
        raise _Unreadable(1, "; ".join(problems))
    return names


def _clean_row(kind: str, header: list[str], line: int, cells: list[str]) -> _Row:
    if len(cells) != len(header):
        row = _Row(line, {}, [])
        row.problems.append(f"{len(cells)} values but the header has {len(header)} columns")
        return row
    raw = dict(zip(header, cells, strict=True))
    row = _clean_company(line, raw) if kind == "companies" else _clean_contact(line, raw)
    if any("\x00" in cell for cell in cells):
        row.problems.append("contains a NUL character")  # PostgreSQL refuses it in text
    return row


def _check_lengths(row: _Row, limits: dict[str, int]) -> None:
    for name, limit in limits.items():
        if len(row.values.get(name, "")) > limit:
            row.problems.append(f"{name} is longer than {limit} characters")


def _split(cell: str) -> list[str]:
    return [part for part in _LIST_SEPARATORS.split(cell) if part]


def _clean_company(line: int, raw: dict[str, str]) -> _Row:
    values = {name: raw.get(name, "").strip() for name in COMPANY_LIMITS}
    values["name"] = " ".join(values["name"].split())  # as create_company stores it
    row = _Row(line, {k: v for k, v in values.items() if v}, [])
    if not values["name"]:
        row.problems.append("name is empty")
    _check_lengths(row, COMPANY_LIMITS)
    domains = list(dict.fromkeys(normalize_domain(d) for d in _split(raw.get("domains", ""))))
    bad = [d for d in domains if len(d) > MAX_DOMAIN_LENGTH or not is_valid_domain(d)]
    if bad:
        row.problems.append(f"not a domain: {', '.join(bad)}")
    if len(domains) > MAX_DOMAINS:
        row.problems.append(f"more than {MAX_DOMAINS} domains")
    row.items = [d for d in domains if d not in bad]
    return row


def _clean_contact(line: int, raw: dict[str, str]) -> _Row:
    # Names, title and phone are collapsed to single spaces, as services.contacts stores them.
    values = {name: " ".join(raw.get(name, "").split()) for name in CONTACT_LIMITS}
    values["company"] = raw.get("company", "").strip()
    row = _Row(line, {k: v for k, v in values.items() if v}, [])
    _check_lengths(row, CONTACT_LIMITS)
    emails = list(dict.fromkeys(normalize_email(e) for e in _split(raw.get("emails", ""))))
    bad = [e for e in emails if len(e) > MAX_EMAIL_LENGTH or not is_valid_email(e)]
    if bad:
        row.problems.append(f"not an e-mail address: {', '.join(bad)}")
    if len(emails) > MAX_EMAILS:
        row.problems.append(f"more than {MAX_EMAILS} e-mail addresses")
    row.items = [e for e in emails if e not in bad]
    if not (values["first_name"] or values["last_name"] or emails):
        row.problems.append("a contact needs a name or an e-mail address")
    return row


# --- matching ------------------------------------------------------------------------------


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _column_length(column: Any) -> int:
    return int(column.type.length)


_COMPANY_SORT = _column_length(Company.sort_name)
_CONTACT_SORT = _column_length(Contact.sort_name)


def _sort_key(text: str, length: int = _COMPANY_SORT) -> str:
    """fold(text) cut to the sort_name column's size, so it compares equal to what is stored."""
    return fold(text)[:length]


def _matching(
    session: Session, stmt: Select[K, *Ts], column: Any, keys: Collection[K]
) -> list[Row[K, *Ts]]:
    """Rows of `stmt` (limited to one organization, `column` first) whose `column` is in `keys`.

    Few keys: IN lists on the index. Many: one pass over the organization's rows, filtered
    here. PostgreSQL's statistics are stale right after a big import, and then every IN list
    is a full scan, so 200 of them for a 100,000-row file would take minutes.
    """
    if len(keys) > _SCAN_ABOVE:
        return [row for row in session.execute(stmt) if row[0] in keys]
    found: list[Row[K, *Ts]] = []
    for chunk in _chunks(sorted(keys), _LOOKUP_CHUNK):
        found.extend(session.execute(stmt.where(column.in_(chunk))))
    return found


def _domain_owners(session: Session, org_id: int, domains: Iterable[str]) -> dict[str, int]:
    stmt = select(CompanyDomain.domain, CompanyDomain.company_id).where(
        CompanyDomain.org_id == org_id
    )
    rows = _matching(session, stmt, CompanyDomain.domain, set(domains))
    return dict(rows)


def _companies_by_sort_name(
    session: Session, org_id: int, sort_names: Iterable[str]
) -> dict[str, list[int]]:
    stmt = select(Company.sort_name, Company.id).where(Company.org_id == org_id)
    found: dict[str, list[int]] = defaultdict(list)
    rows = _matching(session, stmt, Company.sort_name, {s for s in sort_names if s})
    for sort_name, company_id in sorted(rows, key=lambda row: row[1]):
        found[sort_name].append(company_id)
    return found


def _claim(
    row: _Row, key: _Key, claimed: dict[str, tuple[_Key, int]], what: str, owner: str
) -> None:
    """A domain/e-mail may repeat in the file only on rows that end up on the same record."""
    for item in row.items:
        earlier = claimed.setdefault(item, (key, row.line))
        if earlier[0] != key:
            row.problems.append(f"{what} {item} is also on line {earlier[1]}, for another {owner}")


def _plan_companies(session: Session, org_id: int, rows: list[_Row]) -> list[_Plan]:
    owners = _domain_owners(session, org_id, (d for row in rows for d in row.items))
    sort_names = {row.line: _sort_key(row.values.get("name", "")) for row in rows}
    by_name = _companies_by_sort_name(session, org_id, sort_names.values())
    plans: dict[_Key, _Plan] = {}
    claimed: dict[str, tuple[_Key, int]] = {}
    for row in rows:
        existing = sorted({owners[d] for d in row.items if d in owners})
        sort_name = sort_names[row.line]
        key: _Key
        by_id: int | None = None  # the company the name matches, when that decides
        if len(existing) > 1:
            taken = ", ".join(f"{d} (company {owners[d]})" for d in row.items if d in owners)
            row.problems.append(f"domains belong to different companies: {taken}")
            continue
        if existing:
            key = ("id", existing[0])  # a known domain wins over the name
        elif len(by_name.get(sort_name, ())) == 1:
            by_id = by_name[sort_name][0]
            key = ("id", by_id)
        elif sort_name:
            # Rows naming the same new company are one company, as row-by-row upserts would be.
            key = ("name", sort_name)
        else:
            key = ("line", row.line)
        _claim(row, key, claimed, "domain", "company")
        if row.problems:
            continue
        plan = plans.setdefault(key, _Plan(existing[0] if existing else by_id))
        plan.values.update(row.values, sort_name=sort_name)
        plan.items.update(dict.fromkeys(d for d in row.items if d not in owners))
    return list(plans.values())


def _resolve_companies(session: Session, org_id: int, refs: set[str]) -> dict[str, int | str]:
    """Each `company` cell -> a company id of this organization, or why it cannot be one."""
    ids = {int(ref) for ref in refs if ref.isascii() and ref.isdigit() and len(ref) <= 18}
    stmt = select(Company.id).where(Company.org_id == org_id)
    known_ids = {row[0] for row in _matching(session, stmt, Company.id, ids)}
    sort_keys = {ref: _sort_key(ref) for ref in refs}
    by_name = _companies_by_sort_name(session, org_id, sort_keys.values())
    domains = {ref: normalize_domain(ref) for ref in refs if is_valid_domain(ref)}
    by_domain = _domain_owners(session, org_id, domains.values())
    resolved: dict[str, int | str] = {}
    for ref in refs:
        if ref.isascii() and ref.isdigit() and len(ref) <= 18 and int(ref) in known_ids:
            resolved[ref] = int(ref)
            continue
        candidates = set(by_name.get(sort_keys[ref], ()))
        if ref in domains and domains[ref] in by_domain:
            candidates.add(by_domain[domains[ref]])
        if len(candidates) == 1:
            resolved[ref] = candidates.pop()
        elif candidates:
            listed = ", ".join(str(c) for c in sorted(candidates))
            resolved[ref] = f"company {ref!r} is ambiguous (companies {listed}): use the id"
        else:
            resolved[ref] = f"unknown company {ref!r}"
    return resolved


def _plan_contacts(session: Session, org_id: int, rows: list[_Row]) -> list[_Plan]:
    stmt = select(ContactEmail.email, ContactEmail.contact_id).where(ContactEmail.org_id == org_id)
    emails = {e for row in rows for e in row.items}
    owners = dict(_matching(session, stmt, ContactEmail.email, emails))
    refs = {row.values["company"] for row in rows if "company" in row.values}
    companies = _resolve_companies(session, org_id, refs) if refs else {}
    plans: dict[_Key, _Plan] = {}
    claimed: dict[str, tuple[_Key, int]] = {}
    for row in rows:
        existing = sorted({owners[e] for e in row.items if e in owners})
        if len(existing) > 1:
            taken = ", ".join(f"{e} (contact {owners[e]})" for e in row.items if e in owners)
            row.problems.append(f"e-mail addresses belong to different contacts: {taken}")
            continue
        # Unlike companies, two new rows are two people even with the same name.
        key: _Key = ("id", existing[0]) if existing else ("line", row.line)
        _claim(row, key, claimed, "e-mail", "contact")
        values: dict[str, Any] = {k: v for k, v in row.values.items() if k != "company"}
        if "company" in row.values:
            company = companies[row.values["company"]]
            if isinstance(company, str):
                row.problems.append(company)
            values["company_id"] = company
        if row.problems:
            continue
        plan = plans.setdefault(key, _Plan(existing[0] if existing else None))
        plan.values.update(values)
        plan.items.update(dict.fromkeys(e for e in row.items if e not in owners))
    return list(plans.values())


# --- writing -------------------------------------------------------------------------------
# Core statements on the tables: the ORM's bulk paths cost about as much again in per-row
# bookkeeping, and there are no ORM events on these models to honour. Company search is to be
# kept by database triggers on the companies table (services.search.index_company is a no-op),
# so plain INSERT/UPDATE with the right sort_name keep it current.

_COMPANIES = cast(Table, Company.__table__)
_COMPANY_DOMAINS = cast(Table, CompanyDomain.__table__)
_CONTACTS = cast(Table, Contact.__table__)
_CONTACT_EMAILS = cast(Table, ContactEmail.__table__)


def _insert_returning_ids(session: Session, table: Table, rows: list[dict[str, Any]]) -> list[int]:
    """Bulk INSERT, returning the new ids in the order of `rows`."""
    if session.connection().dialect.name != "sqlite":
        # PostgreSQL: batched multi-row INSERT ... RETURNING, matched to rows by SQLAlchemy.
        stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
        return list(session.scalars(stmt, rows))
    # SQLite cannot tell which RETURNING row came from which VALUES row, so SQLAlchemy would
    # send one INSERT per row. But SQLite has one writer at a time and hands out ever larger
    # rowids, so after a plain executemany the new rows are those above the old maximum id,
    # in insertion order.
    before = session.scalar(select(func.max(table.c.id))) or 0
    session.execute(insert(table), rows)
    ids = list(session.scalars(select(table.c.id).where(table.c.id > before).order_by(table.c.id)))
    if len(ids) != len(rows):
        raise RuntimeError(f"expected {len(rows)} new rows in {table.name}, found {len(ids)}")
    return ids


def _insert(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    for batch in _chunks(rows, _WRITE_CHUNK):
        session.execute(insert(table), list(batch))


def _update_by_id(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """UPDATE ... WHERE id = :id as executemany: one statement per set of columns given."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row))].append(row)
    for columns, params in groups.items():
        # Bind names differ from the column names, which SQLAlchemy reserves for SET.
        stmt = (
            update(table)
            .where(table.c.id == bindparam("_id", type_=table.c.id.type))
            .values({c: bindparam(f"_{c}", type_=table.c[c].type) for c in columns if c != "id"})
        )
        for batch in _chunks(params, _WRITE_CHUNK):
            session.execute(stmt, [{f"_{k}": v for k, v in row.items()} for row in batch])


def _write_companies(session: Session, org_id: int, plans: list[_Plan]) -> None:
    now = utcnow()
    # Taken before the INSERTs below give the new plans their ids.
    updates = [
        {"id": plan.id, **plan.values, "updated_at": now} for plan in plans if plan.id is not None
    ]
    new = [plan for plan in plans if plan.id is None]
    for chunk in _chunks(new, _WRITE_CHUNK):
        # Every row carries every column so the INSERT stays one batched statement.
        rows = [
            {
                "org_id": org_id,
                **dict.fromkeys(COMPANY_LIMITS, ""),
                **plan.values,
                "created_at": now,
                "updated_at": now,
            }
            for plan in chunk
        ]
        for plan, company_id in zip(
            chunk, _insert_returning_ids(session, _COMPANIES, rows), strict=True
        ):
            plan.id = company_id
    # Only the columns the file filled in change.
    _update_by_id(session, _COMPANIES, updates)
    domains = [
        {"org_id": org_id, "company_id": plan.id, "domain": domain}
        for plan in plans
        for domain in plan.items
    ]
    _insert(session, _COMPANY_DOMAINS, domains)


def _contact_sort_name(first_name: str, last_name: str, first_email: str) -> str:
    """As services.contacts computes it: folded "last first", else the first e-mail address."""
    return _sort_key(f"{last_name} {first_name}", _CONTACT_SORT) or first_email[:_CONTACT_SORT]


def _write_contacts(session: Session, org_id: int, plans: list[_Plan]) -> None:
    now = utcnow()
    emails: list[dict[str, Any]] = []
    changed = {plan.id: plan for plan in plans if plan.id is not None}  # before INSERTs set ids
    new = [plan for plan in plans if plan.id is None]
    for chunk in _chunks(new, _WRITE_CHUNK):
        rows = []
        for plan in chunk:
            values = {**dict.fromkeys(CONTACT_LIMITS, ""), "company_id": None, **plan.values}
            primary = next(iter(plan.items), "")
            sort_name = _contact_sort_name(values["first_name"], values["last_name"], primary)
            rows.append(
                {
                    "org_id": org_id,
                    **values,
                    "sort_name": sort_name,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        for plan, contact_id in zip(
            chunk, _insert_returning_ids(session, _CONTACTS, rows), strict=True
        ):
            plan.id = contact_id
            emails.extend(
                {"org_id": org_id, "contact_id": contact_id, "email": email, "position": position}
                for position, email in enumerate(plan.items)
            )
    if changed:
        emails.extend(_update_contacts(session, org_id, changed, now))
    _insert(session, _CONTACT_EMAILS, emails)


def _update_contacts(
    session: Session, org_id: int, changed: dict[int, _Plan], now: dt.datetime
) -> list[dict[str, Any]]:
    """Update existing contacts; returns the e-mail rows to add, after their current ones."""
    # sort_name depends on names the file may leave out, and added e-mails go after the
    # current ones: read both for the contacts being updated.
    names: dict[int, tuple[str, str]] = {}
    first_email: dict[int, str] = {}
    next_position: dict[int, int] = defaultdict(int)
    people = select(Contact.id, Contact.first_name, Contact.last_name).where(
        Contact.org_id == org_id
    )
    for contact_id, first, last in _matching(session, people, Contact.id, changed.keys()):
        names[contact_id] = (first, last)
    current = select(ContactEmail.contact_id, ContactEmail.email, ContactEmail.position).where(
        ContactEmail.org_id == org_id
    )
    rows = _matching(session, current, ContactEmail.contact_id, changed.keys())
    for contact_id, email, position in sorted(rows, key=lambda row: (row[0], row[2])):
        first_email.setdefault(contact_id, email)
        next_position[contact_id] = max(next_position[contact_id], position + 1)
    updates: list[dict[str, Any]] = []
    emails: list[dict[str, Any]] = []
    for contact_id, plan in changed.items():
        first = plan.values.get("first_name", names[contact_id][0])
        last = plan.values.get("last_name", names[contact_id][1])
        primary = first_email.get(contact_id) or next(iter(plan.items), "")
        sort_name = _contact_sort_name(first, last, primary)
        updates.append({"id": contact_id, **plan.values, "sort_name": sort_name, "updated_at": now})
        emails.extend(
            {"org_id": org_id, "contact_id": contact_id, "email": email, "position": position}
            for position, email in enumerate(plan.items, next_position[contact_id])
        )
    _update_by_id(session, _CONTACTS, updates)
    return emails
