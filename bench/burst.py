"""Notification burst benchmark: 10,000 Graph change notifications over 100 mailboxes.

Everything runs as in production, against the Graph and Entra stand-ins (tests/standins): the
app under gunicorn with gunicorn.conf.py (webhooks), and a real worker process
(`flask --app wsgi worker`, 2 threads) on the same queue (Huey on SQLite, or on Redis in the
PostgreSQL pass). Setup connects the tenant the way an admin does: the worker lists the
mailboxes, subscribes each (the stand-in validates the notification URLs against gunicorn) and
reconciles each once, which imports every mailbox's events.

The burst: every event of every mailbox changes (its subject names the round), round after
round; after each round Graph announces the changes in changeNotificationCollections of 100
items, four POSTs in flight at a time, each item with the etag of the change. Measured: the time
from the first notification sent until every activity in the CRM shows the last round, and the
Graph calls the worker made for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

import bootstrap
from bench import webhook
from bench.common import Backend, Figure, Measurement, log
from services import mailboxes, metrics, organizations
from services.tables import Activity, InboundNotification, ProviderLink, SyncState
from tests.standins import MicrosoftStandIns, microsoft_standins
from tests.standins.graph import GraphRequest, GraphUser

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "6c1f4a7e-2b9d-4e8a-9f3c-5d7e8a9b0c1d"
CLIENT_SECRET = "bench-graph-app-secret"  # noqa: S105 - the stand-in's, made up here
ADDIN_ID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
PUBLIC_BASE_URL = "https://crm.test"
DOMAIN = "contoso.example"
MAILBOXES = 100
EVENTS_PER_MAILBOX = 5
ITEMS_PER_POST = 100
POSTS_IN_FLIGHT = 4
CONNECT_TIMEOUT = 300.0
CONVERGE_TIMEOUT = 600.0
_EVENT_GET = re.compile(r"/users/[^/]+/events/[^/]+", re.IGNORECASE)


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set variables in this process (msal and requests read the CA bundle from there)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def graph_environment(ms: MicrosoftStandIns) -> dict[str, str]:
    """What a deployment sets to reach Graph, pointed at the stand-ins."""
    return {
        **ms.environment(),
        "MS_CLIENT_ID": CLIENT_ID,
        "MS_CLIENT_SECRET": CLIENT_SECRET,
        "ADDIN_ID": ADDIN_ID,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    }


@contextlib.contextmanager
def worker(env: Mapping[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`flask --app wsgi worker` (2 worker threads, periodic tasks on), as `make worker` runs."""
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "worker"]
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=dict(env), stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclasses.dataclass(frozen=True, slots=True)
class _Event:
    id: str
    owner: str  # the stand-in user id of the mailbox
    mailbox: int  # number of the mailbox
    index: int  # number of the event in its mailbox


def _create_events(ms: MicrosoftStandIns, users: list[GraphUser]) -> list[_Event]:
    """A few upcoming meetings with customers in every mailbox."""
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(
        hour=8, minute=0, second=0, microsecond=0, tzinfo=None
    )
    events: list[_Event] = []
    for number, user in enumerate(users):
        for index in range(EVENTS_PER_MAILBOX):
            moment = start + dt.timedelta(days=index, hours=number % 8)
            event = ms.graph.create_event(
                user,
                start=moment,
                end=moment + dt.timedelta(minutes=45),
                subject=_subject(number, index, 0),
                time_zone="Europe/Oslo",
                attendees=[f"buyer{number}@fabrikam.example", f"cfo{index}@fabrikam.example"],
                location="Teams",
                body="<p>Agenda: renewal</p>",
            )
            events.append(_Event(event["id"], user.id, number, index))
    ms.graph.pending_notifications.clear()  # announced by nobody: the connect imports them
    return events


def _subject(mailbox: int, event: int, round_: int) -> str:
    return f"Renewal {mailbox:03d}-{event} r{round_}"


def _subjects(backend: Backend, org_id: int) -> dict[str, str]:
    with backend.container.uow(read_only=True) as uow:
        rows = uow.session.execute(
            select(ProviderLink.provider_event_id, Activity.subject)
            .join(Activity, Activity.id == ProviderLink.activity_id)
            .where(ProviderLink.org_id == org_id)
        ).all()
    return {str(event_id): str(subject) for event_id, subject in rows}


