"""A thin synchronous client for Google's REST APIs on ``requests``, acting for domain users.

One client serves Calendar, Gmail and the Admin SDK Directory API for a whole Workspace domain
through domain-wide delegation (reference/google.md §5): the service account's key signs a JWT
whose ``sub`` is the user to act for, and Google's token endpoint (the key's ``token_uri``)
returns an access token for that user and the requested scopes. Credentials are made once per
(user, scopes) and refreshed shortly before they expire; google-auth does the signing and the
token request, over this client's ``requests`` session.

What it follows:

* quota: with delegation Google charges the service account's per-user bucket unless the call
  names the user, so every call carries ``quotaUser`` (reference §4.6; Google limits it to 40
  characters, so longer addresses are sent as a stable hash).
* retries: truncated exponential backoff with jitter on 429, 500, 502, 503, 504 and on 403
  ``rateLimitExceeded`` / ``userRateLimitExceeded`` (https://developers.google.com/workspace/
  calendar/api/guides/errors); a ``Retry-After`` is honoured, and no request for that user
  leaves before it has passed, whichever thread sends. A wait longer than ``max_retry_wait``
  gives up at once with the typed error, whose ``retry_after`` says when to come back.
* errors: ``{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}``;
  an expired sync token is 410 ``fullSyncRequired`` (reference §4.4).

Failures are ``GoogleError`` subclasses, themselves ``services.ports.ProviderError``, with a
dotted ``reason``. Access tokens never appear in a message or a log line, and neither do query
strings (they hold sync and page tokens).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Final
from urllib.parse import urlsplit

import requests
from google.auth import exceptions as google_exceptions
from google.auth.transport.requests import Request as AuthRequest
from google.oauth2 import service_account
from requests.adapters import HTTPAdapter

from services.ports import ProviderError

__all__ = [
    "CALENDAR_SCOPE",
    "DEFAULT_CALENDAR_BASE_URL",
    "DEFAULT_DIRECTORY_BASE_URL",
    "DEFAULT_GMAIL_BASE_URL",
    "DIRECTORY_SCOPE",
    "GMAIL_SCOPE",
    "SCOPES",
    "GoogleAccessDenied",
    "GoogleBadRequest",
    "GoogleClient",
    "GoogleError",
    "GoogleGone",
    "GoogleNotFound",
    "GoogleThrottled",
    "GoogleUnavailable",
    "quota_user",
]

log = logging.getLogger(__name__)

CALENDAR_SCOPE: Final = "https://www.googleapis.com/auth/calendar.events"
GMAIL_SCOPE: Final = "https://www.googleapis.com/auth/gmail.readonly"
DIRECTORY_SCOPE: Final = "https://www.googleapis.com/auth/admin.directory.user.readonly"
SCOPES: Final = (CALENDAR_SCOPE, GMAIL_SCOPE, DIRECTORY_SCOPE)
"""Every scope the service account needs; an admin grants them (comma-separated) to its
client id under Admin console > Security > API controls > Domain-wide delegation."""

DEFAULT_CALENDAR_BASE_URL: Final = "https://www.googleapis.com/calendar/v3"
DEFAULT_GMAIL_BASE_URL: Final = "https://gmail.googleapis.com/gmail/v1"
DEFAULT_DIRECTORY_BASE_URL: Final = "https://admin.googleapis.com/admin/directory/v1"

RETRYABLE_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
_RATE_LIMIT_REASONS: Final = frozenset({"ratelimitexceeded", "userratelimitexceeded"})
# 403s that mean "too much" but will not pass within a retry: try again much later.
_QUOTA_REASONS: Final = frozenset({"quotaexceeded", "dailylimitexceeded", "usagelimits"})
# A transport failure may hide an applied write: only these methods are sent again then.
_IDEMPOTENT: Final = frozenset({"GET", "PATCH"})
_MAX_BACKOFF: Final = 32.0
_MAX_MESSAGE_CHARS: Final = 300
_QUOTA_USER_MAX: Final = 40
# Token-endpoint errors that mean the delegation is not (fully) granted.
_DELEGATION_ERRORS: Final = frozenset({"unauthorized_client", "access_denied"})


class GoogleError(ProviderError):
    """A Google call failed. ``status`` is None when no HTTP answer came; ``code`` is Google's
    first ``errors[].reason`` (or the token endpoint's ``error``), "" when it gave none."""

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        status: int | None = None,
        code: str = "",
        retry_after: float | None = None,
        transient: bool = True,
    ) -> None:
        super().__init__(message, reason=reason, retry_after=retry_after, transient=transient)
        self.status = status
        self.code = code


