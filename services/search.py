"""Company search as the add-ins type: word-prefix matches, case- and accent-insensitive.

The query is folded like Company.sort_name (services.text.fold) and split into words. A company
matches when every query word starts some word of its sort_name: "ltd cont" finds "Contoso Ltd",
"toso" does not. Matches are ranked in tiers, each ordered by (length(sort_name), sort_name, id),
so an exact match, being the shortest, leads the first tier:

1. sort_name starts with the whole query;
2. it starts with the first query word, and the other words start words anywhere in it;
3. every other match.

A 3-letter prefix can match tens of thousands of companies, so no tier is ranked in full. Each
is read in rank order until `limit` ids are found, from indexes built by migration 0002:

* Names starting with a prefix (tier 1 on both backends, tier 2 on SQLite when few names start
  with the first word) come from a btree on (org_id, length(sort_name), sort_name, id). Per
  length they are one short range, already in order. SQLite keeps it as the table
  company_search_names and walks the lengths with an IN list; PostgreSQL has it as an index and
  walks the lengths with one LATERAL range each (IN-list scans lose their order before 17).
* Word matches on SQLite come from the FTS5 table `company_search`, whose rowid is
  `length(sort_name) << 40 | id`: hits arrive shortest first, so reading stops after `limit`
  hits plus the rest of the last hit's length (for the alphabetical order).
* Word matches on PostgreSQL come from the table company_search_words: a row per word of every
  name ("^word" too for a first word), keyed (org_id, word, length, sort_name, id). Each indexed
  word starting with one query word, the one with the fewest rows, is read in rank order by an
  index-only scan until `limit` rows pass LIKE checks of the other query words, and these
  streams are merged. (GIN returns matches unordered; migration 0002 says more.)

A tier is only read when the tiers before it came up short, so were read in full: it excludes
what they found by id. Sorting is by code point on both backends (SQLite BINARY, PostgreSQL "C").

PostgreSQL sends tier 1 in one statement with the next step, which a one-time filter runs only
when tier 1 came up short: tier 3 for one word (one statement in all), the driving-word counts
for several (then the streams of tiers 2 and 3 in one statement, tier 3's again only run when
tier 2 came up short). When every word of a tier has more rows than are counted, the column
statistics (read once in 10 minutes) estimate their rows and distinct words.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from services.tables import Company
from services.text import fold

MAX_LIMIT = 100

# SQLite tier 2 scans the names starting with the first query word when there are at most this
# many (about a millisecond); with more it asks FTS5, which stops after `limit` hits.
_RANGE_SCAN = 2000

# PostgreSQL drives a multi-word match by the word with the fewest rows, counted up to this;
# when every word of a tier has more, by the least work estimated from the column statistics:
# rows, and each distinct word starting with the driver weighing as much as this many rows.
_PG_COUNT_CAP = 1000
_PG_WORD_COST_ROWS = 300

# SQLite rowid layout of company_search; must match migration 0002.
_SQLITE_KEY_SHIFT = 40
_SQLITE_ID_MASK = (1 << _SQLITE_KEY_SHIFT) - 1


def index_company(session: Session, company: Company) -> None:
    """Nothing to do: the search index follows the companies table by itself.

    Migration 0002 maintains it with triggers on companies, so rows written by bulk SQL, such as
    the importer's, are found too.
    """


def unindex_company(session: Session, company: Company) -> None:
    """Nothing to do: deleting the row removes it from the index (see index_company)."""


def search_company_ids(session: Session, org_id: int, query: str, limit: int) -> list[int]:
    """Ids of the organization's companies matching `query`, best first, at most 100."""
    words = tuple(fold(query).split())
    limit = min(limit, MAX_LIMIT)
    if not words or limit <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return _search_postgres(session, org_id, words, limit)
    found: list[int] = []
    for tier in (1, 2, 3) if len(words) > 1 else (1, 3):
        found += _sqlite_tier(session, org_id, words, tier, found, limit - len(found))
        if len(found) >= limit:
            break
    return found


