"""`python -m bench`: every benchmark on SQLite, then on a throw-away PostgreSQL.

PostgreSQL runs when its binaries are installed (or with --backend postgres): this command
starts itself again under tests/backends.sh, which sets TEST_DATABASE_URL. With
TEST_DATABASE_URL already set, that server is used directly. --quick uses smaller sizes.
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
from pathlib import Path

import sqlalchemy

from bench import calendar_range, search
from bench.common import POSTGRES, SQLITE, Result, log, markdown_table, open_backend

ROOT = Path(__file__).resolve().parent.parent
# Ports of the benchmark's own PostgreSQL and Redis, apart from those of a concurrent test run.
BENCH_PG_PORT = "54339"
BENCH_REDIS_PORT = "63739"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--backend", choices=("all", "sqlite", "postgres"), default="all",
        help="all (default): SQLite, and PostgreSQL when its binaries are installed",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", choices=("search", "calendar"), help="run one benchmark")
    parser.add_argument("--companies", type=int, help="companies in the big organization")
    parser.add_argument("--queries", type=int, help="search queries per case")
    parser.add_argument("--json", type=Path, help=argparse.SUPPRESS)  # results, for the parent
    return parser


def _sizes(args: argparse.Namespace) -> dict[str, int]:
    sizes = (
        {"companies": 100_000, "queries": 200, "users": 50, "series": 100, "singles": 5_000,
         "runs": 20}
        if args.quick
        else {"companies": 1_000_000, "queries": 500, "users": 200, "series": 500,
              "singles": 20_000, "runs": 50}
    )  # fmt: skip
    if args.companies:
        sizes["companies"] = args.companies
    if args.queries:
        sizes["queries"] = args.queries
    return sizes


def _run_here(kind: str, args: argparse.Namespace) -> list[Result]:
    sizes = _sizes(args)
    results: list[Result] = []
    with open_backend(kind) as backend:
        if args.only in (None, "search"):
            results += search.run(backend, size=sizes["companies"], queries=sizes["queries"])
        if args.only in (None, "calendar"):
            results += calendar_range.run(
                backend,
                users=sizes["users"],
                series=sizes["series"],
                singles=sizes["singles"],
                runs=sizes["runs"],
            )
    return results


def _run_postgres(args: argparse.Namespace) -> list[Result]:
    """Run this command again under tests/backends.sh and read back its results."""
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp:
        out = Path(tmp) / "results.json"
        command = [str(ROOT / "tests" / "backends.sh"), sys.executable, "-m", "bench"]
        command += ["--backend", "postgres", "--json", str(out)]
        if args.quick:
            command.append("--quick")
        for option in ("only", "companies", "queries"):
            if getattr(args, option):
                command += [f"--{option}", str(getattr(args, option))]
        env = {
            "TEST_PG_PORT": BENCH_PG_PORT, "TEST_REDIS_PORT": BENCH_REDIS_PORT, **os.environ,
        }  # fmt: skip
        subprocess.run(command, cwd=ROOT, env=env, check=True)
        return [Result(**item) for item in json.loads(out.read_text())]


def _machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"SQLite {__import__('sqlite3').sqlite_version}, SQLAlchemy {sqlalchemy.__version__}; "
        f"load average at the end {load}"
    )


def main() -> int:
    args = _parser().parse_args()
    results: list[Result] = []
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
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in results]))
        return 0
    print()
    print(f"Run {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}: {_machine()}")
    print()
    print(markdown_table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
