"""Webhook acknowledgement benchmark: Graph change notifications against gunicorn, as deployed.

The product runs as production runs it: `gunicorn 'wsgi:create_app()'` from the repository root,
so gunicorn.conf.py applies (2 sync workers: one request at a time each, no keep-alive), with
APP_ENV=production; the queue is Huey on SQLite, or on Redis in the PostgreSQL pass. An
organization has 100 watched mailboxes with their subscriptions. 32 concurrent senders (wrk, or
Python threads when wrk is missing) POST changeNotificationCollections of one item each, every
item for a different change (its own etag), with the subscription's clientState. Nothing consumes
the queue meanwhile. The same load against a Flask route that only answers 202
(bench/bare_app.py), under the same gunicorn configuration, is the floor to compare with. Both
are served at once and loaded in turns, round by round (ROUNDS), so both see the same machine.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import math
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
from huey import Huey
from sqlalchemy import func, select

import bootstrap
from bench.common import Backend, Figure, Measurement, Result, free_port, log, summarize
from services import organizations
from services.tables import InboundNotification, Mailbox, Provider, Subscription

ROOT = Path(__file__).resolve().parent.parent
TARGET_P99_MS = 100.0
THROUGHPUT_SHARE = 0.5  # of the bare route's requests/s
MAILBOXES = 100
EVENTS_PER_MAILBOX = 5
SENDERS = 32
# The measured seconds are split into rounds, taken in turns with the bare route: this VM's
# speed drifts by tens of percent within a minute, and a share needs both sides to see it.
ROUNDS = 4
PATH = "/webhooks/graph/notifications"
DOMAIN = "contoso.example"
# What production runs: gunicorn.conf.py (2 sync workers) and nothing else on the command line.
PRODUCTION_ARGS: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Watched:
    """One watched mailbox as Graph knows it: its subscription, secret, user and events."""

    subscription_id: str
    client_state: str
    user_id: str
    event_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Load:
    """What one load run measured."""

    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    failures: int  # non-2xx answers, timeouts, connection errors
    sender_cpu: float  # CPU seconds the senders used
    machine_busy: float  # share of all cores busy during the run, 0..1
    server_cpu: float  # CPU seconds of the gunicorn master and workers
    tool: str
    # The machine's 1-minute load average when the run ended: the machine may be shared, and
    # latency and requests/s move with it (CPU per request much less).
    load_average: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    pid: int


# --------------------------------------------------------------------------- serving


def queue_url(backend: Backend) -> str | None:
    """Redis in the PostgreSQL pass (tests/backends.sh starts one), as production pairs them."""
    return os.environ.get("TEST_REDIS_URL") if backend.is_postgres else None


def app_environment(backend: Backend, **extra: str) -> dict[str, str]:
    """The environment a production web process gets, pointed at the benchmark's database."""
    inherited = ("MS_", "GRAPH_", "TEST_", "DATABASE_URL", "REDIS_URL", "ADDIN_ID", "APP_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    settings = backend.container.settings
    env.update(
        DATABASE_URL=backend.url,
        INSTANCE_PATH=str(settings.instance_path),
        SECRET_KEY=settings.secret_key,
        APP_ENV="production",
        PUBLIC_BASE_URL="https://crm.example",
    )
    redis = queue_url(backend)
    if redis:
        env["REDIS_URL"] = redis
    env.update(extra)
    return env


def queue_of(backend: Backend) -> Huey:
    """The queue the served app writes to (same SQLite file or Redis)."""
    settings = backend.container.settings
    return bootstrap.make_queue(
        bootstrap.Settings(
            database_url=backend.url,
            redis_url=queue_url(backend),
            instance_path=settings.instance_path,
            secret_key=settings.secret_key,
        )
    )


@contextlib.contextmanager
def gunicorn(
    app: str, env: Mapping[str, str], log_path: Path, args: Sequence[str] = PRODUCTION_ARGS
) -> Iterator[Server]:
    """`python -m gunicorn ... APP` from the repository root (gunicorn.conf.py applies)."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *args, app]
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=dict(env), stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{url}/healthz", process, log_path)
        yield Server(url, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {log_path.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer at {url}: {log_path.read_text()[-3000:]}")


# --------------------------------------------------------------------------- CPU accounting


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def process_tree_seconds(root_pid: int) -> float:
    """User + system CPU seconds of a process and its direct children (gunicorn's workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        if root_pid in (pid, ppid):
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


# --------------------------------------------------------------------------- data


def _graph_id() -> str:
    return "AAMkAD" + base64.urlsafe_b64encode(secrets.token_bytes(42)).decode().rstrip("=") + "="


def seed(backend: Backend, mailboxes: int = MAILBOXES) -> tuple[str, list[Watched]]:
    """An organization with watched mailboxes and live subscriptions, as connecting leaves it."""
    tenant = str(uuid.uuid4())
    now = dt.datetime.now(dt.UTC)
    watched: list[Watched] = []
    with backend.container.uow() as uow:
        org = organizations.create_organization(
            uow, name="Bench Webhooks", own_domains=[DOMAIN], ms_tenant_id=tenant
        )
        for number in range(mailboxes):
            user_id = str(uuid.uuid4())
            address = f"user{number:03d}@{DOMAIN}"
            item = Watched(
                subscription_id=str(uuid.uuid4()),
                client_state=secrets.token_urlsafe(32),
                user_id=user_id,
                event_ids=tuple(_graph_id() for _ in range(EVENTS_PER_MAILBOX)),
            )
            uow.session.add(
                Mailbox(
                    org_id=org.id,
                    provider=Provider.MICROSOFT,
                    address=address,
                    external_id=user_id,
                    display_name=f"User {number}",
                )
            )
            uow.session.add(
                Subscription(
                    org_id=org.id,
                    provider=Provider.MICROSOFT,
                    kind="mailbox_events",
                    mailbox=address,
                    external_id=item.subscription_id,
                    resource=f"/users/{user_id}/events",
                    secret=item.client_state,
                    expires_at=now + dt.timedelta(days=3),
                )
            )
            watched.append(item)
        uow.commit()
    return tenant, watched


def _expiry() -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.0000000Z"


def notification_body(
    tenant: str, mailbox: Watched, event_id: str, etag: str, notification_id: str
) -> bytes:
    """A changeNotificationCollection of one item, byte for byte in Graph's shape."""
    resource = f"Users/{mailbox.user_id}/Events/{event_id}"
    item = {
        "id": notification_id,
        "subscriptionId": mailbox.subscription_id,
        "subscriptionExpirationDateTime": _expiry(),
        "clientState": mailbox.client_state,
        "changeType": "updated",
        "resource": resource,
        "tenantId": tenant,
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": resource,
            "@odata.etag": f'W/"{etag}"',
            "id": event_id,
        },
    }
    return json.dumps({"value": [item]}, separators=(",", ":")).encode()


# --------------------------------------------------------------------------- load: wrk

_LUA = r"""
local subs = {
%(subs)s
}
-- The body with @X@ placeholders, made by notification_body(); tenant and expiry are filled in.
local template = [==[%(template)s]==]
local headers = {["Content-Type"] = "application/json"}
local threads = 0
local counter = 0
local prefix = ""
local fields = {}

function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function init(args)
  prefix = string.format("%%s%%02d", args[1] or "r", thread_number or 0)
end

function request()
  counter = counter + 1
  local s = subs[(counter %% #subs) + 1]
  local tag = string.format("%%s%%08X", prefix, counter)
  fields.N = "N" .. tag
  fields.S = s[1]
  fields.C = s[2]
  fields.U = s[3]
  fields.E = s[4][(math.floor(counter / #subs) %% #s[4]) + 1]
  fields.G = "DwAAABYAAAC" .. tag  -- a new etag: every request is another change
  local body = template:gsub("@(%%u)@", fields)
  return wrk.format("POST", nil, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d %%d %%d %%d\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    math.floor(latency.mean)))
end
"""


def _lua_script(tenant: str, watched: Sequence[Watched]) -> str:
    def quoted(values: Sequence[str]) -> str:
        return ", ".join(f'"{v}"' for v in values)

    subs = ",\n".join(
        f'  {{"{w.subscription_id}", "{w.client_state}", "{w.user_id}", {{{quoted(w.event_ids)}}}}}'
        for w in watched
    )
    placeholders = Watched("@S@", "@C@", "@U@", ())
    template = notification_body(tenant, placeholders, "@E@", "@G@", "@N@").decode()
    return _LUA % {"subs": subs, "template": template.replace("%", "%%")}


def _wrk_load(url: str, script: Path, seconds: float, tag: str, server_pid: int) -> Load:
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0, total0 = _machine_ticks()
    server0 = process_tree_seconds(server_pid)
    command = ["wrk", "-t1", f"-c{SENDERS}", f"-d{max(1, round(seconds))}s", "--timeout", "10s"]
    command += ["-s", str(script), url + PATH, "--", tag]
    finished = subprocess.run(command, capture_output=True, text=True, check=True)
    server1 = process_tree_seconds(server_pid)
    busy1, total1 = _machine_ticks()
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in finished.stdout.splitlines() if x.startswith("RESULT "))
    count, duration_us, errors, statuses, p50, p95, p99, worst, _mean = (
        float(v) for v in line.split()[1:]
    )
    sender_cpu = (after_children.ru_utime - before_children.ru_utime) + (
        after_children.ru_stime - before_children.ru_stime
    )
    return Load(
        requests=int(count),
        seconds=duration_us / 1e6,
        p50_ms=p50 / 1000,
        p95_ms=p95 / 1000,
        p99_ms=p99 / 1000,
        max_ms=worst / 1000,
        failures=int(errors + statuses),
        sender_cpu=sender_cpu,
        machine_busy=(busy1 - busy0) / max(1, total1 - total0),
        server_cpu=server1 - server0,
        tool="wrk -t1 -c32",
        load_average=os.getloadavg()[0],
    )