def _counts(backend: Backend, org_id: int) -> tuple[int, int]:
    """(mailboxes synced at least once, notifications still pending)."""
    with backend.container.uow(read_only=True) as uow:
        synced = uow.session.scalar(
            select(func.count())
            .select_from(SyncState)
            .where(SyncState.org_id == org_id, SyncState.last_success_at.is_not(None))
        )
        pending = uow.session.scalar(
            select(func.count())
            .select_from(InboundNotification)
            .where(InboundNotification.org_id == org_id, InboundNotification.status == "pending")
        )
    return int(synced or 0), int(pending or 0)


def _sync_runs(backend: Backend) -> int:
    with backend.container.uow(read_only=True) as uow:
        counters = metrics.snapshot_counters(uow)
    return sum(v for k, v in counters.items() if k.startswith("mtc_sync_runs_total"))


def _wait(condition: Any, timeout: float, what: str, poll: float = 0.25) -> float:
    """Poll until condition() is true; returns the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _classify(calls: list[GraphRequest]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for call in calls:
        if call.in_batch:
            kinds["requests inside $batch"] += 1
            continue
        path = call.path.casefold()
        if path.startswith("/$batch"):
            kinds["$batch"] += 1
        elif call.method == "GET" and _EVENT_GET.fullmatch(call.path):
            kinds["event GET"] += 1
        elif path.endswith("/instances"):
            kinds["instances"] += 1
        elif "/calendarview/delta" in path:
            kinds["delta"] += 1
        else:
            kinds[f"{call.method} {path.split('/')[1] if '/' in path else path}"] += 1
        if call.status == 429:
            kinds["throttled (429)"] += 1
    return kinds


def run(backend: Backend, *, notifications: int, mailboxes: int = MAILBOXES) -> list[Measurement]:
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-burst-"))
    try:
        with microsoft_standins(workdir) as ms, _environ(ms.environment()):
            return _run(backend, ms, workdir, notifications, mailboxes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(
    backend: Backend, ms: MicrosoftStandIns, workdir: Path, notifications: int, watched: int
) -> list[Measurement]:
    graph = ms.graph
    ms.entra.register_app(CLIENT_ID, CLIENT_SECRET)
    users = [graph.add_user(f"user{n:03d}@{DOMAIN}") for n in range(watched)]
    events = _create_events(ms, users)
    rounds = max(1, notifications // len(events))

    with backend.container.uow() as uow:
        org = organizations.create_organization(uow, name="Bench Burst", own_domains=[DOMAIN])
        uow.commit()
        org_id = org.id
    mailboxes.connect_tenant(backend.container.uow, org_id=org_id, tenant_id=ms.entra.tenant_id)

    env = webhook.app_environment(backend, **graph_environment(ms))
    container = bootstrap.build(bootstrap.Settings.from_env(env))
    container.queue.flush()
    try:
        with (
            webhook.gunicorn("wsgi:create_app()", env, workdir / "gunicorn.log") as server,
            worker(env, workdir / "worker.log") as consumer,
        ):
            graph.route(PUBLIC_BASE_URL, server.url)
            log(f"{backend.name}: burst: connecting {watched} mailboxes (worker subscribes)")
            started = time.monotonic()
            container.tasks["refresh_mailboxes"](org_id)
            _wait(
                lambda: (
                    _counts(backend, org_id)[0] >= watched
                    and len(_subjects(backend, org_id)) >= len(events)
                ),
                CONNECT_TIMEOUT,
                "the initial reconciliation of every mailbox",
            )
            connect_seconds = time.monotonic() - started
            log(f"{backend.name}: burst: connected in {connect_seconds:.1f} s")
            processes = {"worker": consumer.pid, "gunicorn": server.pid}
            return _burst(backend, ms, container, org_id, events, rounds, processes)
    finally:
        container.queue.flush()
        container.close()


def _burst(
    backend: Backend,
    ms: MicrosoftStandIns,
    container: bootstrap.Container,
    org_id: int,
    events: list[_Event],
    rounds: int,
    processes: dict[str, int],
) -> list[Measurement]:
    graph = ms.graph
    total = rounds * len(events)
    watched = len({e.owner for e in events})
    log(f"{backend.name}: burst: {total:,} notifications, {rounds} changes of each of "
        f"{len(events)} events in {watched} mailboxes")  # fmt: skip
    expected = {e.id: _subject(e.mailbox, e.index, rounds) for e in events}
    cpu_before = {name: webhook.process_tree_seconds(pid) for name, pid in processes.items()}
    runs_before = _sync_runs(backend)
    tokens_before = len(ms.entra.token_requests)
    calls_before = len(graph.requests)
    statuses: Counter[int | None] = Counter()
    first_sent: float | None = None
    changing = 0.0  # seconds spent changing the stand-in's events between the POSTs
    with ThreadPoolExecutor(POSTS_IN_FLIGHT) as senders:
        for round_ in range(1, rounds + 1):
            started = time.monotonic()
            for event in events:
                subject = _subject(event.mailbox, event.index, round_)
                graph.update_event(event.owner, event.id, subject=subject)
            if first_sent is not None:
                changing += time.monotonic() - started
            pending, graph.pending_notifications = graph.pending_notifications, []
            chunks = [
                pending[i : i + ITEMS_PER_POST] for i in range(0, len(pending), ITEMS_PER_POST)
            ]
            if first_sent is None:
                first_sent = time.monotonic()
            for deliveries in senders.map(graph.notify_changes, chunks):
                statuses.update(d.status for d in deliveries)
    assert first_sent is not None
    last_sent = time.monotonic()
    log(f"{backend.name}: burst: sent in {last_sent - first_sent:.1f} s, answers {dict(statuses)}")

    def current() -> bool:
        found = _subjects(backend, org_id)
        return all(found.get(event_id) == subject for event_id, subject in expected.items())

    try:
        current_at = _wait(current, CONVERGE_TIMEOUT, "every activity to show the last round")
        converged = True
    except TimeoutError:
        current_at, converged = time.monotonic(), False
    # Then until nothing is left to do: notifications processed, queue empty.
    with contextlib.suppress(TimeoutError):
        _wait(
            lambda: _counts(backend, org_id)[1] == 0 and container.queue.pending_count() == 0,
            60,
            "the queue to empty",
        )
    time.sleep(1.0)  # a sync that was already running finishes its calls
    calls = list(graph.requests[calls_before:])
    cpu = {n: webhook.process_tree_seconds(p) - cpu_before[n] for n, p in processes.items()}
    kinds = _classify(calls)
    top_level = sum(v for k, v in kinds.items() if k not in ("requests inside $batch",
                                                               "throttled (429)"))  # fmt: skip
    tokens = len(ms.entra.token_requests) - tokens_before
    syncs = _sync_runs(backend) - runs_before
    first_call = min((r.at for r in calls), default=current_at)
    elapsed = current_at - first_sent
    current_now = sum(1 for e, s in _subjects(backend, org_id).items() if expected.get(e) == s)
    split = ", ".join(f"{v:,} {k}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
    log(f"{backend.name}: burst: current after {elapsed:.1f} s; Graph calls: {split}")
    case = f"{total:,} notifications, {watched} mailboxes x {EVENTS_PER_MAILBOX} events"
    failures = sum(v for k, v in statuses.items() if k != 202)
    note = (
        f"{'' if converged else f'NOT CONVERGED ({current_now} of {len(expected)} current); '}"
        f"sending took {last_sent - first_sent:.1f} s ({changing:.1f} s of it changing events in "
        f"the stand-in; {failures} POSTs not answered 202); "
        f"lag after the last POST {current_at - last_sent:.1f} s; first Graph call "
        f"{first_call - first_sent:.1f} s after the first POST; {syncs} sync runs; "
        f"{tokens} token requests; CPU: worker {cpu['worker']:.1f} s, gunicorn "
        f"{cpu['gunicorn']:.1f} s"
    )
    # No target for the time itself; not converging, or a refused POST, fails the run.
    broken = not converged or failures > 0
    return [
        Figure("burst", backend.name, f"until every activity is current, {case}",
               math.inf if broken else elapsed, "s",
               target=CONVERGE_TIMEOUT if broken else None, note=note),
        Figure("burst", backend.name, f"Graph calls (top level) for {case}", top_level, "calls",
               note=split),
    ]  # fmt: skip
