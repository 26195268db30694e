"""Graph change-notification subscriptions (``PushChannels``) and the directory (``Directory``).

``GraphSubscriptions`` keeps one subscription per mailbox on ``/users/{id}/events``;
``GraphDirectory`` lists the mailboxes to watch. The Graph pages they follow:

* create: https://learn.microsoft.com/graph/api/subscription-post-subscriptions
  (409 "already exists for the requested combination", the validation handshake:
  https://learn.microsoft.com/graph/change-notifications-delivery-webhooks)
* list / renew / delete: https://learn.microsoft.com/graph/api/subscription-list,
  https://learn.microsoft.com/graph/api/subscription-update,
  https://learn.microsoft.com/graph/api/subscription-delete
* lifetime (Outlook events: at most 10,080 minutes):
  https://learn.microsoft.com/graph/change-notifications-overview#subscription-lifetime
* reauthorize: https://learn.microsoft.com/graph/api/subscription-reauthorize and
  https://learn.microsoft.com/graph/change-notifications-lifecycle-events
* immutable ids in notifications: https://learn.microsoft.com/graph/outlook-immutable-id
* users and group members: https://learn.microsoft.com/graph/api/user-list,
  https://learn.microsoft.com/graph/api/group-list-members, paging:
  https://learn.microsoft.com/graph/paging

The validation handshake itself (Graph POSTs ``?validationToken=`` to our URLs while we wait
for the create request) is answered by the web app, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

from graph.calendar import PREFER_IMMUTABLE_IDS, provider_errors, utc_iso
from graph.client import GraphClient, GraphConflict, GraphNotFound
from services.ports import Channel, ChannelGone, DirectoryEntry, MailboxRef, ProviderError

__all__ = ["DEFAULT_LIFETIME", "GraphDirectory", "GraphSubscriptions"]

# Ten minutes under Outlook's 10,080-minute maximum, so clock skew never makes Graph refuse it.
DEFAULT_LIFETIME: Final = timedelta(minutes=10_070)
_CHANGE_TYPES: Final = "created,updated,deleted"
_NOT_FOUND: Final = "graph.not_found"
_USER_FIELDS: Final = "id,mail,userPrincipalName,displayName,accountEnabled,userType"
_USER_TYPE: Final = "#microsoft.graph.user"


def _now() -> datetime:
    return datetime.now(UTC)


def _resource(external_id: str) -> str:
    return f"/users/{external_id}/events"


def _same_resource(resource: object, external_id: str) -> bool:
    # Graph may echo the resource with or without the leading "/" and in another case.
    if not isinstance(resource, str):
        return False
    return resource.strip("/").casefold() == _resource(external_id).strip("/").casefold()


class GraphSubscriptions:
    """``PushChannels`` over Graph subscriptions to each mailbox's events.

    ``notification_url`` gets the change notifications and ``lifecycle_url`` the lifecycle
    events (both must answer the validation handshake); ``lifetime`` is how far ahead each
    create or renewal sets ``expirationDateTime``.
    """

    renewable = True  # PATCH extends a subscription in place

    def __init__(
        self,
        client: GraphClient,
        *,
        notification_url: str,
        lifecycle_url: str,
        lifetime: timedelta = DEFAULT_LIFETIME,
        now: Callable[[], datetime] = _now,
    ) -> None:
        if lifetime <= timedelta(0):
            raise ValueError("lifetime must be positive")
        self._client = client
        self._notification_url = notification_url
        self._lifecycle_url = lifecycle_url
        self._lifetime = lifetime
        self._now = now

    def subscribe(self, mailbox: MailboxRef, client_state: str) -> Channel:
        """Create the mailbox's subscription, replacing one of ours Graph already has."""
        with provider_errors():
            try:
                return self._create(mailbox, client_state)
            except GraphConflict:
                # Ours from before a lost database row (or a crash after Graph said 201):
                # Graph allows one per app and mailbox, so the old one has to go.
                removed = self._delete_ours(mailbox)
            try:
                return self._create(mailbox, client_state)
            except GraphConflict as err:
                if removed:
                    raise  # someone created it again meanwhile: worth another try later
                raise ProviderError(
                    "Graph has a subscription for this mailbox that points at another "
                    f"notification URL than {self._notification_url}: {err}",
                    reason=err.reason,
                    transient=False,
                ) from err

    def _create(self, mailbox: MailboxRef, client_state: str) -> Channel:
        resource = _resource(mailbox.external_id)
        body = self._client.post(
            "/subscriptions",
            {
                "changeType": _CHANGE_TYPES,
                "notificationUrl": self._notification_url,
                "lifecycleNotificationUrl": self._lifecycle_url,
                "resource": resource,
                "expirationDateTime": utc_iso(self._now() + self._lifetime),
                "clientState": client_state,
                "latestSupportedTlsVersion": "v1_2",
            },
            mailbox=mailbox.external_id,
            headers={"Prefer": PREFER_IMMUTABLE_IDS},
        )
        created = body or {}
        external_id = created.get("id")
        if not isinstance(external_id, str) or not external_id:
            raise ProviderError(
                "Graph created a subscription but returned no id", reason="graph.bad_response"
            )
        return Channel(
            external_id=external_id,
            resource=str(created.get("resource") or resource),
            expires_at=_expiry(created),
        )

    def _delete_ours(self, mailbox: MailboxRef) -> int:
        """Delete this app's subscriptions to the mailbox that notify our URL; how many."""
        ours = [
            str(item["id"])
            for page in self._client.pages("/subscriptions")
            for item in page.get("value") or ()
            if isinstance(item, Mapping)
            and item.get("id")
            and _same_resource(item.get("resource"), mailbox.external_id)
            and item.get("notificationUrl") == self._notification_url
        ]
        for external_id in ours:
            self._delete(external_id)
        return len(ours)

    def renew(self, external_id: str) -> datetime:
        """Move the expiry ``lifetime`` ahead; ``ChannelGone`` when Graph no longer has it."""
        expires_at = self._now() + self._lifetime
        with provider_errors():
            try:
                body = self._client.patch(
                    self._path(external_id), {"expirationDateTime": utc_iso(expires_at)}
                )
            except GraphNotFound:
                raise ChannelGone(reason=_NOT_FOUND) from None
        # Graph answers with the subscription; what it says counts (it may round the time).
        return _expiry(body) if body and body.get("expirationDateTime") else expires_at

    def reauthorize(self, external_id: str) -> None:
        """Answer ``reauthorizationRequired``; ``ChannelGone`` when Graph no longer has it."""
        with provider_errors():
            try:
                self._client.post(f"{self._path(external_id)}/reauthorize", None)
            except GraphNotFound:
                raise ChannelGone(reason=_NOT_FOUND) from None

    def unsubscribe(
        self, external_id: str, *, resource: str = "", mailbox: MailboxRef | None = None
    ) -> None:
        """Delete the subscription; one Graph no longer has is already what we want."""
        with provider_errors():
            self._delete(external_id)

    def _delete(self, external_id: str) -> None:
        with suppress(GraphNotFound):
            self._client.delete(self._path(external_id))

    @staticmethod
    def _path(external_id: str) -> str:
        return f"/subscriptions/{quote(external_id, safe='')}"


