"""graph/client.py against the Graph and Entra stand-ins over real HTTP.

Throttling tests give the client a ``FakeTime``: its clock is the real monotonic clock plus
the time the client "slept", and each sleep is recorded instead of taken. One test sleeps for
real, to show that a Retry-After holds back every thread.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from werkzeug.wrappers import Request, Response

from graph.auth import AppTokenProvider, GraphAuthError
from graph.client import (
    BatchRequest,
    BatchResponse,
    GraphAccessDenied,
    GraphClient,
    GraphConflict,
    GraphError,
    GraphGone,
    GraphNotFound,
    GraphThrottled,
    GraphUnavailable,
)
from tests.integration.conftest import CLIENT_ID, app_tokens
from tests.standins import BackgroundServer, MicrosoftStandIns
from tests.standins.graph import rest_id

WINDOW = {"startDateTime": "2026-03-01T00:00:00Z", "endDateTime": "2026-04-01T00:00:00Z"}

MakeClient = Callable[..., GraphClient]


class FakeTime:
    """``clock`` and ``sleep`` for a client: sleeping records the wait and moves the clock."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self._slept = 0.0

    def clock(self) -> float:
        return time.monotonic() + self._slept

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._slept += seconds

    def options(self) -> dict[str, Any]:
        return {"clock": self.clock, "sleep": self.sleep}


class Reasons(list[str]):
    """An ``on_error`` that records the reasons, in order."""

    def __call__(self, reason: str) -> None:
        self.append(reason)


@pytest.fixture
def tokens(ms: MicrosoftStandIns) -> AppTokenProvider:
    return app_tokens(ms)


