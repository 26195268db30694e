"""Company search benchmark: search-as-you-type over a million generated companies in one org."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, text

from bench.common import Backend, Result, log, settle, summarize, time_ms
from services import companies, organizations
from services.text import fold

TARGET_MS = 20.0


def _words(text: str) -> list[str]:
    return text.split()


# Word lists for plausible names: brands, places and surnames (some accented), trades, and legal
# suffixes. Invented brand words from syllables give a large vocabulary with shared prefixes.
BRANDS = _words("""Contoso Fabrikam Northwind Adventure Tailspin Litware Proseware Woodgrove Wingtip
Lucerne Alpine Coho Humongous Margie Trey Wide Fourth Blue Yonder Nordic Nordica Norsk Nord
Polar Aurora Fjord Viking Atlas Apex Summit Pinnacle Vertex Zenith Horizon Meridian Pioneer
Frontier Beacon Harbor Anchor Compass Keystone Cornerstone Evergreen Redwood Oak Birch Pine
Granite Silver Golden Crystal Diamond Sapphire Emerald Phoenix Falcon Eagle Raven Wolf Bear
Lynx Orca Delta Sigma Omega Alpha Nova Stella Luna Sol Terra Aqua Ignis Ventus Café Crème
Élan Étoile Über Öko Ærø Øster Åsen Brücke Straße Señor Niño Açaí Fiançé Naïve Smörgås""")
PLACES = _words("""Oslo Bergen Trondheim Stavanger Tromsø Bodø Ålesund Drammen Göteborg Malmö
Uppsala Västerås Örebro Linköping Århus Aalborg Odense København Helsinki Tampere Turku Reykjavík
Zürich Genève Basel Bern Lausanne München Köln Düsseldorf Hamburg Berlin Frankfurt Stuttgart
Dresden Leipzig Nürnberg Wien Salzburg Graz Innsbruck Kraków Łódź Gdańsk Wrocław Poznań Praha
Brno Ostrava Lyon Marseille Toulouse Nice Nantes Lille Bordeaux Montréal Québec Sevilla Málaga
Córdoba Bogotá Medellín São Paulo Brasília Lisboa Porto Coimbra Milano Torino Napoli Firenze
London Manchester Leeds Bristol Dublin Cork Glasgow Edinburgh Boston Chicago Denver Austin
Seattle Portland Atlanta Houston Dallas Phoenix Toronto Vancouver Calgary Ottawa""")
SURNAMES = _words("""Müller Schröder Schäfer Köhler Weiß Böhm Jensen Hansen Johansen Larsen Andersen
Pedersen Nilsen Kristiansen Olsen Berg Haugen Dahl Lund Strand Bakke Moen Solberg Sæther Løken
Håland Ødegård Økland García Martínez López González Pérez Sánchez Núñez Jiménez Muñoz Dupont
Lefèvre Girard Bérubé Côté Gagné Lévesque Kovač Novák Dvořák Nowak Wiśniewski Wójcik Kowalski
Smith Johnson Brown Taylor Wilson Davies Evans Thomas Roberts Walker Wright Robinson Thompson
White Hughes Edwards Green Hall Wood Harris Martin Jackson Clarke Lewis Young Allen King""")
TRADES = _words("""Consulting Construction Contracting Engineering Energy Electric
Électricité Logistics Transport Shipping Marine Maritime Software Systems Solutions Services
Technologies Analytics Data Digital Media Design Architects Bryggeri Bakeri Café Restaurant Hotel
Property Properties Eiendom Invest Capital Finance Partners Advokatfirma Revisjon Regnskap Medical
Health Pharma Biotech Foods Fisheries Farms Agro Textiles Fashion Retail Trading Import Export
Industries Manufacturing Machinery Tools Steel Metal Plastics Chemicals Paper Printing Packaging
Security Telecom Networks Cloud Labs Studio Works Workshop Garage Auto Motors Bygg Rør Elektro
Maskin Transportes Construcciones Ingeniería Société Générale Bâtiment Hôtellerie Bäckerei
Brauerei Schreinerei Gärtnerei Fahrzeugbau Immobilien Versicherung Beratung""")
SUFFIXES = _words("""AS ASA AB ApS A/S Oy GmbH AG KG SA SAS SARL S.L. S.p.A. BV NV Ltd Ltd. Limited
Inc. LLC Corp. Co. Group Holding Holdings""")
_ONSETS = _words("b br c ch cr d dr f fl g gr h j k kr l m n p pr qu r s sk st t tr v w z")
_VOWELS = _words("a e i o u y ai ei ou ia io ä ö ü é å ø")
_CODAS = _words("n r l s x t k m nd rt st ck ll ss")


def _pseudo_words(rng: random.Random, count: int) -> list[str]:
    words: set[str] = set()
    while len(words) < count:
        syllables = rng.choice((2, 2, 3, 3, 4))
        word = "".join(
            rng.choice(_ONSETS)
            + rng.choice(_VOWELS)
            + (rng.choice(_CODAS) if rng.random() < 0.3 else "")
            for _ in range(syllables)
        )
        words.add(word.capitalize())
    return sorted(words)


def company_names(rng: random.Random, count: int) -> Iterator[str]:
    """Plausible company names, one to five words, with repeats as in real CRMs."""
    invented = _pseudo_words(rng, 20_000)
    brands = BRANDS + invented
    for _ in range(count):
        pattern = rng.random()
        if pattern < 0.25:
            words = [rng.choice(brands), rng.choice(TRADES), rng.choice(SUFFIXES)]
        elif pattern < 0.40:
            words = [rng.choice(PLACES), rng.choice(TRADES), rng.choice(SUFFIXES)]
        elif pattern < 0.52:
            words = [rng.choice(SURNAMES), "&", rng.choice(SURNAMES), rng.choice(SUFFIXES)]
        elif pattern < 0.64:
            words = [rng.choice(SURNAMES), rng.choice(TRADES)]
        elif pattern < 0.76:
            words = [rng.choice(brands), rng.choice(SUFFIXES)]
        elif pattern < 0.86:
            words = [rng.choice(invented)]
        elif pattern < 0.94:
            words = [rng.choice(invented), rng.choice(PLACES), rng.choice(TRADES)]
        else:
            words = ["The", rng.choice(brands), rng.choice(TRADES), "Company"]
        yield " ".join(words)


def three_letter_queries(rng: random.Random, names: list[str], count: int) -> list[str]:
    """First three letters of a random word of a random name, in random case."""
    queries: list[str] = []
    while len(queries) < count:
        word = rng.choice(rng.choice(names).split())
        if len(fold(word).replace(" ", "")) < 3 or not word[:3].isalpha():
            continue
        prefix = word[:3]
        queries.append(rng.choice((prefix, prefix.lower(), prefix.upper())))
    return queries


def two_word_queries(rng: random.Random, names: list[str], count: int) -> list[str]:
    """A whole word of a random name plus the start (2+ letters) of another word of it."""
    queries: list[str] = []
    while len(queries) < count:
        words = [w for w in fold(rng.choice(names)).split() if len(w) >= 2]
        if len(words) < 2:
            continue
        first, second = rng.sample(words, 2)
        queries.append(f"{first} {second[: rng.randint(2, len(second))]}")
    return queries


def _rows(org_id: int, names: list[str]) -> Iterator[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    for name in names:
        yield {
            "org_id": org_id,
            "name": name,
            "sort_name": fold(name),
            "website": "",
            "phone": "",
            "city": "",
            "country": "",
            "notes": "",
            "created_at": now,
            "updated_at": now,
        }


_COLUMNS = (
    "org_id", "name", "sort_name", "website", "phone", "city", "country", "notes",
    "created_at", "updated_at",
)  # fmt: skip


def bulk_insert(backend: Backend, org_id: int, names: list[str]) -> None:
    """Insert the rows create_company would write, the fast way for each backend."""
    engine = backend.container.engine
    if backend.is_postgres:
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                copy_sql = f"COPY companies ({', '.join(_COLUMNS)}) FROM STDIN"
                with cursor.copy(copy_sql) as copy:  # type: ignore[attr-defined]
                    for row in _rows(org_id, names):
                        copy.write_row([row[c] for c in _COLUMNS])
            raw.commit()
        finally:
            raw.close()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
            _prewarm(connection)
        return
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        connection.execute("PRAGMA cache_size = -1000000")  # FTS5 merges segments as it goes
        # FTS5 writes its pending terms out at every statement that fires the trigger and
        # whenever a rowid is lower than the one before; company_search's rowid starts with the
        # name length. Multi-row INSERTs of rows in length order index ~5x faster than one
        # INSERT per row in random order (a bulk importer can do the same).
        by_length = sorted(names, key=lambda name: len(fold(name)))
        chunk = 1000
        connection.execute("BEGIN IMMEDIATE")
        for start in range(0, len(by_length), chunk):
            rows = list(_rows(org_id, by_length[start : start + chunk]))
            values = ", ".join([f"({', '.join('?' for _ in _COLUMNS)})"] * len(rows))
            connection.execute(
                f"INSERT INTO companies ({', '.join(_COLUMNS)}) VALUES {values}",  # noqa: S608
                [_sqlite_value(row[c]) for row in rows for c in _COLUMNS],
            )
        connection.execute("COMMIT")
        # Merging FTS5's segments into one b-tree makes queries read less.
        connection.execute("INSERT INTO company_search (company_search) VALUES ('optimize')")
        connection.execute("ANALYZE")
        connection.execute("PRAGMA cache_size = -2000")
    finally:
        raw.close()


# What a search reads: the word index and its table, the name index, the companies.
_SEARCH_RELATIONS = (
    "company_search_words", "pk_company_search_words", "ix_companies_search_length",
    "companies", "pk_companies",
)  # fmt: skip


def _prewarm(connection: Connection) -> None:
    """Load the search relations into PostgreSQL's buffers, where a server that answers
    searches all day keeps them; bulk loading leaves them on disk (COPY and VACUUM go through a
    small ring of buffers). pg_prewarm ships with PostgreSQL (contrib)."""
    connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_prewarm"))
    for relation in _SEARCH_RELATIONS:
        connection.execute(
            text("SELECT pg_prewarm(CAST(:relation AS regclass))"), {"relation": relation}
        )


def _sqlite_value(value: Any) -> Any:
    """What services.db.UtcDateTime stores on SQLite: naive UTC text."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _create_org(backend: Backend, name: str, domain: str) -> int:
    with backend.container.uow() as uow:
        org = organizations.create_organization(uow, name=name, own_domains=[domain])
        uow.commit()
        return org.id