# --------------------------------------------------------------------------- load: Python


def _python_load(
    url: str, tenant: str, watched: Sequence[Watched], seconds: float, tag: str, server_pid: int
) -> Load:
    """The fallback without wrk: 32 threads, one requests.Session each, closed loop."""
    latencies: list[list[float]] = [[] for _ in range(SENDERS)]
    failures = [0] * SENDERS
    stop = time.monotonic() + seconds
    cpu0 = time.process_time()
    busy0, total0 = _machine_ticks()
    server0 = process_tree_seconds(server_pid)

    def sender(number: int) -> None:
        counter = 0
        with requests.Session() as session:
            session.trust_env = False
            while time.monotonic() < stop:
                counter += 1
                mailbox = watched[(counter * SENDERS + number) % len(watched)]
                event = mailbox.event_ids[counter % len(mailbox.event_ids)]
                unique = f"{tag}{number:02d}{counter:08X}"
                body = notification_body(tenant, mailbox, event, f"DwAAABYAAAC{unique}", unique)
                started = time.perf_counter()
                try:
                    answer = session.post(
                        url + PATH,
                        data=body,
                        headers={"Content-Type": "application/json"},
                        timeout=10,
                    )
                    ok = answer.status_code == 202
                except requests.RequestException:
                    ok = False
                latencies[number].append((time.perf_counter() - started) * 1000)
                failures[number] += not ok

    started = time.monotonic()
    threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    busy1, total1 = _machine_ticks()
    samples = [x for per_thread in latencies for x in per_thread]
    result = summarize("", "", "", samples, math.inf)
    return Load(
        requests=len(samples),
        seconds=elapsed,
        p50_ms=result.p50,
        p95_ms=result.p95,
        p99_ms=result.p99,
        max_ms=max(samples),
        failures=sum(failures),
        sender_cpu=time.process_time() - cpu0,
        machine_busy=(busy1 - busy0) / max(1, total1 - total0),
        server_cpu=process_tree_seconds(server_pid) - server0,
        tool="32 Python threads",
        load_average=os.getloadavg()[0],
    )