class GoogleNotFound(GoogleError):
    """404: the event, message, user or history id is not there."""


class GoogleGone(GoogleError):
    """410: e.g. a sync token Google no longer accepts (``fullSyncRequired``)."""


class GoogleAccessDenied(GoogleError):
    """401/403 (not rate limiting), or a token refused: delegation or permission missing."""


class GoogleThrottled(GoogleError):
    """429 / 403 rate or quota limit, after the retries or with a wait too long to take."""


class GoogleUnavailable(GoogleError):
    """No usable answer: 5xx, timeout, connection error, unreadable body."""


class GoogleBadRequest(GoogleError):
    """400: the request itself is wrong (a bug, or a parameter combination Google refuses)."""


def quota_user(user: str) -> str:
    """The ``quotaUser`` value for a user: the address, or a stable hash if longer than 40."""
    key = user.strip().lower()
    if len(key) <= _QUOTA_USER_MAX:
        return key
    return hashlib.sha256(key.encode()).hexdigest()[:_QUOTA_USER_MAX]


class _TimedAuthRequest(AuthRequest):
    """google-auth's transport with this client's timeout on token requests (its own is 120 s)."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        super().__init__(session=session)
        self._timeout = timeout

    def __call__(  # type: ignore[no-untyped-def]
        self, url, method="GET", body=None, headers=None, timeout=None, **kwargs
    ):
        return super().__call__(  # type: ignore[no-untyped-call]
            url, method, body, headers, timeout=timeout or self._timeout, **kwargs
        )


class GoogleClient:
    """Synchronous Google REST calls as domain users; shared by a process's worker threads.

    ``service_account_info`` is the parsed JSON key of a service account with domain-wide
    delegation. ``max_concurrency`` requests are in flight at once app-wide; ``timeout``
    (seconds) bounds every request; a failed call is tried ``max_retries`` more times.
    ``on_error(reason)`` is called for every failed attempt, retried or not (metrics).
    """

    def __init__(
        self,
        service_account_info: Mapping[str, Any],
        *,
        calendar_base_url: str = DEFAULT_CALENDAR_BASE_URL,
        gmail_base_url: str = DEFAULT_GMAIL_BASE_URL,
        directory_base_url: str = DEFAULT_DIRECTORY_BASE_URL,
        max_concurrency: int = 8,
        timeout: float = 30.0,
        max_retries: int = 4,
        max_retry_wait: float = 60.0,
        on_error: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrency < 1 or max_retries < 0:
            raise ValueError("max_concurrency must be at least 1 and max_retries not negative")
        self._base = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            dict(service_account_info)
        )
        self.client_id = str(service_account_info.get("client_id") or "")
        self.calendar_base_url = calendar_base_url.rstrip("/")
        self.gmail_base_url = gmail_base_url.rstrip("/")
        self.directory_base_url = directory_base_url.rstrip("/")
        self._origins = {
            _origin(url)
            for url in (self.calendar_base_url, self.gmail_base_url, self.directory_base_url)
        }
        self._timeout = timeout
        self._max_retries = max_retries
        self._max_retry_wait = max_retry_wait
        self._on_error = on_error
        self._sleep = sleep
        self._clock = clock
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max_concurrency)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        self._auth_request = _TimedAuthRequest(self._session, timeout)
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._lock = threading.Lock()
        self._credentials: dict[tuple[str, tuple[str, ...]], service_account.Credentials] = {}
        self._refresh_locks: dict[tuple[str, tuple[str, ...]], threading.Lock] = {}
        self._gates: dict[str, float] = {}  # quota user -> clock time before which nothing goes

    # ----------------------------------------------------------------------- lifecycle

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> GoogleClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------------- URLs

    def calendar_url(self, path: str) -> str:
        return f"{self.calendar_base_url}/{path.lstrip('/')}"

    def gmail_url(self, path: str) -> str:
        return f"{self.gmail_base_url}/{path.lstrip('/')}"

    def directory_url(self, path: str) -> str:
        return f"{self.directory_base_url}/{path.lstrip('/')}"

    # ----------------------------------------------------------------------- public calls

    def get(
        self,
        url_or_path: str,
        *,
        as_user: str,
        scopes: Sequence[str],
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for an empty body). A path is a Calendar path."""
        return self._call("GET", url_or_path, as_user=as_user, scopes=scopes, params=params)

    def post(
        self,
        url_or_path: str,
        *,
        as_user: str,
        scopes: Sequence[str],
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        return self._call(
            "POST", url_or_path, as_user=as_user, scopes=scopes, params=params, json=json
        )

    def patch(
        self,
        url_or_path: str,
        *,
        as_user: str,
        scopes: Sequence[str],
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        return self._call(
            "PATCH", url_or_path, as_user=as_user, scopes=scopes, params=params, json=json
        )

    def pages(
        self,
        url_or_path: str,
        *,
        as_user: str,
        scopes: Sequence[str],
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Each page of a list call, following ``nextPageToken`` with the same parameters."""
        query = dict(params or {})
        while True:
            page = self.get(url_or_path, as_user=as_user, scopes=scopes, params=query)
            if not isinstance(page, dict):
                raise self._reported(
                    GoogleUnavailable(
                        f"Google GET {urlsplit(url_or_path).path} answered without a JSON object",
                        reason="google.bad_response",
                    ),
                    "GET",
                    url_or_path,
                )
            yield page
            token = page.get("nextPageToken")
            if not isinstance(token, str) or not token:
                return
            query["pageToken"] = token

    # ----------------------------------------------------------------------- one request

    def _call(
        self,
        method: str,
        url_or_path: str,
        *,
        as_user: str,
        scopes: Sequence[str],
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        url = self._url(url_or_path)
        shown = urlsplit(url).path  # never the query: it may hold sync or page tokens
        user = quota_user(as_user)
        query = {**(params or {}), "quotaUser": user}
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            retries_left = attempt <= self._max_retries
            self._wait_for_gate(user)
            token = self._token(as_user, scopes)
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            try:
                with self._slots:
                    response = self._session.request(
                        method,
                        url,
                        params=query,
                        json=json,
                        headers=headers,
                        timeout=self._timeout,
                        allow_redirects=False,  # a redirect must not carry the token elsewhere
                    )
            except requests.RequestException as failure:
                unanswered = _transport_error(method, shown, failure)
                retry = method in _IDEMPOTENT and retries_left
                self._report(method, shown, unanswered, attempt, retry)
                if not retry:
                    raise unanswered from None
                self._sleep(self._backoff(attempt))
                continue
            if response.status_code < 300:
                return self._decode(response, method, shown)
            error = _http_error(response, method, shown)
            if response.status_code == 401 and not renewed:
                # The cached token was revoked or expired early: one more try with a new one.
                renewed = True
                self._forget_token(as_user, scopes)
                self._report(method, shown, error, attempt, retry=True)
                continue
            if not _retryable(response.status_code, error.code):
                self._report(method, shown, error, attempt, retry=False)
                raise error
            wait = self._backoff(attempt) if error.retry_after is None else error.retry_after
            retry = retries_left and wait <= self._max_retry_wait
            self._report(method, shown, error, attempt, retry)
            if not retry:
                error.retry_after = wait  # when to come back, also when Google did not say
                raise error
            self._close_gate(user, wait)

    def _url(self, url_or_path: str) -> str:
        """The absolute URL; one on another origin is refused so tokens stay with Google."""
        if not urlsplit(url_or_path).scheme:
            return self.calendar_url(url_or_path)
        if _origin(url_or_path) not in self._origins:
            raise GoogleError(
                f"Refused a request to {urlsplit(url_or_path).hostname}: not a configured "
                "Google API origin, and access tokens go nowhere else",
                reason="google.bad_url",
                transient=False,
            )
        return url_or_path

    def _decode(self, response: requests.Response, method: str, shown: str) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self._reported(
                GoogleUnavailable(
                    f"Google {method} {shown} answered {response.status_code} with a body "
                    "that is not JSON",
                    reason="google.bad_response",
                    status=response.status_code,
                ),
                method,
                shown,
            ) from None

    def _backoff(self, attempt: int) -> float:
        """1, 2, 4… seconds (at most 32) after the first, second, third… failure, + jitter."""
        base = min(2.0 ** (attempt - 1), _MAX_BACKOFF)
        return base + random.random()  # noqa: S311 - jitter, not a secret

    def _report(
        self, method: str, shown: str, error: GoogleError, attempt: int, retry: bool
    ) -> None:
        log.warning(
            "google.request_failed method=%s path=%s status=%s reason=%s attempt=%s retry=%s",
            method,
            urlsplit(shown).path,
            error.status,
            error.reason,
            attempt,
            "yes" if retry else "no",
        )
        if self._on_error is not None:
            self._on_error(error.reason)

    def _reported(self, error: GoogleError, method: str, shown: str) -> GoogleError:
        self._report(method, shown, error, 1, retry=False)
        return error

    # ----------------------------------------------------------------------- Retry-After gates

    def _close_gate(self, user: str, seconds: float) -> None:
        until = self._clock() + seconds
        with self._lock:
            if self._gates.get(user, 0.0) < until:
                self._gates[user] = until

    def _wait_for_gate(self, user: str) -> None:
        """Sleep until the user's gate has passed; a wait too long raises GoogleThrottled."""
        slept_until: float | None = None
        while True:
            with self._lock:
                until = self._gates.get(user, 0.0)
            remaining = until - self._clock()
            if remaining <= 0 or slept_until == until:
                return
            if remaining > self._max_retry_wait:
                raise GoogleThrottled(
                    f"Google asked to wait {remaining:.0f} s before the next request for this "
                    f"user, longer than max_retry_wait ({self._max_retry_wait:.0f} s)",
                    reason="google.throttled",
                    retry_after=remaining,
                )
            self._sleep(remaining)
            slept_until = until

    # ----------------------------------------------------------------------- tokens

    def _token(self, user: str, scopes: Sequence[str]) -> str:
        """A valid access token for ``user`` and ``scopes`` (refreshed when near expiry)."""
        key = (user.strip().lower(), tuple(sorted(scopes)))
        with self._lock:
            credentials = self._credentials.get(key)
            if credentials is None:
                credentials = self._base.with_scopes(list(key[1])).with_subject(key[0])
                self._credentials[key] = credentials
            refresh_lock = self._refresh_locks.setdefault(key, threading.Lock())
        with refresh_lock:
            if not credentials.valid:
                self._refresh(credentials, key[0], key[1])
            token = credentials.token
        if not isinstance(token, str) or not token:
            raise self._reported(
                GoogleAccessDenied(
                    "Google's token endpoint answered without an access token",
                    reason="google.access_denied",
                    transient=False,
                ),
                "POST",
                "token",
            )
        return token

    def _forget_token(self, user: str, scopes: Sequence[str]) -> None:
        with self._lock:
            self._credentials.pop((user.strip().lower(), tuple(sorted(scopes))), None)

    def _refresh(
        self, credentials: service_account.Credentials, user: str, scopes: Sequence[str]
    ) -> None:
        # credentials.refresh, not before_request: the latter also starts Google's "regional
        # access boundary" lookups in a background thread, which this client does not need.
        try:
            credentials.refresh(self._auth_request)  # type: ignore[no-untyped-call]
        except google_exceptions.RefreshError as failure:
            raise self._reported(self._refusal(failure, user, scopes), "POST", "token") from None
        except google_exceptions.TransportError as failure:
            raise self._reported(
                GoogleUnavailable(
                    f"Google's token endpoint could not be reached ({type(failure).__name__})",
                    reason="google.unavailable",
                ),
                "POST",
                "token",
            ) from None
        except (google_exceptions.GoogleAuthError, ValueError) as failure:
            raise self._reported(
                GoogleAccessDenied(
                    f"No Google token for {user}: {type(failure).__name__}",
                    reason="google.access_denied",
                    transient=False,
                ),
                "POST",
                "token",
            ) from None

    def _refusal(
        self, failure: google_exceptions.RefreshError, user: str, scopes: Sequence[str]
    ) -> GoogleError:
        data = failure.args[1] if len(failure.args) > 1 else None
        code = str(data.get("error") or "") if isinstance(data, Mapping) else ""
        description = (
            str(data.get("error_description") or "")[:_MAX_MESSAGE_CHARS]
            if isinstance(data, Mapping)
            else ""
        )
        if getattr(failure, "retryable", False):
            return GoogleUnavailable(
                f"Google's token endpoint failed for {user}: {code or 'server error'}",
                reason="google.unavailable",
                code=code,
            )
        said = f"{code}: {description}" if description else code or "refused"
        if code in _DELEGATION_ERRORS or not code:
            client = f" (client id {self.client_id})" if self.client_id else ""
            message = (
                f"Google refused a token to act for {user} ({said}). A Workspace super-admin "
                f"must grant domain-wide delegation to the service account{client} for the "
                f"scopes {', '.join(scopes)}: Admin console > Security > Access and data "
                "control > API controls > Manage Domain Wide Delegation."
            )
        else:
            message = (
                f"Google refused a token to act for {user} ({said}). The user may not exist or "
                "be suspended, or the service account key was revoked."
            )
        return GoogleAccessDenied(
            message, reason="google.access_denied", code=code, transient=False
        )


# --------------------------------------------------------------------------- helpers


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    default_port = {"https": 443, "http": 80}.get(scheme)
    return scheme, (parts.hostname or "").lower(), parts.port or default_port


def _retryable(status: int, code: str) -> bool:
    return status in RETRYABLE_STATUSES or (
        status == 403 and code.casefold() in _RATE_LIMIT_REASONS
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _error_details(body: Any) -> tuple[str, str]:
    """(first errors[].reason, message) of Google's error body; blanks when it has none."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):  # OAuth-style {"error": "invalid_grant"}
        return error, str(body.get("error_description") or "")
    if not isinstance(error, dict):
        return "", ""
    code = ""
    details = error.get("errors")
    if isinstance(details, list) and details and isinstance(details[0], dict):
        code = str(details[0].get("reason") or "")
    if not code:
        code = str(error.get("status") or "")
    return code, str(error.get("message") or "")


def _http_error(response: requests.Response, method: str, shown: str) -> GoogleError:
    try:
        body = response.json()
    except ValueError:
        body = None  # an HTML page from a proxy, say
    code, said = _error_details(body)
    status = response.status_code
    text = f"{status} {code}".strip()
    if said:
        text += f": {said[:_MAX_MESSAGE_CHARS]}"
    message = f"Google {method} {shown} failed: {text}"
    retry_after = _retry_after(response.headers)
    kind: type[GoogleError]
    transient = True
    folded = code.casefold()
    if status == 404:
        kind, reason, transient = GoogleNotFound, "google.not_found", False
    elif status == 410:
        kind, reason = GoogleGone, "google.gone"
    elif status == 429 or (status == 403 and folded in _RATE_LIMIT_REASONS | _QUOTA_REASONS):
        kind, reason = GoogleThrottled, "google.throttled"
    elif status in (401, 403):
        kind, reason, transient = GoogleAccessDenied, "google.access_denied", False
    elif status >= 500:
        kind, reason = GoogleUnavailable, "google.unavailable"
    elif status == 400:
        kind, reason, transient = GoogleBadRequest, "google.bad_request", False
    else:
        kind, reason, transient = GoogleError, f"google.http_{status}", False
    return kind(
        message,
        reason=reason,
        status=status,
        code=code,
        retry_after=retry_after,
        transient=transient,
    )


def _transport_error(
    method: str, shown: str, failure: requests.RequestException
) -> GoogleUnavailable:
    # requests' own message holds the full URL (and so any sync token): name the type only.
    if isinstance(failure, requests.Timeout):
        return GoogleUnavailable(
            f"Google {method} {shown} timed out ({type(failure).__name__})",
            reason="google.timeout",
        )
    return GoogleUnavailable(
        f"Google {method} {shown} could not be reached ({type(failure).__name__})",
        reason="google.unavailable",
    )