@pytest.fixture
def make_client(ms: MicrosoftStandIns, tokens: AppTokenProvider) -> Iterator[MakeClient]:
    clients: list[GraphClient] = []

    def make(**options: Any) -> GraphClient:
        options.setdefault("base_url", ms.graph.root_url)
        options.setdefault("token", tokens.token)
        client = GraphClient(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def events_in_march(ms: MicrosoftStandIns, user: Any, count: int) -> list[str]:
    return [
        ms.graph.create_event(user, start=f"2026-03-{day:02d}T09:00:00", subject=f"M{day}")["id"]
        for day in range(1, count + 1)
    ]


# --------------------------------------------------------------------------- plain calls


@pytest.mark.parametrize("trailing_slash", ["", "/"])
def test_get_sends_token_accept_and_a_client_request_id(
    ms: MicrosoftStandIns, make_client: MakeClient, trailing_slash: str
) -> None:
    anna = ms.graph.add_user("anna@contoso.com")
    [event_id] = events_in_march(ms, anna, 1)
    client = make_client(base_url=ms.graph.root_url + trailing_slash)

    event = client.get(
        f"/users/{anna.id}/events/{event_id}", mailbox=anna.id, params={"$select": "subject"}
    )

    assert event["id"] == rest_id(event_id)  # no IdType preference: the regular REST id
    assert event["subject"] == "M1"
    [request] = ms.graph.log()
    assert request.status == 200  # the stand-in accepted the bearer token
    assert request.query == {"$select": ["subject"]}
    assert request.headers["Accept"] == "application/json"
    uuid.UUID(request.headers["Client-Request-Id"])


def test_missing_event_is_graph_not_found(ms: MicrosoftStandIns, make_client: MakeClient) -> None:
    anna = ms.graph.add_user("anna@contoso.com")
    reasons = Reasons()
    client = make_client(on_error=reasons)

    with pytest.raises(GraphNotFound) as missing:
        client.get(f"/users/{anna.id}/events/AAMkADgone=", mailbox=anna.id)

    assert missing.value.reason == "graph.not_found"
    assert missing.value.status == 404
    assert missing.value.code == "ErrorItemNotFound"
    assert missing.value.request_id
    assert "The specified object was not found in the store." in str(missing.value)
    assert reasons == ["graph.not_found"]
    assert len(ms.graph.log()) == 1  # a 404 is not retried


def test_access_denied_and_bad_token(ms: MicrosoftStandIns, make_client: MakeClient) -> None:
    anna = ms.graph.add_user("anna@contoso.com")
    ms.graph.deny_mailbox(anna)

    with pytest.raises(GraphAccessDenied) as forbidden:
        make_client().get(f"/users/{anna.id}/events", mailbox=anna.id)
    with pytest.raises(GraphAccessDenied) as unauthorized:
        make_client(token=lambda: "not-a-jwt").get("/users")

    assert (forbidden.value.reason, forbidden.value.status) == ("graph.forbidden", 403)
    assert (unauthorized.value.reason, unauthorized.value.status) == ("graph.unauthorized", 401)


def test_token_failure_propagates_unchanged(ms: MicrosoftStandIns, make_client: MakeClient) -> None:
    client = make_client(token=app_tokens(ms, secret="wrong-secret").token)

    with pytest.raises(GraphAuthError) as refused:
        client.get("/users")

    assert refused.value.reason == "entra.invalid_client"
    assert ms.graph.log() == []


def test_post_patch_delete_answers(ms: MicrosoftStandIns, make_client: MakeClient) -> None:
    """The stand-in writes no events over HTTP, so a rejected write shows the error path."""
    anna = ms.graph.add_user("anna@contoso.com")
    client = make_client()

    with pytest.raises(GraphError) as not_allowed:
        client.post(f"/users/{anna.id}/events", {"subject": "x"}, mailbox=anna.id)
    with pytest.raises(GraphError) as bad:
        client.patch("/subscriptions/unknown", {"expirationDateTime": "soon"})

    assert (not_allowed.value.reason, not_allowed.value.status) == ("graph.http_405", 405)
    assert type(bad.value) is GraphNotFound
    assert len(ms.graph.log(method="POST")) == 1


# --------------------------------------------------------------------------- paging and delta


def test_pages_follow_next_links(ms: MicrosoftStandIns, make_client: MakeClient) -> None:
    names = ["ada", "bea", "cai", "dan", "eve"]
    for name in names:
        ms.graph.add_user(f"{name}@contoso.com")

    pages = list(make_client().pages("/users", params={"$top": "2"}))

    assert [len(page["value"]) for page in pages] == [2, 2, 1]
    seen = [user["mail"] for page in pages for user in page["value"]]
    assert seen == [f"{name}@contoso.com" for name in names]
    requests = ms.graph.log(path_prefix="/users")
    assert len(requests) == 3
    assert requests[0].query == {"$top": ["2"]}
    assert all("$skiptoken" in request.query for request in requests[1:])


def test_delta_round_then_expired_token_is_gone(
    ms: MicrosoftStandIns, make_client: MakeClient
) -> None:
    anna = ms.graph.add_user("anna@contoso.com")
    events_in_march(ms, anna, 12)
    client = make_client()
    prefer = {"Prefer": "odata.maxpagesize=5"}
    delta = f"/users/{anna.id}/calendarView/delta"

    pages = list(client.pages(delta, mailbox=anna.id, params=WINDOW, headers=prefer))

    assert [len(page["value"]) for page in pages] == [5, 5, 2]
    assert all("@odata.nextLink" in page for page in pages[:2])
    delta_link = pages[-1]["@odata.deltaLink"]
    assert all(r.headers.get("Prefer") == prefer["Prefer"] for r in ms.graph.log())

    [unchanged] = list(client.pages(delta_link, mailbox=anna.id, headers=prefer))
    assert unchanged["value"] == []
    assert "@odata.deltaLink" in unchanged

    ms.graph.expire_delta_tokens(anna)
    with pytest.raises(GraphGone) as gone:
        list(client.pages(unchanged["@odata.deltaLink"], mailbox=anna.id))
    assert gone.value.reason == "graph.sync_state_not_found"
    assert (gone.value.status, gone.value.code) == (410, "SyncStateNotFound")


# --------------------------------------------------------------------------- throttling


def test_retry_after_holds_back_every_thread_for_that_mailbox(
    ms: MicrosoftStandIns, make_client: MakeClient
) -> None:
    """Real time: the retry and a second thread's request wait out the Retry-After; another
    mailbox is not held back (the 429 is not ApplicationThrottled)."""
    anna = ms.graph.add_user("anna@contoso.com")
    bob = ms.graph.add_user("bob@contoso.com")
    [event_id] = events_in_march(ms, anna, 1)
    throttled = threading.Event()
    client = make_client(on_error=lambda reason: throttled.set())
    ms.graph.fail_next(
        1, status=429, retry_after=1, path_prefix=f"/users/{anna.id}", code="TooManyRequests"
    )

    with ThreadPoolExecutor(max_workers=2) as pool:
        first = pool.submit(client.get, f"/users/{anna.id}/events/{event_id}", mailbox=anna.id)
        assert throttled.wait(timeout=5)
        second = pool.submit(client.get, f"/users/{anna.id}", mailbox=anna.id)
        client.get(f"/users/{bob.id}", mailbox=bob.id)
        assert first.result()["id"] == rest_id(event_id)
        assert second.result()["id"] == anna.id

    [throttle] = ms.graph.log(status=429)
    after = [r for r in ms.graph.log(path_prefix=f"/users/{anna.id}") if r.at > throttle.at]
    assert len(after) == 2
    assert all(r.at >= throttle.at + 1.0 for r in after)
    [for_bob] = ms.graph.log(path_prefix=f"/users/{bob.id}")
    assert for_bob.at < throttle.at + 1.0


@pytest.mark.parametrize(
    ("code", "app_wide"), [("ApplicationThrottled", True), ("TooManyRequests", False)]
)
def test_application_throttled_holds_back_every_mailbox(
    ms: MicrosoftStandIns, make_client: MakeClient, code: str, app_wide: bool
) -> None:
    anna = ms.graph.add_user("anna@contoso.com")
    bob = ms.graph.add_user("bob@contoso.com")
    fake = FakeTime()
    client = make_client(**fake.options(), max_attempts=1)
    ms.graph.fail_next(1, status=429, retry_after=1, path_prefix=f"/users/{anna.id}", code=code)

    with pytest.raises(GraphThrottled):
        client.get(f"/users/{anna.id}", mailbox=anna.id)
    client.get(f"/users/{bob.id}", mailbox=bob.id)

    assert fake.sleeps == ([pytest.approx(1.0, abs=0.2)] if app_wide else [])


def test_503_is_retried_with_the_same_client_request_id(
    ms: MicrosoftStandIns, make_client: MakeClient
) -> None:
    fake, reasons = FakeTime(), Reasons()
    client = make_client(**fake.options(), on_error=reasons)
    ms.graph.fail_next(2, status=503, retry_after=1)

    assert "value" in client.get("/users")

    assert [r.status for r in ms.graph.log()] == [503, 503, 200]
    assert fake.sleeps == [pytest.approx(1.0, abs=0.2)] * 2
    assert reasons == ["graph.unavailable"] * 2
    assert len({r.headers["Client-Request-Id"] for r in ms.graph.log()}) == 1


@pytest.mark.parametrize(
    ("status", "reason"),
    [(429, "graph.throttled"), (503, "graph.unavailable"), (504, "graph.unavailable")],
)
def test_retries_used_up_raise_throttled(
    ms: MicrosoftStandIns, make_client: MakeClient, status: int, reason: str
) -> None:
    fake, reasons = FakeTime(), Reasons()
    client = make_client(**fake.options(), on_error=reasons, max_attempts=3)
    ms.graph.fail_next(5, status=status, retry_after=2)

    with pytest.raises(GraphThrottled) as throttled:
        client.get("/users")

    assert throttled.value.reason == reason
    assert throttled.value.status == status
    assert throttled.value.retry_after == 2.0
    assert len(ms.graph.log()) == 3
    assert len(fake.sleeps) == 2
    assert reasons == [reason] * 3


def test_retry_after_beyond_max_wait_raises_at_once(
    ms: MicrosoftStandIns, make_client: MakeClient
) -> None:
    anna = ms.graph.add_user("anna@contoso.com")
    fake, reasons = FakeTime(), Reasons()
    client = make_client(**fake.options(), on_error=reasons, max_retry_wait=10)
    ms.graph.fail_next(1, status=429, retry_after=60, code="TooManyRequests")

    with pytest.raises(GraphThrottled) as throttled:
        client.get(f"/users/{anna.id}", mailbox=anna.id)
    # The mailbox stays closed: the next request is refused without being sent.
    with pytest.raises(GraphThrottled) as still_closed:
        client.get(f"/users/{anna.id}/events", mailbox=anna.id)

    assert (throttled.value.status, throttled.value.retry_after) == (429, 60.0)
    assert still_closed.value.status is None
    assert still_closed.value.reason == "graph.throttled"
    assert still_closed.value.retry_after == pytest.approx(60.0, abs=1.0)
    assert fake.sleeps == []
    assert reasons == ["graph.throttled"]
    assert len(ms.graph.log()) == 1


def test_without_retry_after_backoff_doubles_up_to_the_cap(
    ms: MicrosoftStandIns, make_client: MakeClient
) -> None:
    fake = FakeTime()
    client = make_client(**fake.options(), max_retry_wait=3)
    ms.graph.fail_next(3, status=503, retry_after=None)

    client.get("/users")

    assert fake.sleeps == [pytest.approx(s, abs=0.2) for s in (1.0, 2.0, 3.0)]


# --------------------------------------------------------------------------- concurrency


def test_per_mailbox_limit(
    ms: MicrosoftStandIns, make_client: MakeClient, tokens: AppTokenProvider
) -> None:
    anna = ms.graph.add_user("anna@contoso.com")
    ms.graph.latency = 0.2
    ms.graph.concurrency_limit, ms.graph.concurrency_scope = 4, "mailbox"
    tokens.token()  # fetched once, before the threads start
    client = make_client()

    with ThreadPoolExecutor(max_workers=12) as pool:
        calls = [pool.submit(client.get, f"/users/{anna.id}", mailbox=anna.id) for _ in range(12)]
        assert all(call.result()["id"] == anna.id for call in calls)

    assert ms.graph.max_in_flight(anna) == 4
    assert ms.graph.log(status=429) == []


def test_app_limit_across_mailboxes(
    ms: MicrosoftStandIns, make_client: MakeClient, tokens: AppTokenProvider
) -> None:
    users = [ms.graph.add_user(f"user{n}@contoso.com") for n in range(4)]
    ms.graph.latency = 0.2
    ms.graph.concurrency_limit, ms.graph.concurrency_scope = 3, "app"
    tokens.token()
    client = make_client(app_limit=3)

    with ThreadPoolExecutor(max_workers=12) as pool:
        calls = [
            pool.submit(client.get, f"/users/{user.id}", mailbox=user.id)
            for user in users
            for _ in range(3)
        ]
        assert all(call.result() for call in calls)

    assert ms.graph.max_in_flight(app_id=CLIENT_ID) == 3
    assert ms.graph.log(status=429) == []


def test_a_batch_counts_as_four_requests_of_its_mailbox(
    ms: MicrosoftStandIns, make_client: MakeClient, tokens: AppTokenProvider
) -> None:
    anna = ms.graph.add_user("anna@contoso.com")
    ms.graph.latency = 0.1
    ms.graph.concurrency_limit, ms.graph.concurrency_scope = 4, "mailbox"
    tokens.token()
    client = make_client()
    four = [BatchRequest(str(n), "GET", f"/users/{anna.id}") for n in range(4)]

    with ThreadPoolExecutor(max_workers=6) as pool:
        batches = [pool.submit(client.batch, four, mailbox=anna.id) for _ in range(2)]
        gets = [pool.submit(client.get, f"/users/{anna.id}", mailbox=anna.id) for _ in range(4)]
        answers = [answer for batch in batches for answer in batch.result()]
        assert all(get.result() for get in gets)

    assert [answer.status for answer in answers] == [200] * 8
    assert ms.graph.max_in_flight(anna) == 4
    assert ms.graph.log(status=429) == []


# --------------------------------------------------------------------------- batching


def test_batch_of_45_in_three_calls_in_input_order_with_an_inner_429_retried(
    ms: MicrosoftStandIns, make_client: MakeClient
) -> None:
    anna = ms.graph.add_user("anna@contoso.com")
    event_ids = events_in_march(ms, anna, 28) + events_in_march(ms, anna, 16)
    fake, reasons = FakeTime(), Reasons()
    client = make_client(**fake.options(), on_error=reasons)
    requests = [
        BatchRequest(f"r{n}", "GET", f"/users/{anna.id}/events/{event_id}?$select=subject")
        for n, event_id in enumerate(event_ids)
    ]
    requests.append(BatchRequest("missing", "GET", f"/users/{anna.id}/events/AAMkADgone="))
    ms.graph.fail_next(
        1, status=429, retry_after=1, path_prefix=f"/users/{anna.id}/events/{event_ids[7]}"
    )

    answers = client.batch(requests, mailbox=anna.id)

    assert [answer.id for answer in answers] == [request.id for request in requests]
    assert [answer.body["id"] for answer in answers[:-1]] == [rest_id(e) for e in event_ids]
    assert all(answer.status == 200 and answer.error() is None for answer in answers[:-1])
    missing = answers[-1].error()
    assert isinstance(missing, GraphNotFound)
    assert missing.reason == "graph.not_found"
    assert len(ms.graph.log(method="POST", path_prefix="/$batch")) == 4  # 20 + 20 + 5, 1 again
    retried = ms.graph.log(path_prefix=f"/users/{anna.id}/events/{event_ids[7]}")
    assert [(r.status, r.in_batch) for r in retried] == [(429, True), (200, True)]
    assert fake.sleeps == [pytest.approx(1.0, abs=0.2)]
    assert reasons == ["graph.throttled", "graph.not_found"]


def test_batch_returns_inner_throttling_once_attempts_are_used_up(
    ms: MicrosoftStandIns, make_client: MakeClient
) -> None:
    anna = ms.graph.add_user("anna@contoso.com")
    fake = FakeTime()
    client = make_client(**fake.options(), max_attempts=2)
    ms.graph.fail_next(5, status=429, retry_after=1, path_prefix=f"/users/{anna.id}/events")
    requests = [
        BatchRequest("user", "GET", f"/users/{anna.id}"),
        BatchRequest("events", "GET", f"/users/{anna.id}/events"),
    ]

    user, events = client.batch(requests, mailbox=anna.id)

    assert user.status == 200
    assert events.status == 429
    throttled = events.error()
    assert isinstance(throttled, GraphThrottled)
    assert (throttled.reason, throttled.retry_after) == ("graph.throttled", 1.0)
    assert len(ms.graph.log(path_prefix="/$batch")) == 2
    assert len(fake.sleeps) == 1


@pytest.mark.parametrize(
    ("status", "code", "kind", "reason"),
    [
        (400, "BadRequest", GraphError, "graph.bad_request"),
        (401, "InvalidAuthenticationToken", GraphAccessDenied, "graph.unauthorized"),
        (403, "ErrorAccessDenied", GraphAccessDenied, "graph.forbidden"),
        (404, "ErrorItemNotFound", GraphNotFound, "graph.not_found"),
        (409, "ObjectIdentifierInUse", GraphConflict, "graph.conflict"),
        (410, "syncStateNotFound", GraphGone, "graph.sync_state_not_found"),
        (412, "ErrorIrresolvableConflict", GraphError, "graph.http_412"),
        (429, "ApplicationThrottled", GraphThrottled, "graph.throttled"),
        (500, "UnknownError", GraphUnavailable, "graph.server_error"),
        (503, "ServiceNotAvailable", GraphThrottled, "graph.unavailable"),
        (504, "UnknownError", GraphThrottled, "graph.unavailable"),
    ],
)
def test_batch_response_error_types(
    status: int, code: str, kind: type[GraphError], reason: str
) -> None:
    body = {"error": {"code": code, "message": "m", "innerError": {"request-id": "rid"}}}
    answer = BatchResponse(id="1", status=status, headers={"retry-after": "7"}, body=body)

    error = answer.error()

    assert type(error) is kind
    assert error is not None
    assert (error.reason, error.status, error.code) == (reason, status, code)
    assert (error.retry_after, error.request_id) == (7.0, "rid")
    assert BatchResponse(id="2", status=201, headers={}, body=None).error() is None


# --------------------------------------------------------------------------- failures


def test_timeouts_retry_a_get_but_never_a_post(
    ms: MicrosoftStandIns, make_client: MakeClient
) -> None:
    anna = ms.graph.add_user("anna@contoso.com")
    ms.graph.latency = 0.5
    fake, reasons = FakeTime(), Reasons()
    client = make_client(timeout=(2.0, 0.1), max_attempts=2, **fake.options(), on_error=reasons)

    with pytest.raises(GraphUnavailable) as get_timed_out:
        client.get(f"/users/{anna.id}", mailbox=anna.id)
    with pytest.raises(GraphUnavailable) as post_timed_out:
        client.post(f"/users/{anna.id}/events", {"subject": "x"}, mailbox=anna.id)

    assert (get_timed_out.value.reason, get_timed_out.value.status) == ("graph.timeout", None)
    assert post_timed_out.value.reason == "graph.timeout"
    assert reasons == ["graph.timeout"] * 3  # two GET attempts, one POST
    assert fake.sleeps == [pytest.approx(1.0, abs=0.2)]
    deadline = time.monotonic() + 5
    while len(ms.graph.log()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)  # let the stand-in finish the abandoned requests before it stops
    assert len(ms.graph.log()) == 3


@Request.application
def _lying_graph(request: Request) -> Response:
    """Pages whose nextLink leads elsewhere, a 200 that is not JSON, a gateway's HTML 502."""
    if request.path == "/v1.0/users":
        link = request.args["elsewhere"] + "/v1.0/users?$skiptoken=abc"
        return Response(
            f'{{"value": [1], "@odata.nextLink": "{link}"}}', mimetype="application/json"
        )
    if request.path == "/v1.0/html":
        return Response("<html>sign in</html>", mimetype="text/html")
    return Response("<html>Bad Gateway</html>", status=502, mimetype="text/html")


def test_next_link_to_another_origin_is_refused_without_the_token() -> None:
    seen_elsewhere: list[dict[str, str]] = []

    @Request.application
    def elsewhere_app(request: Request) -> Response:
        seen_elsewhere.append(dict(request.headers))
        return Response('{"value": []}', mimetype="application/json")

    calls: list[str] = []

    def token() -> str:
        calls.append("token")
        return "token-for-graph-only"

    with (
        BackgroundServer(_lying_graph) as lying,
        BackgroundServer(elsewhere_app) as elsewhere,
        GraphClient(base_url=f"{lying.base_url}/v1.0", token=token) as client,
    ):
        pages = client.pages("/users", params={"elsewhere": elsewhere.base_url})
        assert next(pages)["value"] == [1]
        with pytest.raises(GraphError) as refused:
            next(pages)

    assert refused.value.reason == "graph.bad_link"
    assert refused.value.status is None
    assert "token-for-graph-only" not in str(refused.value)
    assert seen_elsewhere == []
    assert calls == ["token"]


def test_unreadable_answers() -> None:
    reasons = Reasons()
    with (
        BackgroundServer(_lying_graph) as lying,
        GraphClient(
            base_url=f"{lying.base_url}/v1.0", token=lambda: "t", on_error=reasons
        ) as client,
    ):
        with pytest.raises(GraphUnavailable) as not_json:
            client.get("/html")
        with pytest.raises(GraphUnavailable) as gateway:
            client.get("/gateway")

    assert (not_json.value.reason, not_json.value.status) == ("graph.bad_response", 200)
    assert (gateway.value.reason, gateway.value.status, gateway.value.code) == (
        "graph.server_error",
        502,
        "",
    )
    assert reasons == ["graph.bad_response", "graph.server_error"]


def test_unreachable_graph(make_client: MakeClient) -> None:
    fake = FakeTime()
    client = make_client(base_url="http://127.0.0.1:9/v1.0", max_attempts=2, **fake.options())

    with pytest.raises(GraphUnavailable) as unreachable:
        client.get("/users")

    assert unreachable.value.reason == "graph.unreachable"
    assert len(fake.sleeps) == 1


def test_the_token_and_link_tokens_stay_out_of_logs_and_errors(
    ms: MicrosoftStandIns,
    make_client: MakeClient,
    tokens: AppTokenProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    anna = ms.graph.add_user("anna@contoso.com")
    events_in_march(ms, anna, 2)
    client = make_client(**FakeTime().options())
    delta_link = list(client.pages(f"/users/{anna.id}/calendarView/delta", params=WINDOW))[-1][
        "@odata.deltaLink"
    ]
    delta_token = delta_link.rsplit("=", 1)[1]
    ms.graph.expire_delta_tokens(anna)
    ms.graph.fail_next(1, status=429, retry_after=1)

    client.get("/users")  # a 429, then the retry
    with pytest.raises(GraphGone) as gone:
        client.get(delta_link, mailbox=anna.id)
    with pytest.raises(GraphNotFound) as missing:
        client.get(f"/users/{anna.id}/events/AAMkADgone=", params={"$select": "x"})
    errors = [gone.value, missing.value]

    token = tokens.token()
    ours = [r for r in caplog.records if r.name.startswith("graph")]
    failures = [r.getMessage() for r in ours if r.getMessage().startswith("graph.request_failed")]
    assert len(failures) == 3
    assert "status=410 reason=graph.sync_state_not_found" in failures[1]
    assert f"path=/v1.0/users/{anna.id}/calendarView/delta status" in failures[1]
    assert all("request_id=None" not in failure for failure in failures)
    # Every logger (msal's and urllib3's debug lines too) keeps the access token out; the
    # delta token is only a secret of ours to keep (urllib3 logs URLs at DEBUG).
    assert token not in caplog.text
    for text in [*map(logging.Formatter().format, ours), *map(str, errors), *map(repr, errors)]:
        assert token not in text
        assert delta_token not in text
