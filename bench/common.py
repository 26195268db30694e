"""Shared benchmark plumbing: a fresh migrated database per backend, timing and result tables."""

from __future__ import annotations

import gc
import math
import os
import secrets
import shutil
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import bootstrap
from tests.databases import create_postgres_database, drop_postgres_database, migrate

SQLITE = "SQLite"
POSTGRES = "PostgreSQL"


@dataclass(frozen=True, slots=True)
class Result:
    """Latency figures of one benchmark case on one backend, in milliseconds."""

    benchmark: str
    backend: str
    case: str
    runs: int
    p50: float
    p95: float
    p99: float
    target_ms: float
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.p99 <= self.target_ms


@dataclass(frozen=True, slots=True)
class Figure:
    """A measured quantity that is not a latency distribution: a rate, a duration, memory.

    `target` None means the figure is reported, not checked; `at_least` makes the target a
    minimum (throughputs), otherwise it is a maximum.
    """

    benchmark: str
    backend: str
    case: str
    value: float
    unit: str
    target: float | None = None
    at_least: bool = False
    note: str = ""

    @property
    def ok(self) -> bool:
        if self.target is None:
            return True
        return self.value >= self.target if self.at_least else self.value <= self.target


Measurement = Result | Figure


@dataclass(slots=True)
class Backend:
    """A migrated, empty database and the container built on it."""

    name: str
    url: str
    container: bootstrap.Container

    @property
    def is_postgres(self) -> bool:
        return self.name == POSTGRES


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize(
    benchmark: str,
    backend: str,
    case: str,
    samples_ms: list[float],
    target_ms: float,
    note: str = "",
) -> Result:
    return Result(
        benchmark=benchmark,
        backend=backend,
        case=case,
        runs=len(samples_ms),
        p50=statistics.median(samples_ms),
        p95=percentile(samples_ms, 0.95),
        p99=percentile(samples_ms, 0.99),
        target_ms=target_ms,
        note=note,
    )


def settle() -> None:
    """After loading the data, do what gunicorn.conf.py does in a production worker after start-up:
    freeze what exists, so that garbage collections scan per-call objects only and the data the
    benchmark keeps in memory does not turn into collection pauses that no server would have."""
    gc.collect()
    gc.freeze()


def time_ms(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def markdown_table(results: list[Result]) -> str:
    """Latency rows; a target of `math.inf` is a reference row with nothing to meet."""
    lines = [
        "| Benchmark | Backend | Case | Runs | p50 ms | p95 ms | p99 ms | Target p99 | Met |",
        "|---|---|---|---:|---:|---:|---:|---:|:-:|",
    ]
    for r in results:
        checked = math.isfinite(r.target_ms)
        target = f"{r.target_ms:g} ms" if checked else "-"
        met = ("yes" if r.ok else "NO") if checked else "-"
        lines.append(
            f"| {r.benchmark} | {r.backend} | {r.case} | {r.runs} | {r.p50:.2f} | {r.p95:.2f} "
            f"| {r.p99:.2f} | {target} | {met} |"
        )
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.2f}"


def figures_table(figures: list[Figure]) -> str:
    lines = [
        "| Benchmark | Backend | Case | Value | Target | Met |",
        "|---|---|---|---:|---:|:-:|",
    ]
    for f in figures:
        if f.target is None:
            target, met = "-", "-"
        else:
            target = f"{'≥' if f.at_least else '≤'} {_number(f.target)} {f.unit}"
            met = "yes" if f.ok else "NO"
        lines.append(
            f"| {f.benchmark} | {f.backend} | {f.case} | {_number(f.value)} {f.unit} "
            f"| {target} | {met} |"
        )
    return "\n".join(lines)


def notes(measurements: list[Measurement]) -> str:
    return "\n".join(
        f"- {m.benchmark}, {m.backend}, {m.case}: {m.note}" for m in measurements if m.note
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def open_backend(kind: str) -> Iterator[Backend]:
    """A fresh database migrated to head: a temporary SQLite file, or a new PostgreSQL database
    on the server named by TEST_DATABASE_URL (tests/backends.sh sets it)."""
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    server = os.environ.get("TEST_DATABASE_URL")
    try:
        if kind == POSTGRES:
            if not server:
                raise RuntimeError("PostgreSQL benchmarks need TEST_DATABASE_URL")
            url = create_postgres_database(server, "crm_bench")
        else:
            url = f"sqlite:///{workdir / 'crm.db'}"
        migrate(url)
        settings = bootstrap.Settings(
            database_url=url,
            instance_path=workdir / "instance",
            secret_key=secrets.token_urlsafe(32),
            environment="test",
        )
        container = bootstrap.build(settings)
        try:
            yield Backend(kind, url, container)
        finally:
            container.close()
    finally:
        if kind == POSTGRES and server:
            drop_postgres_database(server, "crm_bench")
        shutil.rmtree(workdir, ignore_errors=True)