# --------------------------------------------------------------------------- the benchmark


def _load(
    server: Server, tenant: str, watched: Sequence[Watched], script: Path, seconds: float, tag: str
) -> Load:
    if shutil.which("wrk"):
        return _wrk_load(server.url, script, seconds, tag, server.pid)
    return _python_load(server.url, tenant, watched, seconds, tag, server.pid)


def _interleaved(
    env: Mapping[str, str],
    workdir: Path,
    tenant: str,
    watched: Sequence[Watched],
    *,
    seconds: float,
    warmup: float,
    args: Sequence[str],
) -> tuple[Load, list[Load], list[Load]]:
    """The product and the bare route, both served, loaded in turns: a warm-up each, then
    ROUNDS rounds of `seconds / ROUNDS` each in the order P B B P P B B P (each route as often
    first as second), so that both see the same machine. Returns the product's warm-up and
    each route's rounds."""
    script = workdir / "notifications.lua"
    script.write_text(_lua_script(tenant, watched))
    served = [
        gunicorn(app, env, workdir / f"gunicorn-{app.split(':')[0]}.log", args)
        for app in ("wsgi:create_app()", "bench.bare_app:create_app()")
    ]
    rounds: tuple[list[Load], list[Load]] = ([], [])
    with served[0] as product, served[1] as bare:
        servers = (product, bare)
        warm = _load(product, tenant, watched, script, warmup, "w")
        _load(bare, tenant, watched, script, warmup, "w")
        for number in range(ROUNDS):
            order = (0, 1) if number % 2 == 0 else (1, 0)
            for which in order:
                tag = f"{'mb'[which]}{number}"
                load = _load(servers[which], tenant, watched, script, seconds / ROUNDS, tag)
                rounds[which].append(load)
    return warm, rounds[0], rounds[1]


