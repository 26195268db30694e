"""Google Calendar push channels as ``services.ports.PushChannels`` (reference/google.md §4.1-4.3).

One channel per mailbox on its primary calendar's events collection, created with
``events.watch`` as that user (domain-wide delegation) with a new random channel id, the
caller's secret as the channel ``token`` (echoed in ``X-Goog-Channel-Token``) and a ``ttl``.

Channels cannot be renewed ("there's no automatic way to renew a notification channel"):
``renewable`` is False, and ``renew``/``reauthorize`` raise ``ChannelGone`` so the caller
creates a new channel and then stops the old one (an overlap in which both notify). Google
has no API to list channels, so ``subscribe`` cannot find and replace a lost one of ours; it
expires by itself. ``channels.stop`` needs the channel id and its ``resourceId`` and is called
as the mailbox's user; a channel Google no longer knows (404) is already stopped.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

from gmail.client import CALENDAR_SCOPE, GoogleClient, GoogleNotFound
from services.ports import Channel, ChannelGone, MailboxRef, ProviderError

__all__ = ["DEFAULT_TTL", "GoogleCalendarChannels", "expiry_from_ms"]

DEFAULT_TTL: Final = timedelta(days=7)  # Google's default and (as far as known) its maximum
_SCOPES: Final = (CALENDAR_SCOPE,)
_NOT_RENEWABLE: Final = "google.channel_not_renewable"


def expiry_from_ms(value: object) -> datetime | None:
    """An ``expiration`` in Unix milliseconds (Google sends a string) as aware UTC."""
    try:
        millis = int(str(value))
    except (TypeError, ValueError):
        return None
    if millis <= 0:
        return None
    return datetime.fromtimestamp(millis / 1000, tz=UTC)


class GoogleCalendarChannels:
    """``PushChannels`` over Calendar ``events.watch`` / ``channels.stop``."""

    renewable = False  # a channel is replaced, never extended

    def __init__(
        self, client: GoogleClient, *, notification_url: str, ttl: timedelta = DEFAULT_TTL
    ) -> None:
        if ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        self._client = client
        self._notification_url = notification_url
        self._ttl = ttl

    def subscribe(self, mailbox: MailboxRef, client_state: str) -> Channel:
        channel_id = str(uuid.uuid4())
        body = self._client.post(
            "calendars/primary/events/watch",
            as_user=mailbox.address,
            scopes=_SCOPES,
            json={
                "id": channel_id,
                "type": "web_hook",
                "address": self._notification_url,
                "token": client_state,
                "params": {"ttl": str(int(self._ttl.total_seconds()))},
            },
        )
        created = body if isinstance(body, dict) else {}
        resource_id = created.get("resourceId")
        if not isinstance(resource_id, str) or not resource_id:
            raise ProviderError(
                "Google created a Calendar channel but returned no resourceId",
                reason="google.bad_response",
            )
        expires_at = expiry_from_ms(created.get("expiration"))
        if expires_at is None:  # not sent: the ttl we asked for applies
            expires_at = datetime.now(UTC) + self._ttl
        return Channel(
            external_id=str(created.get("id") or channel_id),
            resource=resource_id,
            expires_at=expires_at,
        )

    def renew(self, external_id: str) -> datetime:
        raise ChannelGone("Google Calendar channels cannot be renewed", reason=_NOT_RENEWABLE)

    def reauthorize(self, external_id: str) -> None:
        raise ChannelGone("Google Calendar channels cannot be renewed", reason=_NOT_RENEWABLE)

    def unsubscribe(
        self, external_id: str, *, resource: str = "", mailbox: MailboxRef | None = None
    ) -> None:
        if mailbox is None:
            raise ValueError("Google's channels.stop is called as the mailbox's user")
        try:
            self._client.post(
                "channels/stop",
                as_user=mailbox.address,
                scopes=_SCOPES,
                json={"id": external_id, "resourceId": resource},
            )
        except GoogleNotFound:
            return
