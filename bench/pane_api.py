"""Task pane API benchmark: company search and attendee suggestions over HTTP, as deployed.

The product runs as production runs it (bench.webhook.gunicorn: `gunicorn 'wsgi:create_app()'`
from the repository root, so gunicorn.conf.py applies: 2 sync workers, APP_ENV=production). The
organization is bench/search.py's: 1,000,000 generated companies (reused when bench/search.py
has just loaded them into the same database, loaded the same way otherwise), plus
CONTACTS contacts with one e-mail each at DOMAIN_COMPANIES companies that have an e-mail domain.

Requests carry an Entra access token, as the task pane sends them: minted by the Entra
stand-in (tests/standins, over HTTPS, MS_AUTHORITY_HOST) for a user of the tenant the
organization is connected to. Every request is validated as in production: signature against
the tenant's keys (fetched once per worker, then cached), claims, tid/oid to organization and
user (the first request creates the CRM user).

Clients are Python threads with one requests.Session each (keep-alive on the client side;
gunicorn's sync workers close the connection after every answer, so each request opens a new
loopback connection, as production without a keep-alive proxy in front does). They send:

- search-as-you-type: GET /api/v1/companies?q=...&limit=20 with bench/search.py's queries
  (first three letters of a word of a name, random case; a whole word plus the start of another);
- suggest: POST /api/v1/suggest with 5 attendees: two known contacts, an unknown person at a
  company's domain, a free-mail address and a colleague at the organization's own domain;

one client at a time (one user typing, closed loop without think time: harsher than a debounced
pane), then CLIENTS clients at once, each sending searches with a suggest every fifth request,
first pausing THINK_MS after each answer (several users typing), then back to back (saturation).
GET /healthz from one client is the floor of HTTP and gunicorn alone.
Latency is measured at the client, end to end: connect, request, server, answer parsed.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import func, insert, select, text

from bench import search
from bench.common import Backend, Result, log, summarize
from bench.webhook import _machine_ticks, app_environment, gunicorn, process_tree_seconds
from services import organizations
from services.tables import Company, CompanyDomain, Contact, ContactEmail, Organization
from tests.standins import MicrosoftStandIns, microsoft_standins

TARGET_MS = 30.0
CONTACTS = 50_000
DOMAIN_COMPANIES = 25_000
CLIENTS = 4
THINK_MS = (100.0, 300.0)  # pause after each answer in the paced concurrent case
SUGGEST_EVERY = 5  # in the concurrent case, one suggest per this many requests
BIG_ORG = "Bench Big"  # bench/search.py's organization
OWN_DOMAIN = "big.example"
FREE_MAIL = ("gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com")
SEARCH_PATH = "/api/v1/companies"
API_CLIENT_ID = "7d6c5b4a-3f2e-4d1c-8b0a-9f8e7d6c5b4a"  # the add-in's app registration (made up)
SUGGEST_PATH = "/api/v1/suggest"


@dataclass(frozen=True, slots=True)
class Org:
    """The benchmark organization: its id, company names, contact e-mails and company domains."""

    id: int
    names: list[str]
    contact_emails: list[str]
    domains: list[str]
    load_note: str


# --------------------------------------------------------------------------- data


def _existing_org(backend: Backend) -> int | None:
    with backend.container.uow(read_only=True) as uow:
        return uow.session.scalar(select(Organization.id).where(Organization.name == BIG_ORG))


def _load_companies(backend: Backend, size: int, rng: random.Random) -> tuple[int, str]:
    with backend.container.uow() as uow:
        org = organizations.create_organization(uow, name=BIG_ORG, own_domains=[OWN_DOMAIN])
        uow.commit()
        org_id = org.id
    names = list(search.company_names(rng, size))
    log(f"{backend.name}: inserting {len(names):,} companies")
    started = time.perf_counter()
    search.bulk_insert(backend, org_id, names)
    seconds = time.perf_counter() - started
    log(f"{backend.name}: inserted and indexed in {seconds:.1f} s")
    return org_id, f"bulk load + index of the companies {seconds:.0f} s"


def _add_contacts(
    backend: Backend, org_id: int, rng: random.Random, contacts: int, domain_companies: int
) -> tuple[list[str], list[str]]:
    """Give `domain_companies` random companies an e-mail domain and spread `contacts` contacts
    with one address each over them; returns (contact e-mails, company domains)."""
    now = dt.datetime.now(dt.UTC)
    with backend.container.uow() as uow:
        ids = list(uow.session.scalars(select(Company.id).where(Company.org_id == org_id)))
        chosen = rng.sample(ids, min(domain_companies, len(ids)))
        domains = [f"c{company_id}.example" for company_id in chosen]
        uow.session.execute(
            insert(CompanyDomain),
            [
                {"org_id": org_id, "company_id": company_id, "domain": domain}
                for company_id, domain in zip(chosen, domains, strict=True)
            ],
        )
        people = []
        for number in range(contacts):
            index = rng.randrange(len(chosen))
            first = rng.choice(search.BRANDS)
            last = f"{rng.choice(search.SURNAMES)}{number:06d}"
            people.append((chosen[index], domains[index], first, last))
        uow.session.execute(
            insert(Contact),
            [
                {
                    "org_id": org_id,
                    "company_id": company_id,
                    "first_name": first,
                    "last_name": last,
                    "sort_name": f"{last} {first}".lower(),
                    "title": "",
                    "phone": "",
                    "created_at": now,
                    "updated_at": now,
                }
                for company_id, _, first, last in people
            ],
        )
        rows = uow.session.execute(
            select(Contact.last_name, Contact.id).where(Contact.org_id == org_id)
        ).all()
        contact_ids = dict(rows)
        emails = [f"person{number:06d}@{domain}" for number, (_, domain, _, _) in enumerate(people)]
        uow.session.execute(
            insert(ContactEmail),
            [
                {"org_id": org_id, "contact_id": contact_ids[last], "email": email, "position": 0}
                for (_, _, _, last), email in zip(people, emails, strict=True)
            ],
        )
        uow.commit()
    # Planner statistics for the new rows, as autovacuum (PostgreSQL) or a periodic ANALYZE
    # would soon gather them after an import.
    with backend.container.engine.connect() as connection:
        connection.execute(text("ANALYZE company_domains"))
        connection.execute(text("ANALYZE contacts"))
        connection.execute(text("ANALYZE contact_emails"))
        connection.commit()
    return emails, domains


def prepare(backend: Backend, *, size: int, contacts: int, seed: int = 20261123) -> Org:
    """The organization to measure: bench/search.py's if it is already loaded, else a new one."""
    rng = random.Random(seed)
    org_id = _existing_org(backend)
    if org_id is None:
        org_id, load_note = _load_companies(backend, size, rng)
    else:
        load_note = "companies loaded by the search benchmark, reused"
        log(f"{backend.name}: reusing the search benchmark's organization")
    started = time.perf_counter()
    emails, domains = _add_contacts(
        backend, org_id, rng, contacts, min(DOMAIN_COMPANIES, max(1, contacts // 2))
    )
    with backend.container.uow(read_only=True) as uow:
        names = list(uow.session.scalars(select(Company.name).where(Company.org_id == org_id)))
        count = uow.session.scalar(
            select(func.count()).select_from(Company).where(Company.org_id == org_id)
        )
    log(
        f"{backend.name}: {count:,} companies, {len(emails):,} contacts at {len(domains):,} "
        f"company domains ({time.perf_counter() - started:.1f} s)"
    )
    return Org(org_id, names, emails, domains, load_note)


def _sign_in(backend: Backend, org_id: int, ms: MicrosoftStandIns) -> tuple[str, dict[str, str]]:
    """Connect the organization to the stand-in's tenant; a user's access token for our API,
    and the settings that make the served app accept it."""
    with backend.container.uow() as uow:
        org = uow.session.get(Organization, org_id)
        assert org is not None
        org.ms_tenant_id = ms.entra.tenant_id
        uow.commit()
    ms.entra.default_audience = API_CLIENT_ID
    user = ms.entra.add_user(f"pat.bench@{OWN_DOMAIN}")
    token = ms.entra.mint_access_token(user=user, lifetime=6 * 3600)
    settings = {
        **ms.environment(),  # tenant, authority host and the stand-in CA for the key fetch
        "MS_CLIENT_ID": API_CLIENT_ID,
        "MS_CLIENT_SECRET": "bench-pane-api-secret",  # the group needs one; no Graph call is made
        "MS_API_AUDIENCE": f"api://crm.example/{API_CLIENT_ID}",
    }
    return token, settings


def suggest_bodies(rng: random.Random, org: Org, count: int) -> list[dict[str, list[str]]]:
    """5 attendees each: two known contacts, a stranger at a company's domain, free-mail, own."""
    bodies = []
    for number in range(count):
        attendees = rng.sample(org.contact_emails, 2)
        attendees.append(f"new.person{number}@{rng.choice(org.domains)}")
        attendees.append(f"someone{number}@{rng.choice(FREE_MAIL)}")
        attendees.append(f"colleague{rng.randrange(200)}@{OWN_DOMAIN}")
        rng.shuffle(attendees)
        bodies.append({"emails": attendees})
    return bodies


# --------------------------------------------------------------------------- load


@dataclass(frozen=True, slots=True)
class Call:
    """One request a client sends: a search query or a suggest body."""

    kind: str  # "search" or "suggest"
    query: str = ""
    body: dict[str, list[str]] | None = None


def _send(session: requests.Session, url: str, call: Call) -> bool:
    if call.kind == "search":
        answer = session.get(url + SEARCH_PATH, params={"q": call.query, "limit": "20"}, timeout=10)
    else:
        answer = session.post(url + SUGGEST_PATH, json=call.body, timeout=10)
    if answer.status_code != 200:
        return False
    answer.json()
    return True


@dataclass(slots=True)
class Outcome:
    samples: dict[str, list[float]]
    failures: int
    seconds: float
    machine_busy: float
    server_cpu: float
    load_average: float


def run_clients(
    url: str,
    token: str,
    plans: Sequence[Sequence[Call]],
    server_pid: int,
    think_ms: tuple[float, float] = (0.0, 0.0),
) -> Outcome:
    """One thread per plan, each sending its calls on its own session, back to back or with a
    random pause of think_ms (low, high) after each answer."""
    samples: dict[str, list[float]] = {"search": [], "suggest": []}
    failures = [0] * len(plans)
    lock = threading.Lock()

    def client(number: int) -> None:
        pauses = random.Random(number)
        mine: dict[str, list[float]] = {"search": [], "suggest": []}
        with requests.Session() as session:
            session.trust_env = False
            session.headers["Authorization"] = f"Bearer {token}"
            for call in plans[number]:
                started = time.perf_counter()
                try:
                    ok = _send(session, url, call)
                except requests.RequestException:
                    ok = False
                mine[call.kind].append((time.perf_counter() - started) * 1000)
                failures[number] += not ok
                if think_ms[1]:
                    time.sleep(pauses.uniform(*think_ms) / 1000)
        with lock:
            for kind, values in mine.items():
                samples[kind] += values

    busy0, total0 = _machine_ticks()
    server0 = process_tree_seconds(server_pid)
    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(len(plans))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - started
    busy1, total1 = _machine_ticks()
    return Outcome(
        samples=samples,
        failures=sum(failures),
        seconds=seconds,
        machine_busy=(busy1 - busy0) / max(1, total1 - total0),
        server_cpu=process_tree_seconds(server_pid) - server0,
        load_average=os.getloadavg()[0],
    )


def _describe(outcome: Outcome) -> str:
    count = sum(len(v) for v in outcome.samples.values())
    return (
        f"{count / outcome.seconds:,.0f} req/s; gunicorn {outcome.server_cpu / count * 1000:.1f} "
        f"ms CPU per request; machine busy {outcome.machine_busy:.0%} of {os.cpu_count()} cores; "
        f"load average {outcome.load_average:.2f}; failures {outcome.failures}"
    )


def _interleave(
    searches: list[str], bodies: list[dict[str, list[str]]], clients: int
) -> list[list[Call]]:
    plans: list[list[Call]] = [[] for _ in range(clients)]
    body_iter = iter(bodies)
    for index, query in enumerate(searches):
        plan = plans[index % clients]
        if len(plan) % SUGGEST_EVERY == 0:
            body = next(body_iter, None)
            if body is not None:
                plan.append(Call("suggest", body=body))
        plan.append(Call("search", query=query))
    return plans


# --------------------------------------------------------------------------- the benchmark


def run(
    backend: Backend, *, size: int, queries: int, contacts: int = CONTACTS, seed: int = 20261123
) -> list[Result]:
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-pane-"))
    try:
        return _run(backend, workdir, size=size, queries=queries, contacts=contacts, seed=seed)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(
    backend: Backend, workdir: Path, *, size: int, queries: int, contacts: int, seed: int
) -> list[Result]:
    org = prepare(backend, size=size, contacts=contacts, seed=seed)
    with microsoft_standins(workdir, issuer_mode="self") as ms:
        token, sign_in_settings = _sign_in(backend, org.id, ms)
        return _measure(backend, workdir, org, token, sign_in_settings, queries, seed)


def _measure(
    backend: Backend,
    workdir: Path,
    org: Org,
    token: str,
    sign_in_settings: dict[str, str],
    queries: int,
    seed: int,
) -> list[Result]:
    rng = random.Random(seed + 1)
    prefixes = search.three_letter_queries(rng, org.names, queries)
    two_words = search.two_word_queries(rng, org.names, queries)
    bodies = suggest_bodies(rng, org, queries)
    mixed = search.three_letter_queries(rng, org.names, queries) + search.two_word_queries(
        rng, org.names, queries
    )
    rng.shuffle(mixed)
    concurrent_bodies = suggest_bodies(rng, org, 2 * queries // SUGGEST_EVERY + CLIENTS)
    warm_searches = search.three_letter_queries(rng, org.names, 60)
    warm_searches += search.two_word_queries(rng, org.names, 60)
    warm_bodies = suggest_bodies(rng, org, 40)
    total = len(org.names)
    del org.names[:]  # the served app, not this process, should hold the memory now

    env = app_environment(backend, **sign_in_settings)
    log(f"{backend.name}: pane API under gunicorn (gunicorn.conf.py: 2 sync workers)")
    results: list[Result] = []
    with gunicorn("wsgi:create_app()", env, workdir / "gunicorn.log") as server:
        # Warm both workers: their first requests compile queries and fill caches.
        warm = run_clients(
            server.url, token, _interleave(warm_searches, warm_bodies, 2), server.pid
        )
        if warm.failures:
            raise RuntimeError(f"pane API warm-up: {warm.failures} failed requests")

        def one(case: str, kind: str, calls: list[Call], note: str = "") -> None:
            outcome = run_clients(server.url, token, [calls], server.pid)
            samples = outcome.samples[kind]
            label = f"{case}, 1 client (one user typing), {total:,} companies"
            results.append(
                summarize(
                    "pane API", backend.name, label, samples, TARGET_MS,
                    note=f"{_describe(outcome)}; max {max(samples):.0f} ms" + note,
                )
            )  # fmt: skip
            log(f"{backend.name}: {case}, 1 client: p99 {results[-1].p99:.2f} ms")

        one(
            f"GET {SEARCH_PATH}?q=<3-letter prefix>&limit=20", "search",
            [Call("search", query=q) for q in prefixes], note=f". {org.load_note}",
        )  # fmt: skip
        one(
            f"GET {SEARCH_PATH}?q=<two words>&limit=20", "search",
            [Call("search", query=q) for q in two_words],
        )  # fmt: skip
        one(
            f"POST {SUGGEST_PATH}, 5 attendees ({len(org.contact_emails):,} contacts)", "suggest",
            [Call("suggest", body=b) for b in bodies],
        )  # fmt: skip

        # Several users typing at once: a pause of THINK_MS after each answer (a debounced pane
        # sends a few requests a second), then the same clients back to back (saturation).
        half = len(mixed) // 2
        for mode, calls, bodies_part, think in (
            (
                f"{THINK_MS[0]:g}-{THINK_MS[1]:g} ms pause",
                mixed[:half],
                concurrent_bodies,
                THINK_MS,
            ),
            ("back to back", mixed[half:], concurrent_bodies[::-1], (0.0, 0.0)),
        ):
            plans = _interleave(calls, bodies_part, CLIENTS)
            outcome = run_clients(server.url, token, plans, server.pid, think)
            for kind, case in (
                ("search", f"GET {SEARCH_PATH}?q=..., prefixes and two words"),
                ("suggest", f"POST {SUGGEST_PATH}, one in {SUGGEST_EVERY} requests"),
            ):
                samples = outcome.samples[kind]
                label = f"{case}, {CLIENTS} clients at once, {mode}, {total:,} companies"
                note = _describe(outcome) + "; " if kind == "search" else ""
                results.append(
                    summarize(
                        "pane API", backend.name, label, samples, TARGET_MS,
                        note=f"{note}max {max(samples):.0f} ms",
                    )
                )  # fmt: skip
                log(
                    f"{backend.name}: {kind}, {CLIENTS} clients, {mode}: "
                    f"p99 {results[-1].p99:.2f} ms"
                )

        results.append(_floor(server.url, backend.name, queries))
    return results


def _floor(url: str, backend: str, count: int) -> Result:
    """GET /healthz (no database, no authentication) from one client: HTTP and gunicorn alone."""
    samples: list[float] = []
    with requests.Session() as session:
        session.trust_env = False
        for _ in range(count):
            started = time.perf_counter()
            session.get(url + "/healthz", timeout=10).json()
            samples.append((time.perf_counter() - started) * 1000)
    return summarize(
        "pane API", backend, "GET /healthz, 1 client (HTTP + gunicorn floor)", samples, math.inf
    )
