"""A thin synchronous Microsoft Graph client on ``requests``: auth, throttling, paging, batching.

It replaces msgraph-core, which is async-only and heavy. What it follows:

* throttling: https://learn.microsoft.com/graph/throttling — 429/503/504 carry ``Retry-After`` in
  seconds; nothing goes to that mailbox (or, for ``ApplicationThrottled``, to Graph at all) before
  it has passed, whichever thread sends. Outlook allows 4 concurrent requests (per mailbox in
  older documentation, per app in newer), hence the per-mailbox and app-wide slots.
* JSON batching: https://learn.microsoft.com/graph/json-batching — at most 20 requests per
  ``$batch``, answers in any order, each inner request throttled on its own.
* paging: https://learn.microsoft.com/graph/paging — follow ``@odata.nextLink`` until there is
  none; a delta round ends with ``@odata.deltaLink``.
* errors: https://learn.microsoft.com/graph/errors — ``{"error": {"code", "message",
  "innerError": {"request-id"}}}``; an expired delta token is 410 ``SyncStateNotFound``.

Failures are ``GraphError`` subclasses with a dotted ``reason`` for metrics; the access token
never appears in a message or a log line, and query strings (delta and skip tokens) are not
logged either.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from graph.auth import GraphAuthError

__all__ = [
    "BatchRequest",
    "BatchResponse",
    "GraphAccessDenied",
    "GraphClient",
    "GraphConflict",
    "GraphError",
    "GraphGone",
    "GraphNotFound",
    "GraphThrottled",
    "GraphUnavailable",
]

log = logging.getLogger(__name__)

RETRYABLE_STATUSES: Final = frozenset({429, 503, 504})
MAX_BATCH: Final = 20
# Graph runs at most 4 requests of one batch at a time, so a batch counts as up to 4 requests
# against the concurrency limits.
BATCH_PARALLELISM: Final = 4
_MAX_MESSAGE_CHARS: Final = 300
_APP_WIDE: Final = None  # the gate key that holds back every mailbox


class GraphError(Exception):
    """A Graph call failed. ``reason`` is dotted ("graph.not_found") for metrics and logs.

    ``status`` is None when no HTTP answer came; ``code`` is Graph's error code or "";
    ``retry_after`` (seconds) is set when Graph said when to come back.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        status: int | None = None,
        code: str = "",
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.request_id = request_id


class GraphNotFound(GraphError):
    """404: the item (or user) is not there."""


class GraphGone(GraphError):
    """410 SyncStateNotFound: the delta token expired; start a new delta round."""


class GraphConflict(GraphError):
    """409: the object already exists or changed under us."""


class GraphAccessDenied(GraphError):
    """401/403: a token, permission or application access policy problem; retrying won't help."""


class GraphThrottled(GraphError):
    """429/503/504 after the retries, or a wait longer than ``max_retry_wait``; see retry_after."""


class GraphUnavailable(GraphError):
    """No usable answer: timeout, connection error, other 5xx, unreadable body."""


@dataclass(frozen=True, slots=True)
class BatchRequest:
    """One request of a ``$batch``; ``url`` is relative to the base URL and starts with "/"."""

    id: str
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True, slots=True)
class BatchResponse:
    """One answer of a ``$batch``; ``headers`` are case-insensitive."""

    id: str
    status: int
    headers: Mapping[str, str]
    body: Any

    def error(self) -> GraphError | None:
        """The typed error this answer means, None for a 2xx."""
        if 200 <= self.status < 300:
            return None
        code, message, request_id = _error_details(self.body)
        return _error_for(
            self.status,
            code,
            f"Graph batch request {self.id} failed: {_describe(self.status, code, message)}",
            retry_after=_retry_after(self.headers),
            request_id=request_id,
        )


class _Slots:
    """A counting semaphore that can take several slots at once (a batch takes up to 4)."""

    def __init__(self, size: int) -> None:
        self._free = size
        self._changed = threading.Condition()

    def acquire(self, count: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._free >= count)
            self._free -= count

    def release(self, count: int) -> None:
        with self._changed:
            self._free += count
            self._changed.notify_all()


@dataclass(frozen=True, slots=True)
class _Gate:
    """Nothing may be sent to the mailbox (or app) it guards before ``until`` (client clock)."""

    until: float
    reason: str


