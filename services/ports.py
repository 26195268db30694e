"""What the sync engine needs from a calendar provider, in provider-neutral terms.

graph/ (and later gmail/) implement these protocols; services/mailboxes.py drives them. Provider
failures arrive here as `ProviderError` with a dotted `reason` (for metrics and the health view)
and a message in words, never as an HTTP library's exception.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.meetings import MeetingSnapshot, Removed
from services.tables import Provider

__all__ = [
    "CalendarSource",
    "Change",
    "ChangeSignal",
    "Channel",
    "ChannelGone",
    "CursorExpired",
    "DeltaRound",
    "Directory",
    "DirectoryEntry",
    "MailboxRef",
    "ProviderError",
    "PushChannels",
]

# What a source yields: the current state of a copy, or the news that the copy is really gone
# (a source checks that a "removed" item is deleted, not merely out of a window, before saying so).
Change = MeetingSnapshot | Removed


@dataclass(frozen=True, slots=True)
class MailboxRef:
    org_id: int
    provider: Provider
    address: str  # normalised e-mail address: the `mailbox` of snapshots and links
    external_id: str  # the provider's id of the user (Graph user id)


@dataclass(frozen=True, slots=True)
class ChangeSignal:
    """What a notification said: this event changed. A hint only; sources fetch current state."""

    event_id: str
    change_type: str = "updated"  # created / updated / deleted


@dataclass(frozen=True, slots=True)
class Channel:
    """A push registration the provider confirmed."""

    external_id: str
    resource: str
    expires_at: dt.datetime  # aware UTC


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    external_id: str
    address: str
    display_name: str = ""


class ProviderError(Exception):
    """A provider call failed. `reason` is dotted ("graph.throttled"); the message is for people.

    `retry_after` (seconds) is set when the provider said when to come back; `transient` says
    whether trying again later can help (throttling, outages) or not (access denied).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        retry_after: float | None = None,
        transient: bool = True,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after
        self.transient = transient


class CursorExpired(ProviderError):
    """The incremental-sync cursor (delta link / sync token) is no longer valid: start over."""

    def __init__(self, message: str = "the sync cursor expired", *, reason: str) -> None:
        super().__init__(message, reason=reason, transient=True)


class ChannelGone(ProviderError):
    """The push registration no longer exists at the provider: create a new one."""

    def __init__(self, message: str = "the subscription no longer exists", *, reason: str) -> None:
        super().__init__(message, reason=reason, transient=True)


class DeltaRound(Protocol):
    """One incremental sync round: iterate the changes, then read `cursor` for the next round."""

    def __iter__(self) -> Iterator[Change]: ...

    @property
    def cursor(self) -> str:
        """The cursor to resume from; only valid once iteration has finished."""
        ...


class CalendarSource(Protocol):
    def changed_events(
        self, mailbox: MailboxRef, signals: Sequence[ChangeSignal]
    ) -> Iterator[Change]:
        """The current state of the events the signals name.

        Each event is fetched once however many signals name it. A series master comes before
        its exceptions (the sync rules need the series first); an event that no longer exists
        is yielded as `Removed`.
        """
        ...

    def delta(
        self, mailbox: MailboxRef, cursor: str | None, window: tuple[dt.datetime, dt.datetime]
    ) -> DeltaRound:
        """Changes since `cursor`, or everything in `window` when `cursor` is None.

        Raises `CursorExpired` (possibly while iterating) when the provider refuses the cursor.
        """
        ...


class PushChannels(Protocol):
    def subscribe(self, mailbox: MailboxRef, client_state: str) -> Channel:
        """Create the mailbox's subscription; an existing duplicate at the provider is replaced."""
        ...

    def renew(self, external_id: str) -> dt.datetime:
        """Extend a subscription; returns the new expiry. `ChannelGone` when it no longer exists."""
        ...

    def reauthorize(self, external_id: str) -> None:
        """Answer a `reauthorizationRequired` lifecycle event. `ChannelGone` when it is gone."""
        ...

    def unsubscribe(self, external_id: str) -> None:
        """Delete a subscription; one that is already gone is not an error."""
        ...


class Directory(Protocol):
    def mailboxes(self, group_id: str | None = None) -> Iterator[DirectoryEntry]:
        """The mailboxes to watch: enabled users with a mailbox, or the members of a group."""
        ...
