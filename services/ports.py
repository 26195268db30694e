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
    "EventFinder",
    "EventIds",
    "EventTagWriter",
    "MailNews",
    "MailWatch",
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
    # Graph notifications name the event that changed (the sync fetches those events); Google
    # Calendar's only say "this calendar changed" (the sync runs an incremental round instead).
    signals_name_events: bool

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
    # Graph subscriptions are extended in place; Google Calendar channels cannot be, so the
    # caller replaces them (a new channel first, then the old one is stopped: an overlap).
    renewable: bool

    def subscribe(self, mailbox: MailboxRef, client_state: str) -> Channel:
        """Create the mailbox's subscription; an existing duplicate at the provider is replaced."""
        ...

    def renew(self, external_id: str) -> dt.datetime:
        """Extend a subscription; returns the new expiry. `ChannelGone` when it no longer exists."""
        ...

    def reauthorize(self, external_id: str) -> None:
        """Answer a `reauthorizationRequired` lifecycle event. `ChannelGone` when it is gone."""
        ...

    def unsubscribe(
        self, external_id: str, *, resource: str = "", mailbox: MailboxRef | None = None
    ) -> None:
        """Delete a subscription; one that is already gone is not an error.

        `resource` and `mailbox` are what the subscription was created with (Google's
        channels.stop needs the channel's resource id, and is called as the mailbox's user).
        """
        ...


class Directory(Protocol):
    def mailboxes(self, group_id: str | None = None) -> Iterator[DirectoryEntry]:
        """The mailboxes to watch: enabled users with a mailbox, or the members of a group."""
        ...


@dataclass(frozen=True, slots=True)
class MailNews:
    """What a mailbox's mail history says since the last look."""

    history_id: str  # where to resume next time
    calendar_messages: int  # new messages carrying a text/calendar part (invitations, replies)


class MailWatch(Protocol):
    """Gmail push: a watch per mailbox, and its history as a second signal for calendar syncs."""

    def watch(self, mailbox: MailboxRef) -> Channel:
        """Start (or restart) the watch; `external_id` is the mailbox address, `resource` the
        history id it starts from. Gmail asks for a new watch call at least every 7 days."""
        ...

    def stop(self, mailbox: MailboxRef) -> None:
        """Stop the watch; one that is already stopped is not an error."""
        ...

    def news(self, mailbox: MailboxRef, since_history_id: str) -> MailNews:
        """New mail since `since_history_id`. `CursorExpired` when the id is too old (404)."""
        ...


class EventFinder(Protocol):
    def event_ids_for_ical_uid(self, mailbox: MailboxRef, ical_uid: str) -> list[str]:
        """The ids of the mailbox's copies of the meeting with this iCalUID (none: empty)."""
        ...


class EventIds(Protocol):
    def stored_event_id(self, mailbox: MailboxRef, event_id: str) -> str | None:
        """The id sync stores for the mailbox's event that a client knows as `event_id`, or None
        when the mailbox has no such event. (Outlook clients know the regular REST id; sync
        stores the immutable one.)"""
        ...


class EventTagWriter(Protocol):
    def write_tag(self, mailbox: MailboxRef, event_id: str, activity_id: int) -> None:
        """Store our activity id on the mailbox's copy of the event (private to that copy)."""
        ...