class GraphClient:
    """Synchronous Graph calls, shared by the worker threads of one process.

    ``token`` is called once per attempt (msal caches); its GraphAuthError propagates unchanged.
    ``mailbox`` (a user id or address; use one form per mailbox) names the mailbox a request
    touches, for the per-mailbox limits and Retry-After gates. ``on_error(reason)`` is called for
    every failed HTTP attempt, retried or not, for metrics. Close the client (or use it as a
    context manager) to close its connection pool.
    """

    def __init__(
        self,
        *,
        base_url: str,
        token: Callable[[], str],
        timeout: tuple[float, float] = (5.0, 30.0),
        per_mailbox_limit: int = 4,
        app_limit: int = 8,
        max_attempts: int = 5,
        max_retry_wait: float = 120.0,
        on_error: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min(per_mailbox_limit, app_limit, max_attempts) < 1:
            raise ValueError("per_mailbox_limit, app_limit and max_attempts must be at least 1")
        self._base_url = base_url.rstrip("/")
        self._origin = _origin(self._base_url)
        self._token = token
        self._timeout = timeout
        self._per_mailbox_limit = per_mailbox_limit
        self._app_limit = app_limit
        self._max_attempts = max_attempts
        self._max_retry_wait = max_retry_wait
        self._on_error = on_error
        self._sleep = sleep
        self._clock = clock
        self._session = requests.Session()
        # One pooled connection per request that may be in flight, so none is thrown away.
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=app_limit)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._lock = threading.Lock()
        self._app_slots = _Slots(app_limit)
        self._mailbox_slots: dict[str, _Slots] = {}
        self._gates: dict[str | None, _Gate] = {}

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> GraphClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------------- public calls

    def get(
        self,
        path: str,
        *,
        mailbox: str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        body = self._call("GET", path, mailbox=mailbox, params=params, headers=headers)
        return self._object(body, "GET", path)

    def post(
        self,
        path: str,
        json: Any,
        *,
        mailbox: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """The created or returned object; None when Graph answers without a body (204)."""
        body = self._call("POST", path, mailbox=mailbox, json=json, headers=headers)
        return None if body is None else self._object(body, "POST", path)

    def patch(
        self,
        path: str,
        json: Any,
        *,
        mailbox: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        body = self._call("PATCH", path, mailbox=mailbox, json=json, headers=headers)
        return None if body is None else self._object(body, "PATCH", path)

    def delete(
        self, path: str, *, mailbox: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        self._call("DELETE", path, mailbox=mailbox, headers=headers)

    def pages(
        self,
        path: str,
        *,
        mailbox: str | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Each page's JSON, following ``@odata.nextLink``; the last page of a delta round has
        ``@odata.deltaLink``. ``path`` may be a nextLink or deltaLink; ``headers`` (a Prefer,
        say) go with every page, ``params`` only with the first (links carry their own)."""
        next_url: str | None = path
        while next_url is not None:
            page = self.get(next_url, mailbox=mailbox, params=params, headers=headers)
            yield page
            link = page.get("@odata.nextLink")
            next_url = link if isinstance(link, str) else None
            params = None

    def batch(
        self, requests: Sequence[BatchRequest], *, mailbox: str | None = None
    ) -> list[BatchResponse]:
        """Answers in the order of ``requests``, sent 20 per ``$batch``.

        Inner 429/503/504 are sent again (only those) after the largest inner Retry-After, up
        to ``max_attempts``; then, or when the wait would exceed ``max_retry_wait``, they are
        returned as they are: call ``.error()``. A failure of a ``$batch`` call itself raises.
        """
        ids = [request.id for request in requests]
        if len(set(ids)) != len(ids):
            raise ValueError("batch request ids must be unique")
        if any(not request.url.startswith("/") for request in requests):
            raise ValueError("batch request urls must be relative and start with '/'")
        answers: dict[str, BatchResponse] = {}
        for start in range(0, len(requests), MAX_BATCH):
            answers.update(self._batch_chunk(requests[start : start + MAX_BATCH], mailbox))
        return [answers[request.id] for request in requests]

    # ----------------------------------------------------------------------- batching

    def _batch_chunk(
        self, chunk: Sequence[BatchRequest], mailbox: str | None
    ) -> dict[str, BatchResponse]:
        answers: dict[str, BatchResponse] = {}
        pending = list(chunk)
        for attempt in range(1, self._max_attempts + 1):
            for answer in self._send_batch(pending, mailbox):
                answers[answer.id] = answer
            pending = [r for r in pending if answers[r.id].status in RETRYABLE_STATUSES]
            if not pending:
                break
            throttled = [answers[request.id] for request in pending]
            wait = max(
                self._backoff(attempt) if seconds is None else seconds
                for seconds in (_retry_after(answer.headers) for answer in throttled)
            )
            app_wide = mailbox is None or any(
                _app_throttled(answer.status, _error_details(answer.body)[0])
                for answer in throttled
            )
            self._close_gate(_APP_WIDE if app_wide else _key(mailbox), wait, throttled[0].status)
            if attempt == self._max_attempts or wait > self._max_retry_wait:
                break
        return answers

    def _send_batch(
        self, pending: Sequence[BatchRequest], mailbox: str | None
    ) -> list[BatchResponse]:
        envelope = {"requests": [_batch_entry(request) for request in pending]}
        weight = min(len(pending), BATCH_PARALLELISM)
        body = self._call("POST", "/$batch", mailbox=mailbox, json=envelope, weight=weight)
        answers = self._batch_answers(body, {request.id for request in pending})
        urls = {request.id: (request.method, request.url) for request in pending}
        for answer in answers:
            error = answer.error()
            if error is not None:
                method, url = urls[answer.id]
                self._report(method, url, error, attempt_note="in $batch")
        return answers

    def _batch_answers(self, body: Any, expected: set[str]) -> list[BatchResponse]:
        responses = body.get("responses") if isinstance(body, dict) else None
        answers = [
            BatchResponse(
                id=str(item.get("id")),
                status=int(item.get("status", 0)),
                headers=CaseInsensitiveDict(item.get("headers") or {}),
                body=item.get("body"),
            )
            for item in responses or []
            if isinstance(item, dict)
        ]
        if {answer.id for answer in answers} != expected:
            error = GraphUnavailable(
                "Graph POST /$batch answered without one response per request",
                reason="graph.bad_response",
                status=200,
            )
            self._report("POST", "/$batch", error)
            raise error
        return answers

    # ----------------------------------------------------------------------- one request

    def _call(
        self,
        method: str,
        path: str,
        *,
        mailbox: str | None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        weight: int = 1,
    ) -> Any:
        """Send with retries; the decoded JSON body, or None for an empty one."""
        url = self._url(path)
        shown = urlsplit(url).path  # never the query: it may hold delta or skip tokens
        key = _key(mailbox)
        sent_headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(headers or {})
        sent_headers["Accept"] = "application/json"
        sent_headers["client-request-id"] = str(uuid.uuid4())  # the same for every attempt
        earliest = 0.0  # this request's own backoff, for failures that close no gate
        attempt = 0
        while True:
            attempt += 1
            last = attempt == self._max_attempts
            honoured = self._wait_for_gates(key, earliest)
            sent_headers["Authorization"] = self._bearer()
            try:
                response = self._send(
                    method, url, key, weight, honoured, params, sent_headers, json
                )
            except requests.RequestException as failure:
                unanswered = self._transport_error(method, shown, failure)
                retry = method == "GET" and not last  # a write may have been applied
                self._report(method, shown, unanswered, attempt_note=_note(attempt, retry))
                if not retry:
                    raise unanswered from None
                earliest = self._clock() + self._backoff(attempt)
                continue
            if response.status_code < 300:
                return self._decode(response, method, shown)
            error = self._http_error(response, method, shown)
            if response.status_code not in RETRYABLE_STATUSES:
                self._report(method, shown, error, attempt_note=_note(attempt, retry=False))
                raise error
            wait = self._backoff(attempt) if error.retry_after is None else error.retry_after
            app_wide = key is None or _app_throttled(response.status_code, error.code)
            self._close_gate(_APP_WIDE if app_wide else key, wait, response.status_code)
            retry = not last and wait <= self._max_retry_wait
            self._report(method, shown, error, attempt_note=_note(attempt, retry))
            if not retry:
                error.retry_after = wait  # when to come back, also when Graph did not say
                raise error

    def _send(
        self,
        method: str,
        url: str,
        key: str | None,
        weight: int,
        honoured: float,
        params: Mapping[str, str] | None,
        headers: CaseInsensitiveDict[str],
        json: Any,
    ) -> requests.Response:
        """One attempt, sent while holding the slots."""
        with self._slots(key, weight, honoured):
            return self._session.request(
                method,
                url,
                params=params,
                json=json,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,  # a redirect must not carry the token elsewhere
            )

    def _url(self, path: str) -> str:
        """The absolute URL; a link to another origin is refused so the token stays home."""
        if not urlsplit(path).scheme:
            return f"{self._base_url}/{path.lstrip('/')}"
        if _origin(path) != self._origin:
            raise GraphError(
                f"Refused a link to {urlsplit(path).hostname}: not the origin of the Graph "
                "base URL, and the access token goes nowhere else",
                reason="graph.bad_link",
            )
        return path

    def _decode(self, response: requests.Response, method: str, shown: str) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            error = GraphUnavailable(
                f"Graph {method} {shown} answered {response.status_code} with a body that is "
                "not JSON",
                reason="graph.bad_response",
                status=response.status_code,
                request_id=response.headers.get("request-id"),
            )
            self._report(method, shown, error)
            raise error from None

    def _object(self, body: Any, method: str, path: str) -> dict[str, Any]:
        if isinstance(body, dict):
            return body
        error = GraphUnavailable(
            f"Graph {method} {urlsplit(path).path} answered without a JSON object",
            reason="graph.bad_response",
        )
        self._report(method, urlsplit(path).path, error)
        raise error

    def _http_error(self, response: requests.Response, method: str, shown: str) -> GraphError:
        try:
            body = response.json()
        except ValueError:
            body = None  # an HTML error page from a proxy or gateway, say
        code, message, body_request_id = _error_details(body)
        return _error_for(
            response.status_code,
            code,
            f"Graph {method} {shown} failed: {_describe(response.status_code, code, message)}",
            retry_after=_retry_after(response.headers),
            request_id=response.headers.get("request-id") or body_request_id,
        )

    def _transport_error(
        self, method: str, shown: str, failure: requests.RequestException
    ) -> GraphUnavailable:
        # requests' own message holds the full URL (and so any delta token): name the type only.
        if isinstance(failure, requests.Timeout):
            return GraphUnavailable(
                f"Graph {method} {shown} timed out ({type(failure).__name__})",
                reason="graph.timeout",
            )
        return GraphUnavailable(
            f"Graph {method} {shown} could not be reached ({type(failure).__name__})",
            reason="graph.unreachable",
        )

    def _report(self, method: str, shown: str, error: GraphError, attempt_note: str = "") -> None:
        """One failed attempt: a WARNING line and the on_error callback (metrics)."""
        log.warning(
            "graph.request_failed method=%s path=%s status=%s reason=%s request_id=%s %s",
            method,
            urlsplit(shown).path,
            error.status,
            error.reason,
            error.request_id,
            attempt_note,
        )
        if self._on_error is not None:
            self._on_error(error.reason)

    def _bearer(self) -> str:
        """The Authorization header (msal renews the token in time); a refusal is counted."""
        try:
            return f"Bearer {self._token()}"
        except GraphAuthError as failure:
            if self._on_error is not None:
                self._on_error(failure.reason)
            raise

    def _backoff(self, attempt: int) -> float:
        """1, 2, 4… seconds after the first, second, third… failure, capped at max_retry_wait."""
        return float(min(2 ** (attempt - 1), self._max_retry_wait))

    # ----------------------------------------------------------------------- limits and gates

    def _close_gate(self, key: str | None, seconds: float, status: int) -> None:
        """Hold back every request to ``key`` (None: to Graph) for ``seconds`` from now."""
        reason = "graph.throttled" if status == 429 else "graph.unavailable"
        until = self._clock() + seconds
        with self._lock:
            current = self._gates.get(key)
            if current is None or current.until < until:
                self._gates[key] = _Gate(until, reason)

    def _gate(self, key: str | None) -> _Gate | None:
        """The later of the app-wide gate and the mailbox's gate."""
        with self._lock:
            gates = [g for g in (self._gates.get(_APP_WIDE), self._gates.get(key)) if g]
        return max(gates, key=lambda gate: gate.until, default=None)

    def _wait_for_gates(self, key: str | None, earliest: float) -> float:
        """Sleep until the gates for ``key`` (and ``earliest``) have passed; the time honoured.

        A wait longer than max_retry_wait raises GraphThrottled instead: the job comes back
        later. Sleeping once per deadline (not until the clock agrees) keeps a fake clock in
        tests from spinning; a gate moved later by another thread is waited for again.
        """
        honoured = earliest
        slept_until: float | None = None
        while True:
            gate = self._gate(key)
            if gate is not None and gate.until > honoured:
                honoured = gate.until
            remaining = honoured - self._clock()
            if remaining <= 0 or slept_until == honoured:
                return honoured
            if remaining > self._max_retry_wait:
                raise GraphThrottled(
                    f"Graph asked to wait {remaining:.0f} s before the next request, longer "
                    f"than max_retry_wait ({self._max_retry_wait:.0f} s)",
                    reason=gate.reason if gate else "graph.throttled",
                    retry_after=remaining,
                )
            self._sleep(remaining)
            slept_until = honoured

    @contextmanager
    def _slots(self, key: str | None, weight: int, honoured: float) -> Iterator[None]:
        """Hold a mailbox slot (first, so one busy mailbox can't sit on app slots) and an app
        slot while the request is in flight; give them back if a gate closed meanwhile."""
        mailbox = None if key is None else self._mailbox(key)
        mailbox_weight = min(weight, self._per_mailbox_limit)
        app_weight = min(weight, self._app_limit)
        while True:
            if mailbox is not None:
                mailbox.acquire(mailbox_weight)
            self._app_slots.acquire(app_weight)
            gate = self._gate(key)
            if gate is None or gate.until <= honoured:
                break
            self._app_slots.release(app_weight)
            if mailbox is not None:
                mailbox.release(mailbox_weight)
            honoured = self._wait_for_gates(key, honoured)
        try:
            yield
        finally:
            self._app_slots.release(app_weight)
            if mailbox is not None:
                mailbox.release(mailbox_weight)

    def _mailbox(self, key: str) -> _Slots:
        with self._lock:
            slots = self._mailbox_slots.get(key)
            if slots is None:
                slots = self._mailbox_slots[key] = _Slots(self._per_mailbox_limit)
            return slots


# --------------------------------------------------------------------------- helpers


def _key(mailbox: str | None) -> str | None:
    return None if mailbox is None else mailbox.casefold()


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    default_port = {"https": 443, "http": 80}.get(scheme)
    return scheme, (parts.hostname or "").lower(), parts.port or default_port


def _note(attempt: int, retry: bool) -> str:
    return f"attempt={attempt} retry={'yes' if retry else 'no'}"


def _batch_entry(request: BatchRequest) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": request.id, "method": request.method, "url": request.url}
    headers = dict(request.headers)
    if request.body is not None:
        entry["body"] = request.body
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = "application/json"  # Graph requires it with a body
    if headers:
        entry["headers"] = headers
    return entry


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (Graph sends delta-seconds); None when absent or unreadable."""
    value = CaseInsensitiveDict(headers).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _error_details(body: Any) -> tuple[str, str, str | None]:
    """(code, message, request-id) from Graph's error body; blanks when it has none."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "", "", None
    inner = error.get("innerError") or error.get("innererror") or {}
    request_id = inner.get("request-id") if isinstance(inner, dict) else None
    return str(error.get("code") or ""), str(error.get("message") or ""), request_id


def _describe(status: int, code: str, message: str) -> str:
    text = f"{status} {code}".strip()
    if message:
        text += f": {message[:_MAX_MESSAGE_CHARS]}"
    return text


def _app_throttled(status: int, code: str) -> bool:
    """A 429 ``ApplicationThrottled`` concerns the whole app, not only one mailbox."""
    return status == 429 and code.casefold() == "applicationthrottled"


def _error_for(
    status: int,
    code: str,
    message: str,
    *,
    retry_after: float | None,
    request_id: str | None,
) -> GraphError:
    """The typed error for a non-2xx answer."""
    kind: type[GraphError] = GraphError
    if status == 410 or code.casefold() == "syncstatenotfound":
        # Observed: 410 SyncStateNotFound; the docs spell it syncStateNotFound and say "40X".
        kind = GraphGone
        reason = (
            "graph.sync_state_not_found" if code.casefold() == "syncstatenotfound" else "graph.gone"
        )
    elif status == 404:
        kind, reason = GraphNotFound, "graph.not_found"
    elif status == 409:
        kind, reason = GraphConflict, "graph.conflict"
    elif status in (401, 403):
        kind = GraphAccessDenied
        reason = "graph.unauthorized" if status == 401 else "graph.forbidden"
    elif status == 429:
        kind, reason = GraphThrottled, "graph.throttled"
    elif status in (503, 504):
        kind, reason = GraphThrottled, "graph.unavailable"
    elif status >= 500:
        kind, reason = GraphUnavailable, "graph.server_error"
    elif status == 400:
        reason = "graph.bad_request"
    else:
        reason = f"graph.http_{status}"
    return kind(
        message,
        reason=reason,
        status=status,
        code=code,
        retry_after=retry_after,
        request_id=request_id,
    )
