"""Company search: word-prefix matching, ranking, org scoping and index upkeep on both backends."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, event, insert, inspect, text

import bootstrap
import wsgi
from services import companies, search
from services.db import make_engine, make_session_factory
from services.tables import Company, Organization
from services.text import fold
from services.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tests.conftest import TEST_DATABASE_URL, Tenant
from tests.databases import create_postgres_database


def create(uow_factory: UnitOfWorkFactory, org_id: int, *names: str) -> list[int]:
    with uow_factory() as uow:
        ids = [companies.create_company(uow, org_id, name=name).id for name in names]
        uow.commit()
    return ids


def bulk_create(uow_factory: UnitOfWorkFactory, org_id: int, names: list[str]) -> list[int]:
    """Plain SQL INSERTs, as the importer writes them: no service call touches the index."""
    now = dt.datetime.now(dt.UTC)
    rows = [
        {"org_id": org_id, "name": n, "sort_name": fold(n), "website": "", "phone": "",
         "city": "", "country": "", "notes": "", "created_at": now, "updated_at": now}
        for n in names
    ]  # fmt: skip
    with uow_factory() as uow:
        uow.session.execute(insert(Company), rows)
        ids = uow.session.scalars(
            text("SELECT id FROM companies WHERE org_id = :org ORDER BY id"), {"org": org_id}
        ).all()
        uow.commit()
    return list(ids[-len(names) :])


def names(uow_factory: UnitOfWorkFactory, org_id: int, query: str, limit: int = 20) -> list[str]:
    with uow_factory(read_only=True) as uow:
        return [c.name for c in companies.search_companies(uow, org_id, query, limit)]


def ids(uow_factory: UnitOfWorkFactory, org_id: int, query: str, limit: int = 20) -> list[int]:
    with uow_factory(read_only=True) as uow:
        return search.search_company_ids(uow.session, org_id, query, limit)


def test_a_prefix_finds_word_starts_first_word_first(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    create(uow_factory, tenant.org_id, "Contoso Ltd", "Acme Contractors", "Fabrikam Inc.", "Ikon")
    assert names(uow_factory, tenant.org_id, "cont") == ["Contoso Ltd", "Acme Contractors"]
    assert names(uow_factory, tenant.org_id, "FAB") == ["Fabrikam Inc."]
    assert names(uow_factory, tenant.org_id, "i") == ["Ikon", "Fabrikam Inc."]


def test_two_words_match_in_any_order(uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
    create(uow_factory, tenant.org_id, "Contoso Ltd", "Contoso Inc.", "Northwind Ltd")
    assert names(uow_factory, tenant.org_id, "ltd cont") == ["Contoso Ltd"]
    assert names(uow_factory, tenant.org_id, "cont ltd") == ["Contoso Ltd"]
    assert names(uow_factory, tenant.org_id, "contoso l") == ["Contoso Ltd"]
    assert names(uow_factory, tenant.org_id, "contoso gmbh") == []


def test_accents_and_case_are_ignored_both_ways(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    create(uow_factory, tenant.org_id, "Café Ærø Bryggeri", "cafe au lait", "Zürich Straße AG")
    assert names(uow_factory, tenant.org_id, "cafe") == ["cafe au lait", "Café Ærø Bryggeri"]
    assert names(uow_factory, tenant.org_id, "CAFÉ") == ["cafe au lait", "Café Ærø Bryggeri"]
    assert names(uow_factory, tenant.org_id, "aero") == ["Café Ærø Bryggeri"]
    assert names(uow_factory, tenant.org_id, "ÆRØ BRYG") == ["Café Ærø Bryggeri"]
    assert names(uow_factory, tenant.org_id, "zur strasse") == ["Zürich Straße AG"]
    assert names(uow_factory, tenant.org_id, "ZÜRICH") == ["Zürich Straße AG"]


def test_ranking_exact_then_starts_with_then_first_word_then_other(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    create(
        uow_factory,
        tenant.org_id,
        "Consulting Nordica",  # tier 3
        "Nordic Bygg Consulting",  # tier 2: first word starts with "nord"
        "Bygg Nord Con",  # tier 3, shorter than "Consulting Nordica"
        "Nord Consulting AS",  # tier 1: starts with "nord con"
        "Nord-Con",  # exact once folded
        "Nordic AS",  # no "con"
        "Norconsult",  # "nord" does not start a word
    )
    assert names(uow_factory, tenant.org_id, "nord con") == [
        "Nord-Con",
        "Nord Consulting AS",
        "Nordic Bygg Consulting",
        "Bygg Nord Con",
        "Consulting Nordica",
    ]
    # Tier 2 repeats tier 1's two names: with room for four, it does not make tier 3 needless.
    assert names(uow_factory, tenant.org_id, "nord con", limit=4) == [
        "Nord-Con",
        "Nord Consulting AS",
        "Nordic Bygg Consulting",
        "Bygg Nord Con",
    ]


def test_ties_go_to_the_shorter_name_then_alphabetical_then_id(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    first, second = create(uow_factory, tenant.org_id, "Alps Group", "Alps Group")
    create(uow_factory, tenant.org_id, "Alpha Beta", "Alpine AS", "Alps", "Alpaca Co", "Ålpe")
    assert names(uow_factory, tenant.org_id, "alp") == [
        "Ålpe",
        "Alps",
        "Alpaca Co",
        "Alpine AS",
        "Alpha Beta",
        "Alps Group",
        "Alps Group",
    ]
    assert ids(uow_factory, tenant.org_id, "alps g") == [first, second]


def test_an_exact_match_comes_first_even_among_shorter_word_matches(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    create(uow_factory, tenant.org_id, "AS Bygg", "Bygg AS", "As", "Aspen AS")
    assert names(uow_factory, tenant.org_id, "as") == ["As", "AS Bygg", "Aspen AS", "Bygg AS"]


def test_the_middle_of_a_word_does_not_match(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    create(uow_factory, tenant.org_id, "Contoso Ltd", "Fabrikam Inc.")
    assert names(uow_factory, tenant.org_id, "toso") == []
    assert names(uow_factory, tenant.org_id, "ntoso ltd") == []
    assert names(uow_factory, tenant.org_id, "brikam") == []


def test_other_organizations_companies_never_appear(
    uow_factory: UnitOfWorkFactory, tenant: Tenant, other_tenant: Tenant
) -> None:
    (ours,) = create(uow_factory, tenant.org_id, "Contoso Ltd")
    (theirs,) = create(uow_factory, other_tenant.org_id, "Contoso Ltd")
    create(uow_factory, other_tenant.org_id, "Contoso Consulting", "Acme Contoso")
    assert ids(uow_factory, tenant.org_id, "cont") == [ours]
    assert ids(uow_factory, tenant.org_id, "contoso ltd") == [ours]
    assert ids(uow_factory, other_tenant.org_id, "contoso ltd") == [theirs]
    assert names(uow_factory, tenant.org_id, "acme") == []


def test_a_rename_is_searchable_under_the_new_name_only(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    (company_id,) = create(uow_factory, tenant.org_id, "Initech")
    with uow_factory() as uow:
        companies.update_company(uow, tenant.org_id, company_id, {"name": "Globodyne Corp"})
        uow.commit()
    assert ids(uow_factory, tenant.org_id, "init") == []
    assert ids(uow_factory, tenant.org_id, "globo") == [company_id]
    assert ids(uow_factory, tenant.org_id, "corp") == [company_id]


def test_a_deleted_company_is_not_found(uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
    gone, kept = create(uow_factory, tenant.org_id, "Initech", "Initrode")
    with uow_factory() as uow:
        companies.delete_company(uow, tenant.org_id, gone)
        uow.commit()
    assert ids(uow_factory, tenant.org_id, "init") == [kept]


def test_the_limit_is_respected_and_capped_at_100(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    made = bulk_create(uow_factory, tenant.org_id, [f"Acme {n}" for n in range(120)])
    # "acme 0".."acme 9" are the shortest, then "acme 10".."acme 99", then the 100s.
    assert names(uow_factory, tenant.org_id, "acme", 5) == [f"Acme {n}" for n in range(5)]
    found = ids(uow_factory, tenant.org_id, "acme", 500)
    assert found == made[:100]
    assert ids(uow_factory, tenant.org_id, "acme", 0) == []


@pytest.mark.parametrize("query", ["", "   ", "!!!", " - / ", "_"])
def test_a_query_without_words_finds_nothing(
    uow_factory: UnitOfWorkFactory, tenant: Tenant, query: str
) -> None:
    create(uow_factory, tenant.org_id, "Contoso Ltd", "!!!")
    assert names(uow_factory, tenant.org_id, query) == []


def test_rows_written_by_plain_sql_are_indexed(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    first, second = bulk_create(uow_factory, tenant.org_id, ["Wayne Enterprises", "Stark Wayne"])
    assert ids(uow_factory, tenant.org_id, "wayne") == [first, second]
    with uow_factory() as uow:
        uow.session.execute(
            text("UPDATE companies SET name = 'Queen Ltd', sort_name = 'queen ltd' WHERE id = :id"),
            {"id": first},
        )
        uow.session.execute(text("DELETE FROM companies WHERE id = :id"), {"id": second})
        uow.commit()
    assert ids(uow_factory, tenant.org_id, "wayne") == []
    assert ids(uow_factory, tenant.org_id, "que") == [first]


# Words with shared prefixes, accents and a frequent suffix, for the comparison with a plain
# Python reading of the rules.
_WORDS = [
    "Nord", "Nordic", "Nordica", "Norsk", "Café", "Cafè", "Ærø", "Aero", "Contoso", "Con",
    "Consulting", "Cons", "Bygg", "Byggmester", "AS", "ASA", "Ltd", "Group", "Ål", "A",
]  # fmt: skip


def _expected(rows: dict[int, str], query: str, limit: int) -> list[int]:
    words = fold(query).split()
    if not words or limit <= 0:
        return []
    whole = " ".join(words)
    hits = []
    for company_id, sort_name in rows.items():
        name_words = sort_name.split()
        if all(any(n.startswith(w) for n in name_words) for w in words):
            tier = 0 if sort_name.startswith(whole) else 1 if sort_name.startswith(words[0]) else 2
            hits.append((tier, len(sort_name), sort_name, company_id))
    return [hit[-1] for hit in sorted(hits)[: min(limit, 100)]]


@pytest.mark.parametrize("small_thresholds", [False, True], ids=["default", "small-threshold"])
def test_results_follow_the_rules_for_random_names_and_queries(
    uow_factory: UnitOfWorkFactory,
    tenant: Tenant,
    other_tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    small_thresholds: bool,
) -> None:
    if small_thresholds:
        # The paths of big organizations: on SQLite tier 2 from FTS5 rather than a range scan,
        # on PostgreSQL every word "frequent", so counted twice before picking one to drive.
        monkeypatch.setattr(search, "_RANGE_SCAN", 3)
        monkeypatch.setattr(search, "_PG_COUNT_CAP", 2)
    rng = random.Random(5)
    made = [" ".join(rng.choices(_WORDS, k=rng.randint(1, 4))) for _ in range(300)]
    made_ids = bulk_create(uow_factory, tenant.org_id, made)
    bulk_create(uow_factory, other_tenant.org_id, made[:100])
    rows = {company_id: fold(name) for company_id, name in zip(made_ids, made, strict=True)}
    queries = [
        "a", "n", "no", "nord", "NORDIC", "café", "aer", "cons", "å", "bygg", "zzz", "con con",
        "as nord", "nord as", "ltd group", "group ltd b", "c a", "nordica c",
    ]  # fmt: skip
    for _ in range(40):
        sample = rng.choice(made).split()
        picked = rng.sample(sample, min(len(sample), rng.randint(1, 2)))
        queries.append(" ".join(w[: rng.randint(1, len(w))] for w in picked))
    for query in queries:
        for limit in (3, 20):
            assert ids(uow_factory, tenant.org_id, query, limit) == _expected(rows, query, limit), (
                query,
                limit,
            )


def _analyzed_search(
    container: bootstrap.Container, org_id: int, query: str
) -> tuple[list[int], list[str]]:
    """ANALYZE the word table, search; the ids found and the driving word of tiers 2 and 3."""
    with container.engine.begin() as connection:
        connection.execute(text("ANALYZE company_search_words"))
    drivers: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        drivers.extend(parameters.get(key) for key in ("t2_low", "t3_low") if key in parameters)

    reads = container.read_engine or container.engine  # where read-only units run
    event.listen(reads, "before_cursor_execute", record)
    try:
        found = ids(container.uow, org_id, query)
    finally:
        event.remove(reads, "before_cursor_execute", record)
    return found, drivers


def test_postgres_drives_frequent_words_by_the_rarer_one(
    container: bootstrap.Container, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every word of a tier has more rows than are counted, estimates from the column
    statistics pick the driving word: with only the capped counts "co" and "cl" would tie and
    "co" would drive."""
    if container.engine.dialect.name != "postgresql":
        pytest.skip("company_search_words and its statistics are PostgreSQL's")
    monkeypatch.setattr(search, "_PG_COUNT_CAP", 5)
    monkeypatch.setattr(search, "_word_stats", {})  # read this database's statistics afresh
    made = [f"{word} {n}" for n in range(60) for word in ("Cobalt", "Cosmo", "Coral", "Comet")]
    # 40 "cl" rows: more than 5 x 5, what counting further used to stop at.
    made += [f"Clover {n}" for n in range(40)] + ["Cobalt Clover", "Clear Coral"]
    made_ids = bulk_create(container.uow, tenant.org_id, made)
    found, drivers = _analyzed_search(container, tenant.org_id, "co cl")
    assert drivers == ["cl", "cl"]  # tier 2 (after "^co") and tier 3 (after "co")
    # Tier 2 (starts with a "co" word) before tier 3.
    assert found == [made_ids[made.index("Cobalt Clover")], made_ids[made.index("Clear Coral")]]


