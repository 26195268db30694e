"""Gmail as a second signal for calendar syncs, and invitations' iCalUID from messages.

``GmailWatch`` (``services.ports.MailWatch``, reference/google.md §6): ``users.watch`` on the
INBOX publishes to a Pub/Sub topic; a push then makes the caller read ``users.history.list``
from the last history id (``historyTypes=messageAdded``) and count the new messages carrying a
``text/calendar`` part (invitations, updates, replies), which is worth a calendar sync. A
history id Gmail no longer knows is a 404: ``CursorExpired`` (``google.history_expired``).

``GmailMessages.calendar_uid`` reads one message as its user (``format=full``), finds the
iCalendar part (inline ``body.data`` or an attachment read with ``messages.attachments.get``),
and returns the VEVENT's ``UID`` (the Calendar event's ``iCalUID``).

Both act for the user with ``gmail.readonly`` through domain-wide delegation.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

from gmail.channels import expiry_from_ms
from gmail.client import GMAIL_SCOPE, GoogleClient, GoogleNotFound
from services.ports import Channel, CursorExpired, MailboxRef, MailNews, ProviderError

__all__ = ["GmailMessages", "GmailWatch", "gmail_message_id", "ical_uid_from_calendar"]

log = logging.getLogger(__name__)

_SCOPES: Final = (GMAIL_SCOPE,)
_CALENDAR_TYPES: Final = frozenset({"text/calendar", "application/ics"})
# Only the MIME tree's types, four levels deep (Gmail's partial-response syntax): an invitation
# is typically multipart/mixed > multipart/alternative > text/calendar.
_STRUCTURE_FIELDS: Final = (
    "id,payload(mimeType,filename,parts(mimeType,filename,parts(mimeType,filename,"
    "parts(mimeType,filename,parts(mimeType,filename)))))"
)
_MAX_PARTS: Final = 500
_MAX_CALENDAR_BYTES: Final = 5_000_000
_WATCH_DAYS: Final = timedelta(days=7)
_UID: Final = re.compile(r"^UID(?:;[^:]*)?:(.*)$", re.IGNORECASE)


def gmail_message_id(message_id: str) -> str:
    """The Gmail API id of a message: add-on events may name it ``msg-f:<decimal>``, the same
    number the API writes in hex (unverified against Google's documentation)."""
    text = message_id.strip()
    if text.startswith(("msg-f:", "msg-a:")):
        number = text.partition(":")[2]
        if number.isascii() and number.isdecimal():
            return format(int(number), "x")
    return text


class GmailWatch:
    """``MailWatch`` over ``users.watch`` / ``users.stop`` / ``users.history.list``."""

    def __init__(self, client: GoogleClient, *, topic: str) -> None:
        if not topic.startswith("projects/") or "/topics/" not in topic:
            raise ValueError("topic must be projects/<project>/topics/<topic>")
        self._client = client
        self._topic = topic

    def watch(self, mailbox: MailboxRef) -> Channel:
        body = self._client.post(
            self._client.gmail_url("users/me/watch"),
            as_user=mailbox.address,
            scopes=_SCOPES,
            json={
                "topicName": self._topic,
                "labelIds": ["INBOX"],
                "labelFilterBehavior": "INCLUDE",
            },
        )
        answer = body if isinstance(body, dict) else {}
        history_id = answer.get("historyId")
        if history_id is None or not str(history_id):
            raise ProviderError(
                "Gmail started a watch but returned no historyId", reason="google.bad_response"
            )
        expires_at = expiry_from_ms(answer.get("expiration")) or datetime.now(UTC) + _WATCH_DAYS
        return Channel(external_id=mailbox.address, resource=str(history_id), expires_at=expires_at)

    def stop(self, mailbox: MailboxRef) -> None:
        try:
            self._client.post(
                self._client.gmail_url("users/me/stop"), as_user=mailbox.address, scopes=_SCOPES
            )
        except GoogleNotFound:
            return

    def news(self, mailbox: MailboxRef, since_history_id: str) -> MailNews:
        params = {
            "startHistoryId": since_history_id,
            "historyTypes": "messageAdded",
            "maxResults": "500",
        }
        added: dict[str, None] = {}
        history_id = since_history_id
        try:
            for page in self._client.pages(
                self._client.gmail_url("users/me/history"),
                as_user=mailbox.address,
                scopes=_SCOPES,
                params=params,
            ):
                current = page.get("historyId")
                if current is not None and str(current):
                    history_id = str(current)
                for record in _list(page.get("history")):
                    for entry in _list(record.get("messagesAdded")):
                        message = entry.get("message")
                        message_id = message.get("id") if isinstance(message, Mapping) else None
                        if isinstance(message_id, str) and message_id:
                            added[message_id] = None
        except GoogleNotFound as err:
            raise CursorExpired(
                f"Gmail no longer knows history id {since_history_id}: {err}",
                reason="google.history_expired",
            ) from err
        count = sum(1 for message_id in added if self._has_calendar_part(mailbox, message_id))
        return MailNews(history_id=history_id, calendar_messages=count)

    def _has_calendar_part(self, mailbox: MailboxRef, message_id: str) -> bool:
        try:
            message = self._client.get(
                self._client.gmail_url(f"users/me/messages/{quote(message_id, safe='')}"),
                as_user=mailbox.address,
                scopes=_SCOPES,
                params={"format": "full", "fields": _STRUCTURE_FIELDS},
            )
        except GoogleNotFound:
            return False  # deleted since
        payload = message.get("payload") if isinstance(message, Mapping) else None
        return any(_is_calendar(part) for part in _parts(payload))


class GmailMessages:
    """Reads invitations' iCalUID from Gmail messages, as the mailbox's user."""

    def __init__(self, client: GoogleClient) -> None:
        self._client = client

    def calendar_uid(self, mailbox_address: str, message_id: str) -> str | None:
        """The UID of the message's iCalendar VEVENT; None without one (or without the message)."""
        api_id = quote(gmail_message_id(message_id), safe="")
        try:
            message = self._client.get(
                self._client.gmail_url(f"users/me/messages/{api_id}"),
                as_user=mailbox_address,
                scopes=_SCOPES,
                params={"format": "full"},
            )
        except GoogleNotFound:
            return None
        payload = message.get("payload") if isinstance(message, Mapping) else None
        for part in _parts(payload):
            if not _is_calendar(part):
                continue
            body = part.get("body")
            body = body if isinstance(body, Mapping) else {}
            data = body.get("data")
            attachment_id = body.get("attachmentId")
            if not data and isinstance(attachment_id, str) and attachment_id:
                data = self._attachment(mailbox_address, api_id, attachment_id)
            text = _decode(data)
            uid = ical_uid_from_calendar(text) if text else None
            if uid:
                return uid
        return None

    def _attachment(self, mailbox_address: str, api_id: str, attachment_id: str) -> object:
        try:
            answer = self._client.get(
                self._client.gmail_url(
                    f"users/me/messages/{api_id}/attachments/{quote(attachment_id, safe='')}"
                ),
                as_user=mailbox_address,
                scopes=_SCOPES,
            )
        except GoogleNotFound:
            return None
        return answer.get("data") if isinstance(answer, Mapping) else None


def ical_uid_from_calendar(text: str) -> str | None:
    """The ``UID`` of the first VEVENT of an iCalendar text (RFC 5545 line folding undone)."""
    unfolded = re.sub(r"\r?\n[ \t]", "", text)
    in_event = False
    for raw in unfolded.splitlines():
        line = raw.strip()
        upper = line.upper()
        if upper == "BEGIN:VEVENT":
            in_event = True
        elif upper == "END:VEVENT":
            in_event = False
        elif in_event:
            match = _UID.match(line)
            if match and match.group(1).strip():
                return match.group(1).strip()
    return None


# --------------------------------------------------------------------------- helpers


def _list(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _parts(payload: object) -> Iterator[Mapping[str, Any]]:
    """Every part of a MIME tree, depth first, the root included (bounded)."""
    stack = [payload] if isinstance(payload, Mapping) else []
    seen = 0
    while stack and seen < _MAX_PARTS:
        part = stack.pop()
        seen += 1
        yield part
        children = _list(part.get("parts"))
        stack.extend(reversed(children))


def _is_calendar(part: Mapping[str, Any]) -> bool:
    mime = str(part.get("mimeType") or "").split(";")[0].strip().lower()
    filename = str(part.get("filename") or "").lower()
    return mime in _CALENDAR_TYPES or filename.endswith(".ics")


def _decode(data: object) -> str | None:
    """Gmail's base64url body data as text (UTF-8, bad bytes replaced)."""
    if not isinstance(data, str) or not data or len(data) > _MAX_CALENDAR_BYTES * 2:
        return None
    try:
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        log.warning("gmail.unreadable_calendar_part")
        return None
    return raw.decode("utf-8", errors="replace")