def _expiry(subscription: Mapping[str, Any]) -> datetime:
    """The aware UTC ``expirationDateTime`` of a subscription (7 fraction digits and all)."""
    value = subscription.get("expirationDateTime")
    try:
        # Python 3.11 reads "Z" and cuts a seventh fraction digit.
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise ProviderError(
            f"Graph returned an unreadable expirationDateTime {value!r}",
            reason="graph.bad_response",
        )
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class GraphDirectory:
    """``Directory`` over Graph users: enabled accounts with a mailbox address.

    ``page_size`` is the ``$top`` of each request (999 is Graph's maximum for users).
    """

    def __init__(self, client: GraphClient, *, page_size: int = 999) -> None:
        if not 1 <= page_size <= 999:
            raise ValueError("page_size must be between 1 and 999")
        self._client = client
        self._page_size = page_size

    def mailboxes(self, group_id: str | None = None) -> Iterator[DirectoryEntry]:
        """Every enabled user with a mail address, or the user members of ``group_id``."""
        path = "/users" if group_id is None else f"/groups/{quote(group_id, safe='')}/members"
        params = {"$select": _USER_FIELDS, "$top": str(self._page_size)}
        with provider_errors():
            for page in self._client.pages(path, params=params):
                for item in page.get("value") or ():
                    entry = _entry(item, members=group_id is not None)
                    if entry is not None:
                        yield entry


def _entry(item: object, *, members: bool) -> DirectoryEntry | None:
    if not isinstance(item, Mapping):
        return None
    # A group also holds devices, contacts and other groups; only users have mailboxes.
    if members and item.get("@odata.type") != _USER_TYPE:
        return None
    # accountEnabled is only absent when the caller cannot read it; such a user counts.
    if item.get("accountEnabled") is False:
        return None
    # Guests have a mail address but their mailbox is elsewhere: they are not our colleagues.
    if item.get("userType") == "Guest":
        return None
    external_id, mail = item.get("id"), item.get("mail")
    if not isinstance(external_id, str) or not external_id:
        return None
    if not isinstance(mail, str) or "@" not in mail:
        return None  # no Exchange mailbox (mail is null for users without one)
    name = item.get("displayName")
    return DirectoryEntry(
        external_id=external_id,
        address=mail.strip().lower(),
        display_name=name if isinstance(name, str) else "",
    )