def _measure(backend: Backend, org_id: int, queries: list[str]) -> list[float]:
    factory = backend.container.uow

    def search(query: str) -> None:
        with factory(read_only=True) as uow:
            companies.search_companies(uow, org_id, query, 20)

    for query in queries[:50]:  # warm caches and connections
        search(query)
    return [time_ms(lambda q=query: search(q)) for query in queries]  # type: ignore[misc]


def run(backend: Backend, *, size: int, queries: int, seed: int = 20261122) -> list[Result]:
    rng = random.Random(seed)
    big = _create_org(backend, "Bench Big", "big.example")
    small = _create_org(backend, "Bench Small", "small.example")
    names = list(company_names(rng, size))
    small_names = list(company_names(rng, max(1000, size // 1000)))
    log(f"{backend.name}: inserting {len(names):,} + {len(small_names):,} companies")
    insert_ms = time_ms(lambda: bulk_insert(backend, big, names))
    bulk_insert(backend, small, small_names)
    log(f"{backend.name}: inserted and indexed in {insert_ms / 1000:.1f} s")
    settle()

    small_label = f"3-letter prefix, org of {len(small_names):,} beside the big one"
    cases = [
        ("3-letter prefix", big, three_letter_queries(rng, names, queries)),
        ("two words", big, two_word_queries(rng, names, queries)),
        (small_label, small, three_letter_queries(rng, names, queries)),
    ]
    results = []
    for case, org_id, case_queries in cases:
        samples = _measure(backend, org_id, case_queries)
        note = f"bulk load + index {insert_ms / 1000:.0f} s" if not results else ""
        label = case if org_id == small else f"{case}, {size:,} companies"
        results.append(summarize("search", backend.name, label, samples, TARGET_MS, note))
        log(f"{backend.name}: {case}: p99 {results[-1].p99:.2f} ms")
    return results
