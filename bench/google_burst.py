"""Google notification burst benchmark: 1,000 changed events over 50 Workspace users (issue 5).

As bench/burst.py does for Graph, everything runs as in production, against the Google stand-in
(tests/standins/google.py, over HTTPS with a throw-away CA): the app under gunicorn with
gunicorn.conf.py, and a real worker process (`flask --app wsgi worker`, 2 threads) on the same
queue (Huey on SQLite, or on Redis in the PostgreSQL pass). PUBLIC_BASE_URL is https://crm.test,
which the stand-in maps to gunicorn. Gmail push is not configured (no GOOGLE_PUBSUB_TOPIC): only
Calendar channels are measured.

Setup as an admin does it: `POST /api/v1/admin/google/connect {"domain": ...}`; the worker lists
the domain's users (Directory), opens one Calendar channel per user (the stand-in sends each its
`sync` message through gunicorn) and runs each user's first full sync. Then 1,000 meetings, each
with an external attendee, are created over the users and announced; the benchmark waits until
the CRM has an activity for every one.

The burst: every event changes once (its summary names the round); then Google's pushes go out,
header-only POSTs (`X-Goog-Resource-State: exists`), one per changed event on its calendar,
four in flight at a time. Measured: the time from the first POST until every activity shows the
new subject, the syncs the worker ran (Calendar list calls with a syncToken) and every Google
call.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import shutil
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from sqlalchemy import select

import bootstrap
from bench import webhook
from bench.burst import _counts, _sync_runs, _wait, worker
from bench.common import Backend, Figure, Measurement, log
from services import auth, organizations
from services.tables import Activity, Provider, ProviderLink
from tests.standins import google_standins
from tests.standins.google import Google, GoogleRequest

PUBLIC_BASE_URL = "https://crm.test"
DOMAIN = "contoso.example"
ADMIN = f"admin@{DOMAIN}"
USERS = 50
EVENTS = 1_000
POSTS_IN_FLIGHT = 4
CONNECT_TIMEOUT = 300.0
CONVERGE_TIMEOUT = 300.0


def run(backend: Backend, *, events: int = EVENTS, users: int = USERS) -> list[Measurement]:
    from gmail.client import SCOPES

    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-gburst-"))
    try:
        with google_standins(workdir) as standins:
            google = standins.google
            key = google.write_service_account_file(workdir / "service-account.json")
            google.grant_delegation(key["client_id"], SCOPES)
            google.add_user(ADMIN, "Admin", time_zone="Europe/Oslo")
            google.set_admin(ADMIN)
            return _run(backend, google, standins.environment(), workdir, events, users)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _subject(number: int, round_: int) -> str:
    return f"Renewal {number:04d} r{round_}"


def _subjects(backend: Backend, org_id: int) -> dict[str, str]:
    with backend.container.uow(read_only=True) as uow:
        rows = uow.session.execute(
            select(ProviderLink.provider_event_id, Activity.subject)
            .join(Activity, Activity.id == ProviderLink.activity_id)
            .where(ProviderLink.org_id == org_id, ProviderLink.provider == Provider.GOOGLE)
        ).all()
    return {str(event_id): str(subject) for event_id, subject in rows}


def _run(
    backend: Backend,
    google: Google,
    environment: dict[str, str],
    workdir: Path,
    total: int,
    watched: int,
) -> list[Measurement]:
    addresses = [f"user{n:03d}@{DOMAIN}" for n in range(watched)]
    for address in addresses:
        google.add_user(address, time_zone="Europe/Oslo")
    calendars = watched + 1  # the admin is a user of the domain too
    with backend.container.uow() as uow:
        org = organizations.create_organization(uow, name="Bench Google", own_domains=[DOMAIN])
        person = organizations.add_user(uow, org_id=org.id, email=ADMIN)
        issued = auth.create_api_key(uow, org_id=org.id, name="bench", user_email=person.email)
        uow.commit()
        org_id, api_key = org.id, issued.token
    env = webhook.app_environment(
        backend,
        **environment,
        GOOGLE_ADMIN_EMAIL=ADMIN,
        PUBLIC_BASE_URL=PUBLIC_BASE_URL,
        LOG_LEVEL="WARNING",
    )
    container = bootstrap.build(bootstrap.Settings.from_env(env))
    container.queue.flush()
    try:
        with (
            webhook.gunicorn("wsgi:create_app()", env, workdir / "gunicorn.log") as server,
            worker(env, workdir / "worker.log") as consumer,
        ):
            google.route(PUBLIC_BASE_URL, server.url)
            log(f"{backend.name}: google burst: connecting {calendars} calendars (admin API)")
            started = time.monotonic()
            answer = requests.post(
                f"{server.url}/api/v1/admin/google/connect",
                json={"domain": DOMAIN},
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=30,
            )
            if answer.status_code != 202:
                raise RuntimeError(f"connect answered {answer.status_code}: {answer.text}")
            _wait(
                lambda: (
                    len(google.live_channels()) >= calendars
                    and _counts(backend, org_id)[0] >= calendars
                ),
                CONNECT_TIMEOUT,
                "a channel and a first sync for every calendar",
            )
            connect_seconds = time.monotonic() - started
            log(f"{backend.name}: google burst: connected in {connect_seconds:.1f} s")

            events = _create_events(google, addresses, total)
            created_at = time.monotonic()
            statuses, _ = _send(google)
            _wait(
                lambda: len(_subjects(backend, org_id)) >= total,
                CONVERGE_TIMEOUT,
                "an activity for every new event",
            )
            create_seconds = time.monotonic() - created_at
            log(f"{backend.name}: google burst: {total:,} events created and synced in "
                f"{create_seconds:.1f} s (POST answers {dict(statuses)})")  # fmt: skip
            _settle(backend, container, org_id)
            processes = {"worker": consumer.pid, "gunicorn": server.pid}
            return _burst(backend, google, container, org_id, events, processes, calendars)
    finally:
        container.queue.flush()
        container.close()


def _create_events(google: Google, addresses: list[str], total: int) -> dict[str, int]:
    """`total` upcoming meetings, round-robin over the users, each with a customer; id -> number."""
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(
        hour=8, minute=0, second=0, microsecond=0, tzinfo=None
    )
    events: dict[str, int] = {}
    for number in range(total):
        organizer = addresses[number % len(addresses)]
        moment = start + dt.timedelta(days=number // len(addresses), hours=number % 8)
        event = google.create_event(
            organizer,
            summary=_subject(number, 0),
            start=moment,
            end=moment + dt.timedelta(minutes=45),
            time_zone="Europe/Oslo",
            attendees=[f"buyer{number}@fabrikam.example"],
            location="Meet",
            description="Agenda: renewal",
        )
        events[str(event["id"])] = number
    return events


def _send(google: Google) -> tuple[Counter[int | None], float]:
    """Google's pushes for what changed: one per queued change, POSTS_IN_FLIGHT at a time."""
    # flush_notifications() sends them one at a time; Google does not wait for each answer.
    pending, google.pending_notifications = google.pending_notifications, []
    statuses: Counter[int | None] = Counter()
    with ThreadPoolExecutor(POSTS_IN_FLIGHT) as senders:
        for answers in senders.map(google.notify, pending):
            statuses.update(answers)
    return statuses, time.monotonic()


