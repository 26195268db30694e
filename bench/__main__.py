"""`python -m bench`: every benchmark on SQLite, then on a throw-away PostgreSQL.

PostgreSQL runs when its binaries are installed (or with --backend postgres): this command
starts itself again under tests/backends.sh, which sets TEST_DATABASE_URL (and TEST_REDIS_URL,
the queue of the Graph benchmarks' PostgreSQL pass). With TEST_DATABASE_URL already set, that
server is used directly. --quick uses smaller sizes.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import glob
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import sqlalchemy

from bench import burst, calendar_range, google_burst, ingest, pane_api, search, webhook
from bench.common import (
    POSTGRES,
    SQLITE,
    Backend,
    Figure,
    Measurement,
    Result,
    figures_table,
    log,
    markdown_table,
    notes,
    open_backend,
)

ROOT = Path(__file__).resolve().parent.parent
# Ports of the benchmark's own PostgreSQL and Redis, apart from those of a concurrent test run.
BENCH_PG_PORT = "54339"
BENCH_REDIS_PORT = "63739"
# The PostgreSQL server is sized for the data, as a production one would be: the million
# companies' search relations (about 800 MB, bench/search.py prewarms them) fit in its buffers.
BENCH_PG_OPTIONS = "-c shared_buffers=1GB"
BENCHMARKS = ("search", "calendar", "pane-api", "webhook", "burst", "ingest", "google-burst")
# Options passed on to the PostgreSQL pass.
_SIZE_OPTIONS = (
    "only", "companies", "queries", "seconds", "threads", "notifications", "events",
    "google_events",
)  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--backend", choices=("all", "sqlite", "postgres"), default="all",
        help="all (default): SQLite, and PostgreSQL when its binaries are installed",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", choices=BENCHMARKS, help="run one benchmark")
    parser.add_argument("--companies", type=int, help="companies in the big organization")
    parser.add_argument("--queries", type=int, help="search queries per case")
    parser.add_argument("--seconds", type=float, help="webhook: seconds of load per route")
    parser.add_argument(
        "--threads", type=int,
        help="webhook: gthread workers with this many threads (default: gunicorn.conf.py)",
    )  # fmt: skip
    parser.add_argument("--notifications", type=int, help="burst: notifications sent")
    parser.add_argument("--events", type=int, help="ingest: events in the mailbox")
    parser.add_argument(
        "--google-events", type=int, help="google-burst: events changed (default 1,000)"
    )
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)  # results, for the parent
    return parser


def _sizes(args: argparse.Namespace) -> dict[str, float]:
    sizes: dict[str, float] = (
        {"companies": 100_000, "queries": 200, "users": 50, "series": 100, "singles": 5_000,
         "runs": 20, "seconds": 2, "warmup": 1, "notifications": 1_000, "mailboxes": 20,
         "events": 500, "google_events": 200, "google_users": 10}
        if args.quick
        else {"companies": 1_000_000, "queries": 500, "users": 200, "series": 500,
              "singles": 20_000, "runs": 50, "seconds": 12, "warmup": 2,
              "notifications": 10_000, "mailboxes": 100, "events": 3_000,
              "google_events": 1_000, "google_users": 50}
    )  # fmt: skip
    for option in ("companies", "queries", "seconds", "notifications", "events", "google_events"):
        if getattr(args, option):
            sizes[option] = getattr(args, option)
    return sizes


def _run_here(kind: str, args: argparse.Namespace) -> list[Measurement]:
    size = _sizes(args)
    results: list[Measurement] = []
    if args.only in (None, "search", "calendar", "pane-api"):
        with open_backend(kind) as backend:
            if args.only in (None, "search"):
                results += search.run(
                    backend, size=int(size["companies"]), queries=int(size["queries"])
                )
            if args.only in (None, "pane-api"):  # reuses the companies search.run loaded
                results += pane_api.run(
                    backend, size=int(size["companies"]), queries=int(size["queries"])
                )
            if args.only in (None, "calendar"):
                results += calendar_range.run(
                    backend,
                    users=int(size["users"]),
                    series=int(size["series"]),
                    singles=int(size["singles"]),
                    runs=int(size["runs"]),
                )
    graph_benchmarks: list[tuple[str, Callable[[Backend], list[Measurement]]]] = [
        (
            "webhook",
            lambda b: webhook.run(
                b,
                seconds=size["seconds"],
                warmup=size["warmup"],
                args=("--threads", str(args.threads)) if args.threads else (),
            ),
        ),
        (
            "burst",
            lambda b: burst.run(
                b, notifications=int(size["notifications"]), mailboxes=int(size["mailboxes"])
            ),
        ),
        ("ingest", lambda b: ingest.run(b, events=int(size["events"]))),
        (
            "google-burst",
            lambda b: google_burst.run(
                b, events=int(size["google_events"]), users=int(size["google_users"])
            ),
        ),
    ]
    for name, measure in graph_benchmarks:
        if args.only in (None, name):
            with open_backend(kind) as backend:  # a fresh database for each
                results += measure(backend)
    return results


def _run_postgres(args: argparse.Namespace) -> list[Measurement]:
    """Run this command again under tests/backends.sh and read back its results."""
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp:
        out = Path(tmp) / "results.json"
        command = [str(ROOT / "tests" / "backends.sh"), sys.executable, "-m", "bench"]
        command += ["--backend", "postgres", "--json", str(out)]
        if args.quick:
            command.append("--quick")
        for option in _SIZE_OPTIONS:
            if getattr(args, option):
                command += [f"--{option.replace('_', '-')}", str(getattr(args, option))]
        env = {
            "TEST_PG_PORT": BENCH_PG_PORT, "TEST_REDIS_PORT": BENCH_REDIS_PORT,
            "TEST_PG_OPTIONS": BENCH_PG_OPTIONS, **os.environ,
        }  # fmt: skip
        subprocess.run(command, cwd=ROOT, env=env, check=True)
        return [_load(item) for item in json.loads(out.read_text())]


def _dump(measurement: Measurement) -> dict[str, object]:
    return {"type": type(measurement).__name__, **dataclasses.asdict(measurement)}


def _load(item: dict[str, object]) -> Measurement:
    kind = item.pop("type", "Result")
    return Figure(**item) if kind == "Figure" else Result(**item)  # type: ignore[arg-type]


def _machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"SQLite {__import__('sqlite3').sqlite_version}, SQLAlchemy {sqlalchemy.__version__}; "
        f"load average at the end {load}"
    )


def main() -> int:
    args = _parser().parse_args()
    results: list[Measurement] = []
    if args.backend in ("all", "sqlite"):
        results += _run_here(SQLITE, args)
    if args.backend in ("all", "postgres"):
        if os.environ.get("TEST_DATABASE_URL"):
            results += _run_here(POSTGRES, args)
        elif glob.glob("/usr/lib/postgresql/*/bin/initdb"):
            results += _run_postgres(args)
        elif args.backend == "postgres":
            print("PostgreSQL binaries not found (tests/system-packages.sh installs them)")
            return 2
        else:
            log("PostgreSQL binaries not found: PostgreSQL benchmarks skipped")
    if args.json:
        args.json.write_text(json.dumps([_dump(r) for r in results]))
        return 0
    print()
    print(f"Run {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}: {_machine()}")
    print()
    latencies = [r for r in results if isinstance(r, Result)]
    figures = [r for r in results if isinstance(r, Figure)]
    if latencies:
        print(markdown_table(latencies))
        print()
    if figures:
        print(figures_table(figures))
        print()
    if any(r.note for r in results):
        print(notes(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
