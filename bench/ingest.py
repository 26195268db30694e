"""Sync ingest benchmark: a full reconciliation of one large mailbox over calendarView delta.

The Graph and Entra stand-ins (tests/standins) hold one mailbox with N single meetings spread
over the sync window (90 days back, 2 years ahead), with customers of 40 CRM companies and
strangers as attendees. `services.mailboxes.reconcile_mailbox` with the product's
`graph.calendar.GraphCalendar` (built by bootstrap as the worker builds it: delta pages of 100
through `Prefer: odata.maxpagesize`) imports them, as the first sync after connecting a tenant.

The reconciliation runs in a fresh child process (`python -m bench.ingest`, a worker's work
and nothing else), so that its memory growth is its own: resident memory just before the
call, and the peak during it (the kernel's high-water mark, reset first). The stand-ins serve
from this process meanwhile.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import gc
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import Backend, Figure, Measurement, log
from services import companies, contacts, organizations
from services.tables import Mailbox, Provider
from tests.standins import MicrosoftStandIns, microsoft_standins
from tests.standins.graph import GraphUser

ROOT = Path(__file__).resolve().parent.parent
TARGET_EVENTS_PER_SECOND = 1000.0  # on SQLite
TARGET_MEMORY_MB = 50.0
FULL_SIZE = 100_000  # events in the mailbox the targets are about
CLIENT_ID = "5b2e3d4c-1a0f-4e9d-8c7b-6a5f4e3d2c1b"
CLIENT_SECRET = "bench-ingest-app-secret"  # noqa: S105 - the stand-in's, made up here
ADDIN_ID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
DOMAIN = "contoso.example"
MAILBOX = f"anna.berg@{DOMAIN}"
CUSTOMERS = 40
CONTACTS_PER_CUSTOMER = 3
SUBJECTS = ("Renewal", "Quarterly review", "Demo", "Kick-off", "Pricing", "Workshop",
            "Support escalation", "Onboarding", "Contract", "Lunch")  # fmt: skip


# --------------------------------------------------------------------------- data


def _customers(backend: Backend, org_id: int, rng: random.Random) -> list[list[str]]:
    """CRM companies with domains and contacts; returns each company's known addresses."""
    known: list[list[str]] = []
    with backend.container.uow() as uow:
        for number in range(CUSTOMERS):
            domain = f"customer{number:02d}.example"
            company = companies.create_company(
                uow, org_id, name=f"Customer {number:02d} AS", domains=[domain]
            )
            addresses = [f"person{i}@{domain}" for i in range(CONTACTS_PER_CUSTOMER)]
            for i, address in enumerate(addresses):
                contacts.create_contact(
                    uow,
                    org_id,
                    {"first_name": f"P{i}", "last_name": f"C{number}", "emails": [address],
                     "company_id": company.id},
                )  # fmt: skip
            known.append(addresses)
        uow.commit()
    rng.shuffle(known)
    return known


def _create_events(
    ms: MicrosoftStandIns, user: GraphUser, count: int, known: list[list[str]], rng: random.Random
) -> None:
    """Single meetings over the window, in working hours in Oslo; through the stand-in's API."""
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first, days = today - dt.timedelta(days=85), 85 + 700
    for number in range(count):
        day = first + dt.timedelta(days=rng.randrange(days))
        start = day.replace(tzinfo=None) + dt.timedelta(hours=rng.randrange(8, 17))
        minutes = rng.choice((30, 45, 60, 90))
        customer = known[number % len(known)]
        attendees = rng.sample(customer, rng.randint(1, len(customer)))
        if rng.random() < 0.3:
            attendees.append(f"someone{rng.randrange(10_000)}@stranger{number % 97}.example")
        if rng.random() < 0.3:
            attendees.append(f"colleague{rng.randrange(20)}@{DOMAIN}")
        ms.graph.create_event(
            user,
            start=start,
            end=start + dt.timedelta(minutes=minutes),
            subject=f"{rng.choice(SUBJECTS)} {number}",
            time_zone="Europe/Oslo",
            attendees=attendees,
            location=rng.choice((None, "Teams", "Meeting room 2", "Customer's office")),
            body="<p>Agenda</p><ul><li>Status</li><li>Next steps</li></ul>",
            is_online_meeting=rng.random() < 0.5,
        )
    ms.graph.pending_notifications.clear()  # nobody subscribed: nothing to announce