def _combined(rounds: Sequence[Load]) -> Load:
    """One route's rounds as one load: counts and times added up; p50 the rounds' median,
    p95, p99 and max the worst round's (percentiles of separate runs do not combine)."""
    seconds = sum(r.seconds for r in rounds)
    return Load(
        requests=sum(r.requests for r in rounds),
        seconds=seconds,
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p95_ms=max(r.p95_ms for r in rounds),
        p99_ms=max(r.p99_ms for r in rounds),
        max_ms=max(r.max_ms for r in rounds),
        failures=sum(r.failures for r in rounds),
        sender_cpu=sum(r.sender_cpu for r in rounds),
        machine_busy=sum(r.machine_busy * r.seconds for r in rounds) / seconds if seconds else 0,
        server_cpu=sum(r.server_cpu for r in rounds),
        tool=rounds[0].tool,
        load_average=rounds[-1].load_average,
    )


def _describe(load: Load) -> str:
    cores = os.cpu_count() or 1
    per_request = load.server_cpu / max(1, load.requests) * 1000
    return (
        f"{load.rate:,.0f} req/s; gunicorn used {load.server_cpu / load.seconds:.0%} of one core "
        f"({per_request:.1f} ms CPU per request), the senders ({load.tool}) "
        f"{load.sender_cpu / load.seconds:.0%}; machine busy {load.machine_busy:.0%} of "
        f"{cores} cores; load average {load.load_average:.2f}; failures {load.failures}"
    )


def run(
    backend: Backend, *, seconds: float, warmup: float, args: Sequence[str] = PRODUCTION_ARGS
) -> list[Measurement]:
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-webhook-"))
    try:
        return _run(backend, workdir, seconds=seconds, warmup=warmup, args=args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(
    backend: Backend, workdir: Path, *, seconds: float, warmup: float, args: Sequence[str]
) -> list[Measurement]:
    tenant, watched = seed(backend)
    queue = queue_of(backend)
    queue.flush()
    env = app_environment(backend)
    config = " ".join(args) if args else "gunicorn.conf.py: 2 sync workers"
    log(
        f"{backend.name}: webhook load, {SENDERS} senders, {seconds:g} s per route in {ROUNDS} "
        f"rounds taken in turns with the bare route ({config})"
    )
    warm, product_rounds, bare_rounds = _interleaved(
        env, workdir, tenant, watched, seconds=seconds, warmup=warmup, args=args
    )
    product, bare = _combined(product_rounds), _combined(bare_rounds)
    with backend.container.uow(read_only=True) as uow:
        recorded = uow.session.scalar(select(func.count()).select_from(InboundNotification))
        flagged = uow.session.scalar(
            select(func.count()).select_from(Mailbox).where(Mailbox.sync_queued_at.is_not(None))
        )
    pending = queue.pending_count()
    queue.flush()
    log(f"{backend.name}: webhook {_describe(product)}; p99 {product.p99_ms:.1f} ms")
    log(f"{backend.name}: bare route {_describe(bare)}; p99 {bare.p99_ms:.1f} ms")
    shares = ", ".join(
        f"{p.rate / b.rate:.0%}" for p, b in zip(product_rounds, bare_rounds, strict=True)
    )

    answered = warm.requests + product.requests
    queue_note = (
        f"{recorded:,} notifications recorded, {answered:,} answers counted (warm-up included; "
        "wrk does not count the requests in flight when it stops); "
        f"{pending} sync jobs on the queue and {flagged} mailboxes flagged: coalescing keeps the "
        "queue at one job per mailbox however many notifications arrive"
    )
    case = f"1-item batches, {SENDERS} senders, {len(watched)} mailboxes ({config})"
    share = product.rate / bare.rate if bare.rate else 0.0
    return [
        Result(
            "webhook", backend.name, f"POST {PATH}, {case}", product.requests,
            product.p50_ms, product.p95_ms, product.p99_ms, TARGET_P99_MS,
            note=f"{_describe(product)}; max {product.max_ms:.0f} ms. {queue_note}",
        ),
        Result(
            "webhook", backend.name, "bare Flask route answering 202, same load and gunicorn",
            bare.requests, bare.p50_ms, bare.p95_ms, bare.p99_ms, math.inf,
            note=f"{_describe(bare)}; max {bare.max_ms:.0f} ms",
        ),
        Figure(
            "webhook", backend.name, "throughput, product route", product.rate, "req/s",
            target=THROUGHPUT_SHARE * bare.rate, at_least=True,
            note=f"{share:.0%} of the bare route's {bare.rate:,.0f} req/s (round by round: "
            f"{shares})",
        ),
    ]  # fmt: skip