def _migrate(config: Any, revision: str, *, down: bool = False) -> None:
    (command.downgrade if down else command.upgrade)(config, revision)


def _search_objects(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        inspector = inspect(connection)
        found = {n for n in inspector.get_table_names() if "search" in n}
        if "companies" in inspector.get_table_names():
            found |= {i["name"] or "" for i in inspector.get_indexes("companies")}
        if engine.dialect.name == "sqlite":
            found |= set(
                connection.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                ).scalars()
            )
    return {name for name in found if "search" in name}


def test_migration_0002_goes_down_and_up_again(tmp_path: Path, worker_id: str) -> None:
    if TEST_DATABASE_URL:
        url = create_postgres_database(TEST_DATABASE_URL, f"crm_search_migrations_{worker_id}")
    else:
        url = f"sqlite:///{tmp_path / 'search.db'}"
    config = wsgi.alembic_config(url)
    engine = make_engine(url)
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def add(name: str) -> None:
        with engine.begin() as connection:
            org_id = connection.execute(
                insert(Organization.__table__).returning(Organization.__table__.c.id),
                {"name": "Org", "own_domains": [], "created_at": now, "updated_at": now},
            ).scalar_one()
            connection.execute(
                insert(Company.__table__),
                [{"org_id": org_id, "name": name, "sort_name": fold(name), "website": "",
                  "phone": "", "city": "", "country": "", "notes": "", "created_at": now,
                  "updated_at": now}],
            )  # fmt: skip

    def found(query: str) -> list[str]:
        with UnitOfWork(make_session_factory(engine), read_only=True) as uow:
            org_ids = uow.session.scalars(text("SELECT DISTINCT org_id FROM companies")).all()
            return sorted(
                c.name for org in org_ids for c in companies.search_companies(uow, org, query)
            )

    try:
        _migrate(config, "0001")
        add("Before Search Ltd")  # written before 0002 exists: the upgrade indexes it
        _migrate(config, "0002")
        assert _search_objects(engine)
        assert found("before") == ["Before Search Ltd"]

        _migrate(config, "0001", down=True)
        assert _search_objects(engine) == set()
        add("Without Search AS")  # no trigger is left behind to trip over

        _migrate(config, "base", down=True)
        with engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}

        _migrate(config, "head")
        add("After Search GmbH")
        assert found("search") == ["After Search GmbH"]
    finally:
        engine.dispose()


def test_postgres_drives_by_the_word_with_fewer_distinct_words(
    container: bootstrap.Container, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream reads every distinct indexed word starting with its driving word, so a word
    with many rows but one spelling ("as") drives before a prefix with fewer rows spread over
    many words ("tr..."), which the row counts alone would pick."""
    if container.engine.dialect.name != "postgresql":
        pytest.skip("company_search_words and its statistics are PostgreSQL's")
    monkeypatch.setattr(search, "_PG_COUNT_CAP", 5)
    monkeypatch.setattr(search, "_word_stats", {})
    letters = "abcdefghijklmnopqrstuvwxyz"
    made = [f"Firma {n} As" for n in range(300)]
    made += [f"Tr{letters[n // 26]}{letters[n % 26]}x Group" for n in range(200)]
    made += ["Astra Trygg", "Trust As"]
    made_ids = bulk_create(container.uow, tenant.org_id, made)
    found, drivers = _analyzed_search(container, tenant.org_id, "as tr")
    assert drivers == ["^as", "as"]
    # Tier 2 (a first word starting with "as") before tier 3.
    assert found == [made_ids[made.index("Astra Trygg")], made_ids[made.index("Trust As")]]