# --------------------------------------------------------------------------- the child


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _child(config: dict[str, Any]) -> dict[str, Any]:
    """Run in a fresh process: build the container as the worker does, reconcile, measure."""
    import bootstrap
    from services import mailboxes

    os.environ.update(config["env"])  # the stand-in's CA bundle, for requests and msal
    settings = bootstrap.Settings(
        database_url=config["database_url"],
        instance_path=Path(config["instance_path"]),
        secret_key=config["secret_key"],
        environment="production",
        public_base_url="https://crm.example",
        ms_tenant_id=config["tenant_id"],
        ms_client_id=CLIENT_ID,
        ms_client_secret=CLIENT_SECRET,
        ms_authority_host=config["authority_host"],
        graph_base_url=config["graph_base_url"],
        addin_id=ADDIN_ID,
    )
    container = bootstrap.build(settings)
    calendar = container.graph.calendar
    gc.collect()
    peak_reset = True
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: VmHWM := VmRSS
    except OSError:
        peak_reset = False
    # Resident memory every 50 ms: when it grows (the high-water mark only says how far).
    timeline = [(time.monotonic(), _status_kb("VmRSS"))]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            timeline.append((time.monotonic(), _status_kb("VmRSS")))

    sampler = threading.Thread(target=sample, daemon=True)
    before_kb = timeline[0][1]
    sampler.start()
    cpu = time.process_time()
    started_wall, started = time.monotonic(), time.perf_counter()
    profile_to = os.environ.get("BENCH_PROFILE")  # a path: cProfile the reconciliation into it
    profiler = cProfile.Profile() if profile_to else None
    if profiler:
        profiler.enable()
    report = mailboxes.reconcile_mailbox(
        container.uow, calendar, config["mailbox_id"], policy=settings.sync_policy
    )
    elapsed = time.perf_counter() - started
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile_to)
    cpu = time.process_time() - cpu
    stop.set()
    sampler.join()
    peak_kb = max(_status_kb("VmHWM") if peak_reset else 0, *(kb for _, kb in timeline))
    container.close()
    return {
        "report": {k: getattr(report, k) for k in ("applied", "removed", "ignored", "failed")},
        "full_resync": report.full_resync,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "started": started_wall,
        "rss_before_mb": before_kb / 1024,
        "rss_peak_mb": peak_kb / 1024,
        "rss_after_mb": _status_kb("VmRSS") / 1024,
        "peak_from": "VmHWM" if peak_reset else "sampled VmRSS",
        "timeline": timeline,
    }


# --------------------------------------------------------------------------- the benchmark