def _prefix_end(prefix: str) -> str:
    """The smallest string above every string that starts with `prefix` (code point order)."""
    following = ord(prefix[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are not characters
        following = 0xE000
    return prefix[:-1] + chr(following)


def _word_filters(words: Sequence[str], *, anchored: bool = False) -> tuple[str, dict[str, str]]:
    """SQL requiring each word to start a word of sort_name, the first its first word if
    `anchored`. Folded text has no LIKE wildcards or backslashes."""
    clauses: list[str] = []
    params: dict[str, str] = {}
    for i, word in enumerate(words):
        params[f"start{i}"] = f"{word}%"
        if anchored and i == 0:
            clauses.append(f"AND sort_name LIKE :start{i}")
        else:
            clauses.append(f"AND (sort_name LIKE :start{i} OR sort_name LIKE :inner{i})")
            params[f"inner{i}"] = f"% {word}%"
    return " ".join(clauses), params


def _ranked(rows: Sequence[Any], need: int) -> list[int]:
    """Ids of (id, sort_name) rows in rank order."""
    ordered = sorted(rows, key=lambda row: (len(row.sort_name), row.sort_name, row.id))
    return [row.id for row in ordered[:need]]


# --- SQLite -------------------------------------------------------------------------------------


def _sqlite_tier(
    session: Session,
    org_id: int,
    words: Sequence[str],
    tier: int,
    exclude: Sequence[int],
    need: int,
) -> list[int]:
    if tier == 1:
        return _sqlite_starting_with(session, org_id, " ".join(words), (), exclude, need)
    if tier == 2:
        low, high = words[0], _prefix_end(words[0])
        few = session.scalar(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM companies WHERE org_id = :org "
                "AND sort_name >= :low AND sort_name < :high LIMIT :cap)"
            ),
            {"org": org_id, "low": low, "high": high, "cap": _RANGE_SCAN + 1},
        )
        if (few or 0) <= _RANGE_SCAN:
            return _sqlite_starting_with(session, org_id, words[0], words[1:], exclude, need)
    return _sqlite_matching(session, org_id, words, tier == 2, exclude, need)


def _sqlite_starting_with(
    session: Session,
    org_id: int,
    prefix: str,
    others: Sequence[str],
    exclude: Sequence[int],
    need: int,
) -> list[int]:
    filters, params = _word_filters(others)
    # The IN list walks the lengths in order, so SQLite needs no sort and stops at `need`.
    statement = text(
        f"""
        SELECT company_id FROM company_search_names
        WHERE org_id = :org
          AND name_length IN (
            WITH RECURSIVE lengths(n) AS (
              SELECT :min_len
              UNION ALL
              SELECT n + 1 FROM lengths
              WHERE n < (SELECT max(name_length) FROM company_search_names WHERE org_id = :org)
            )
            SELECT n FROM lengths
          )
          AND sort_name >= :low AND sort_name < :high AND company_id NOT IN :exclude {filters}
        ORDER BY name_length, sort_name, company_id
        LIMIT :need
        """  # noqa: S608 - only our SQL fragments are spliced; values are bound
    ).bindparams(bindparam("exclude", expanding=True))
    values: dict[str, Any] = {
        "org": org_id,
        "min_len": len(prefix),
        "low": prefix,
        "high": _prefix_end(prefix),
        "exclude": list(exclude),
        "need": need,
        **params,
    }
    return list(session.scalars(statement, values))


def _sqlite_tag(org_id: int) -> str:
    """The organization tag in front of every indexed word; must match migration 0002."""
    return f"{org_id:010d}"


def _sqlite_matching(
    session: Session,
    org_id: int,
    words: Sequence[str],
    anchored: bool,
    exclude: Sequence[int],
    need: int,
) -> list[int]:
    # FTS5 gets at most 4 letters a word, which its prefix indexes answer without merging every
    # matching term first; the LIKE filters then check whole words. Folded words contain no
    # quotes, which would be doubled here anyway.
    tag = _sqlite_tag(org_id)
    terms = [
        f'{"^ " if anchored and i == 0 else ""}"{tag}{word[:4].replace(chr(34), chr(34) * 2)}" *'
        for i, word in enumerate(words)
    ]
    filters, params = _word_filters(words, anchored=anchored)
    statement = text(
        f"""
        SELECT s.rowid AS key, c.id, c.sort_name FROM company_search AS s
        JOIN companies AS c ON c.id = (s.rowid & :mask)
        WHERE s.company_search MATCH :match AND c.org_id = :org AND c.id NOT IN :exclude
          {filters}
        ORDER BY s.rowid
        """  # noqa: S608 - only our SQL fragments are spliced; values are bound
    ).bindparams(bindparam("exclude", expanding=True))
    values = {
        "match": " AND ".join(terms),
        "mask": _SQLITE_ID_MASK,
        "org": org_id,
        "exclude": list(exclude),
        **params,
    }
    # Hits come shortest name first. Read `need` of them, then the rest of the last one's
    # length, which the alphabetical order may still move ahead.
    hits: list[Any] = []
    result = session.execute(statement, values)
    try:
        for row in result:
            if (
                len(hits) >= need
                and row.key >> _SQLITE_KEY_SHIFT > hits[-1].key >> _SQLITE_KEY_SHIFT
            ):
                break
            hits.append(row)
    finally:
        result.close()
    return _ranked(hits, need)


# --- PostgreSQL ---------------------------------------------------------------------------------
# Tiers 2 and 3 go out in one statement. Each part of a statement reads `limit` rows of its tier
# and the tiers are merged here: a tier may repeat ids of the tiers before it, fewer than
# `limit` of them.


def _search_postgres(session: Session, org_id: int, words: Sequence[str], limit: int) -> list[int]:
    # One statement for tier 1 and, gated on tier 1 coming up short, whatever the next step
    # needs: tier 3 for a single word, the driving-word counts for several.
    values: dict[str, Any] = {"org": org_id, "need": limit}
    tier1 = _pg_starting_with(" ".join(words), values)
    if len(words) == 1:
        tier3 = _pg_word_stream(3, words[0], words, 0, False, values)
        rows = session.execute(text(_pg_then_if_short(tier1, tier3)), values)
        return _pg_merge(rows, limit)

    # Each tier reads the word rows of its rarest query word ("^" marks a first word). Their
    # counts come with tier 1 (in a fixed order, so that the statement's text, which psycopg
    # prepares, is the same for queries of as many words).
    keys = {2: ["^" + words[0], *words[1:]], 3: list(words)}
    counted = list(dict.fromkeys([*keys[2], *keys[3]]))
    first = _pg_then_if_short(tier1, _pg_counts(counted, _PG_COUNT_CAP, values))
    by_tier: dict[int, list[Any]] = {}
    for row in session.execute(text(first), values):
        by_tier.setdefault(row.tier, []).append(row)
    found = _pg_merge(by_tier.get(1, ()), limit)
    if len(found) >= limit:
        return found
    counts = {counted[row.id]: row.n for row in by_tier.get(0, ())}
    # Only frequent words: a wrong pick reads many rows for nothing.
    crowded = sorted(
        {k for ks in keys.values() if min(counts[k] for k in ks) >= _PG_COUNT_CAP for k in ks}
    )
    cost = {key: float(n) for key, n in counts.items()}
    stats = _pg_word_stats(session) if crowded else None
    if stats is not None:
        for key in crowded:
            counts[key] = max(round(stats.rows_starting_with(key)), _PG_COUNT_CAP)
        cost = {key: _pg_stream_cost(stats, key, n) for key, n in counts.items()}

    values = {"org": org_id, "need": limit, "found": found, "short": limit - len(found)}
    streams = []
    for tier, anchored in ((2, True), (3, False)):
        driver = min(range(len(words)), key=lambda i: (cost[keys[tier][i]], -len(words[i])))
        streams.append(_pg_word_stream(tier, keys[tier][driver], words, driver, anchored, values))
    tiers23 = _pg_then_if_short(*streams, beyond_found=True)
    return _pg_merge(session.execute(text(tiers23), values), limit, found)


def _pg_then_if_short(first: str, then: str, *, beyond_found: bool = False) -> str:
    """SQL for the rows of `first` followed by those of `then`, which PostgreSQL only runs (a
    one-time filter) when `first` came up short: fewer than :need rows or, `beyond_found`,
    fewer than :short rows whose ids are not among :found (the tiers before)."""
    if beyond_found:
        new_rows = "(SELECT count(*) FROM first_rows WHERE id <> ALL(CAST(:found AS bigint[])))"
        short = f"{new_rows} < :short"
    else:
        short = "(SELECT count(*) FROM first_rows) < :need"
    return f"""
        WITH first_rows AS MATERIALIZED ({first})
        SELECT tier, id, sort_name, n FROM first_rows
        UNION ALL
        SELECT tier, id, sort_name, n FROM ({then}) AS next_step
        WHERE {short}
        """  # noqa: S608 - only our SQL fragments are spliced; values are bound


def _pg_merge(rows: Iterable[Any], limit: int, found: Sequence[int] = ()) -> list[int]:
    """Tier by tier, the best `limit` ids not found before (rows: tier, id, sort_name)."""
    result = list(found)
    by_tier: dict[int, list[Any]] = {}
    for row in rows:
        by_tier.setdefault(row.tier, []).append(row)
    for tier in sorted(t for t in by_tier if t > 0):
        seen = set(result)
        result += _ranked([r for r in by_tier[tier] if r.id not in seen], limit - len(result))
        if len(result) >= limit:
            break
    return result


def _pg_starting_with(prefix: str, values: dict[str, Any]) -> str:
    """SQL for tier 1, names starting with `prefix`: one btree range per name length."""
    values.update(t1_min_len=len(prefix), t1_low=prefix, t1_high=_prefix_end(prefix))
    return """
        (SELECT 1 AS tier, hit.id, (hit.sort_name COLLATE "C") AS sort_name, NULL::integer AS n
        FROM generate_series(
            CAST(:t1_min_len AS integer),
            (SELECT max(length(sort_name)) FROM companies WHERE org_id = :org)
        ) AS g(len)
        CROSS JOIN LATERAL (
            SELECT id, sort_name FROM companies
            WHERE org_id = :org AND length(sort_name) = g.len
              AND (sort_name COLLATE "C") >= :t1_low AND (sort_name COLLATE "C") < :t1_high
            ORDER BY (sort_name COLLATE "C"), id
            LIMIT :need
        ) AS hit
        ORDER BY g.len, (hit.sort_name COLLATE "C"), hit.id
        LIMIT :need)
        """


def _pg_word_stream(
    tier: int, key: str, words: Sequence[str], driver: int, anchored: bool, values: dict[str, Any]
) -> str:
    """SQL for a tier's word matches from company_search_words, in rank order, up to :need:
    each indexed word starting with `key` (from the driving query word) is read by an
    index-only scan in rank order until :need rows pass the LIKE checks of the other words."""
    others = [w for i, w in enumerate(words) if i != driver]
    filters, params = _word_filters(others, anchored=anchored and driver != 0)
    p = f"t{tier}_"
    values.update({f"{p}{name}": value for name, value in params.items()})
    values.update({f"{p}low": key, f"{p}high": _prefix_end(key)})
    filters = filters.replace(":", f":{p}")
    return f"""
        (WITH RECURSIVE {p}words(word) AS (
            (SELECT word FROM company_search_words
             WHERE org_id = :org AND word >= :{p}low AND word < :{p}high ORDER BY word LIMIT 1)
            UNION ALL
            SELECT (SELECT s.word FROM company_search_words AS s
                    WHERE s.org_id = :org AND s.word > {p}words.word AND s.word < :{p}high
                    ORDER BY s.word LIMIT 1)
            FROM {p}words WHERE {p}words.word IS NOT NULL
        )
        SELECT {tier} AS tier, hit.company_id AS id, hit.sort_name, NULL::integer AS n
        FROM {p}words CROSS JOIN LATERAL (
            SELECT company_id, name_length, sort_name FROM company_search_words
            WHERE org_id = :org AND word = {p}words.word {filters}
            ORDER BY name_length, sort_name, company_id
            LIMIT :need
        ) AS hit
        GROUP BY hit.company_id, hit.name_length, hit.sort_name
        ORDER BY hit.name_length, hit.sort_name, hit.company_id
        LIMIT :need)
        """  # noqa: S608 - only our SQL fragments are spliced; values are bound


@dataclass(frozen=True, slots=True)
class _WordStats:
    """What PostgreSQL's statistics say of company_search_words.word, all organizations.

    The planner estimates a prefix's rows from the same figures (migration 0006 keeps them
    fine enough: within about 10 % for prefixes of more than a thousand rows); reading them
    once and estimating here saves an EXPLAIN round trip, and planning it, per search.
    """

    common: list[str]  # the most common words, sorted
    rows_before: list[float]  # rows of common[:i]
    bounds: list[str]  # the histogram of the other words: equally many rows between bounds
    other_rows: float  # rows of the other words
    rows_per_other_word: float  # rows of one of them, on average
    read_at: float

    def _common(self, key: str) -> tuple[int, float]:
        low = bisect.bisect_left(self.common, key)
        high = bisect.bisect_left(self.common, _prefix_end(key))
        return high - low, self.rows_before[high] - self.rows_before[low]

    def rows_starting_with(self, key: str) -> float:
        """About how many rows have a word starting with `key`, in all organizations."""
        rows = self._common(key)[1]
        buckets = len(self.bounds) - 1
        if buckets > 0:
            inside = bisect.bisect_left(self.bounds, _prefix_end(key)) - bisect.bisect_left(
                self.bounds, key
            )
            rows += self.other_rows * min(1.0, (inside + 0.5) / buckets)  # part-buckets: half
        return rows

    def words_starting_with(self, key: str, rows: int) -> float:
        """About how many distinct words start with `key`, given its row count."""
        common_words, common_rows = self._common(key)
        return common_words + max(0.0, rows - common_rows) / self.rows_per_other_word


_word_stats: dict[str, _WordStats | None] = {}


def _pg_word_stats(session: Session) -> _WordStats | None:
    """The column statistics of company_search_words.word (read again after 10 minutes); None
    before the table was first analyzed."""
    database = session.get_bind().engine.url.render_as_string(hide_password=True)
    known = _word_stats.get(database)
    if database in _word_stats and (known is None or time.monotonic() - known.read_at < 600):
        return known
    row = session.execute(
        text(
            "SELECT most_common_vals::text::text[] AS words, most_common_freqs AS freqs, "
            "histogram_bounds::text::text[] AS bounds, n_distinct, c.reltuples "
            "FROM pg_stats AS s JOIN pg_class AS c "
            "ON c.oid = to_regclass(quote_ident(s.schemaname) || '.' || quote_ident(s.tablename)) "
            "WHERE s.schemaname = current_schema() AND s.tablename = 'company_search_words' "
            "AND s.attname = 'word'"
        )
    ).first()
    stats = None
    if row is not None and row.reltuples > 0 and (row.words or row.bounds):
        pairs = sorted(zip(row.words or [], row.freqs or [], strict=True))
        total = float(row.reltuples)
        distinct = row.n_distinct if row.n_distinct > 0 else -row.n_distinct * total
        other_rows = total * (1.0 - sum(freq for _, freq in pairs))
        other_words = max(1.0, distinct - len(pairs))
        stats = _WordStats(
            common=[word for word, _ in pairs],
            rows_before=list(itertools.accumulate((f * total for _, f in pairs), initial=0.0)),
            bounds=sorted(row.bounds or []),
            other_rows=other_rows,
            rows_per_other_word=max(1.0, other_rows / other_words),
            read_at=time.monotonic(),
        )
    _word_stats[database] = stats
    return stats


def _pg_stream_cost(stats: _WordStats, key: str, rows: int) -> float:
    """The work of a word stream driven by `key`, in rows read: each distinct word starting
    with it costs a skip-scan step and an index probe, measured at about 300 rows' reading
    (a 2-letter prefix can have 600 words; a frequent word alone, 60,000 rows)."""
    return rows + _PG_WORD_COST_ROWS * stats.words_starting_with(key, rows)


def _pg_counts(keys: Sequence[str], cap: int, values: dict[str, Any]) -> str:
    """SQL counting the word rows (up to `cap`) of each key prefix: rows (tier 0, key index as
    id, NULL sort_name, n), shaped like the tier rows so they can share a statement."""
    values["cap"] = cap
    count = (
        "(SELECT 0 AS tier, {i} AS id, NULL::text AS sort_name, count(*)::integer AS n "
        "FROM (SELECT 1 FROM company_search_words WHERE org_id = :org "
        "AND word >= :count_low{i} AND word < :count_high{i} LIMIT :cap) AS rows{i})"
    )
    for i, key in enumerate(keys):
        values[f"count_low{i}"] = key
        values[f"count_high{i}"] = _prefix_end(key)
    return " UNION ALL ".join(count.format(i=i) for i in range(len(keys)))