def _settle(backend: Backend, container: bootstrap.Container, org_id: int) -> None:
    """Until the creation round left nothing to do: notifications processed, queue empty."""
    with contextlib.suppress(TimeoutError):
        _wait(
            lambda: _counts(backend, org_id)[1] == 0 and container.queue.pending_count() == 0,
            60,
            "the queue to empty",
        )
    time.sleep(1.0)


def _classify(calls: list[GoogleRequest]) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for call in calls:
        if call.path == "/token":
            kinds["token"] += 1
        elif call.method == "GET" and call.path.endswith("/events"):
            if "syncToken" in call.query:
                kinds["events list (syncToken)"] += 1
            elif "pageToken" in call.query:
                kinds["events list (next page)"] += 1
            else:
                kinds["events list (full)"] += 1
        elif "/events/" in call.path:
            kinds[f"event {call.method}"] += 1
        else:
            kinds[f"{call.method} {call.path.rsplit('/', 1)[-1]}"] += 1
        if call.status >= 400:
            kinds[f"answered {call.status}"] += 1
    return kinds


def _burst(
    backend: Backend,
    google: Google,
    container: bootstrap.Container,
    org_id: int,
    events: dict[str, int],
    processes: dict[str, int],
    calendars: int,
) -> list[Measurement]:
    total = len(events)
    log(f"{backend.name}: google burst: changing {total:,} events, then {total:,} pushes")
    expected = {event_id: _subject(number, 1) for event_id, number in events.items()}
    cpu_before = {name: webhook.process_tree_seconds(pid) for name, pid in processes.items()}
    runs_before = _sync_runs(backend)
    calls_before = len(google.requests)
    tokens_before = google.count_token_requests()
    for event_id, subject in expected.items():
        google.update_event(event_id, summary=subject)
    pushes = len(google.pending_notifications)

    def current() -> bool:
        found = _subjects(backend, org_id)
        return all(found.get(event_id) == subject for event_id, subject in expected.items())

    # The pushes go out from their own threads while this one polls the CRM: the activities
    # may be current before the last push is answered (every change precedes the first push).
    with ThreadPoolExecutor(1) as sender:
        first_sent = time.monotonic()
        sending = sender.submit(_send, google)
        try:
            current_at = _wait(current, CONVERGE_TIMEOUT, "every activity to show the new subject")
            converged = True
        except TimeoutError:
            current_at, converged = time.monotonic(), False
        statuses, last_sent = sending.result()
    log(f"{backend.name}: google burst: {pushes:,} pushes sent in {last_sent - first_sent:.1f} s, "
        f"answers {dict(statuses)}")  # fmt: skip
    _settle(backend, container, org_id)
    calls = list(google.requests[calls_before:])
    cpu = {n: webhook.process_tree_seconds(p) - cpu_before[n] for n, p in processes.items()}
    kinds = _classify(calls)
    api_calls = sum(1 for c in calls if c.path != "/token")
    syncs = kinds["events list (syncToken)"]
    sync_runs = _sync_runs(backend) - runs_before
    tokens = google.count_token_requests() - tokens_before
    first_call = min((c.at for c in calls if c.path != "/token"), default=current_at)
    elapsed = current_at - first_sent
    current_now = sum(1 for e, s in _subjects(backend, org_id).items() if expected.get(e) == s)
    split = ", ".join(f"{v:,} {k}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]))
    log(f"{backend.name}: google burst: current after {elapsed:.1f} s; Google calls: {split}")
    case = f"{total:,} changed events, {calendars - 1} users"
    failures = sum(v for k, v in statuses.items() if k != 200)
    per_push = api_calls / pushes if pushes else math.nan
    note = (
        f"{'' if converged else f'NOT CONVERGED ({current_now} of {total} current); '}"
        f"{pushes:,} pushes sent in {last_sent - first_sent:.1f} s ({failures} not answered "
        f"200); current {current_at - last_sent:+.1f} s after the last push was answered; "
        f"first Google call {first_call - first_sent:.1f} s after the first push; "
        f"{sync_runs} sync runs; "
        f"{tokens} token requests; Google calls: {split}; "
        f"CPU: worker {cpu['worker']:.1f} s, gunicorn {cpu['gunicorn']:.1f} s"
    )
    broken = not converged or failures > 0
    return [
        Figure("google-burst", backend.name, f"until every activity is current, {case}",
               math.inf if broken else elapsed, "s",
               target=CONVERGE_TIMEOUT if broken else None, note=note),
        Figure("google-burst", backend.name, f"syncs (events list with syncToken), {case}",
               syncs, "syncs"),
        Figure("google-burst", backend.name, f"Google API calls (no token calls), {case}",
               api_calls, "calls", note=f"{per_push:.3f} calls per push"),
    ]  # fmt: skip