def run(backend: Backend, *, events: int, seed: int = 20261122) -> list[Measurement]:
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-ingest-"))
    try:
        with microsoft_standins(workdir) as ms:
            return _run(backend, ms, events, random.Random(seed))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(
    backend: Backend, ms: MicrosoftStandIns, events: int, rng: random.Random
) -> list[Measurement]:
    ms.entra.register_app(CLIENT_ID, CLIENT_SECRET)
    user = ms.graph.add_user(MAILBOX)
    with backend.container.uow() as uow:
        org = organizations.create_organization(
            uow, name="Bench Ingest", own_domains=[DOMAIN], ms_tenant_id=ms.entra.tenant_id
        )
        organizations.add_user(uow, org_id=org.id, email=MAILBOX, display_name="Anna Berg")
        mailbox = Mailbox(
            org_id=org.id,
            provider=Provider.MICROSOFT,
            address=MAILBOX,
            external_id=user.id,
            display_name="Anna Berg",
        )
        uow.session.add(mailbox)
        uow.commit()
        org_id, mailbox_id = org.id, mailbox.id
    known = _customers(backend, org_id, rng)
    log(f"{backend.name}: ingest: creating {events:,} events in the Graph stand-in")
    started = time.perf_counter()
    _create_events(ms, user, events, known, rng)
    create_seconds = time.perf_counter() - started
    log(f"{backend.name}: ingest: created in {create_seconds:.1f} s "
        f"({create_seconds / events * 1e6:.0f} µs each); reconciling")  # fmt: skip

    settings = backend.container.settings
    config = {
        "database_url": backend.url,
        "instance_path": str(settings.instance_path),
        "secret_key": settings.secret_key,
        "tenant_id": ms.entra.tenant_id,
        "authority_host": ms.entra.base_url,
        "graph_base_url": ms.graph.root_url,
        "mailbox_id": mailbox_id,
        "env": ms.environment(),
    }
    calls_before = len(ms.graph.requests)
    child = subprocess.run(
        [sys.executable, "-m", "bench.ingest"],
        input=json.dumps(config),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"the reconciliation failed:\n{child.stderr[-4000:]}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    calls = list(ms.graph.requests[calls_before:])
    return _figures(backend, events, create_seconds, result, calls)


def _figures(
    backend: Backend,
    events: int,
    create_seconds: float,
    result: dict[str, Any],
    calls: list[Any],
) -> list[Measurement]:
    seconds = result["seconds"]
    rate = events / seconds
    growth = result["rss_peak_mb"] - result["rss_before_mb"]
    top = [c for c in calls if not c.in_batch]
    kinds = Counter(
        "delta page" if "/calendarview/delta" in c.path.casefold()
        else "$batch" if c.path.casefold().startswith("/$batch")
        else "other"
        for c in top
    )  # fmt: skip
    inner = sum(1 for c in calls if c.in_batch)
    delta_pages = [c for c in top if "/calendarview/delta" in c.path.casefold()]
    graph_seconds = sum(c.duration for c in top)
    # The delta phase ends with the last page; what follows is the round's other work.
    delta_end = max((c.at + c.duration for c in delta_pages), default=result["started"])
    delta_seconds = delta_end - result["started"]
    after_delta = [c for c in top if c.at > delta_end]
    during = max((kb for at, kb in result["timeline"] if at <= delta_end), default=0) / 1024
    report = result["report"]
    log(f"{backend.name}: ingest: {events:,} events in {seconds:.1f} s = {rate:,.0f}/s; "
        f"peak memory +{growth:.1f} MB; Graph calls {dict(kinds)} + {inner} in $batch")  # fmt: skip
    note = (
        f"{report['applied']:,} applied (an event applied twice counts twice), "
        f"{report['failed']} failed; {seconds:.1f} s wall, {result['cpu_seconds']:.1f} s CPU in "
        f"the worker process; delta pages until {delta_seconds:.1f} s "
        f"({events / max(delta_seconds, 1e-9):,.0f} events/s), then {len(after_delta):,} more "
        f"calls; Graph calls: {kinds['delta page']:,} delta pages, {kinds['$batch']:,} $batch "
        f"({inner:,} GETs inside), {kinds['other']:,} other; the stand-in spent "
        f"{graph_seconds:.1f} s answering; events created through its API in "
        f"{create_seconds:.1f} s"
    )
    after_kb = (result["rss_peak_mb"] - max(during, result["rss_before_mb"])) * 1024 / events
    memory_note = (
        f"RSS {result['rss_before_mb']:.0f} MB before, at most {during:.0f} MB until the last "
        f"delta page, peak {result['rss_peak_mb']:.0f} MB ({result['peak_from']}) after it "
        f"({after_kb:.1f} KB per event), {result['rss_after_mb']:.0f} MB at the end"
    )
    target = TARGET_EVENTS_PER_SECOND if not backend.is_postgres else None
    case = f"full reconciliation, {events:,} single events in one mailbox"
    figures: list[Measurement] = [
        Figure("ingest", backend.name, f"events/s, {case}", rate, "events/s",
               target=target, at_least=True, note=note),
        Figure("ingest", backend.name, f"memory growth, {case}", growth, "MB",
               target=TARGET_MEMORY_MB, note=memory_note),
    ]  # fmt: skip
    if events < FULL_SIZE:
        # The target is for a mailbox of FULL_SIZE events: what this run's growth per event
        # makes of it (what grows with the events, on top of what the run needed anyway).
        fixed = max(during, result["rss_before_mb"]) - result["rss_before_mb"]
        projected = fixed + after_kb * FULL_SIZE / 1024
        figures.append(
            Figure("ingest", backend.name,
                   f"memory growth projected to {FULL_SIZE:,} events from this run",
                   projected, "MB", target=TARGET_MEMORY_MB,
                   note=f"{fixed:.0f} MB + {after_kb:.1f} KB per event x {FULL_SIZE:,}")
        )  # fmt: skip
    return figures


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.stdin.read()))))
