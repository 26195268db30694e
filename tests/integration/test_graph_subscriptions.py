"""GraphSubscriptions and GraphDirectory against the Graph stand-in over HTTP.

Graph validates the notification URLs while the create request waits; a small threaded echo
server (standing in for the web app, which answers the handshake in production) answers it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pytest

from graph.auth import AppTokenProvider
from graph.client import GraphClient
from graph.subscriptions import GraphDirectory, GraphSubscriptions
from services.ports import (
    ChannelGone,
    Directory,
    DirectoryEntry,
    MailboxRef,
    ProviderError,
    PushChannels,
)
from services.tables import Provider
from tests.integration.conftest import CLIENT_ID, SECRET
from tests.standins import BackgroundServer, MicrosoftStandIns, microsoft_standins
from tests.standins.graph import GraphUser

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

PUBLIC = "https://crm.test"
NOTIFY_URL = f"{PUBLIC}/graph/notifications?tenant=7"
LIFECYCLE_URL = f"{PUBLIC}/graph/lifecycle?tenant=7"


def echo_validation(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Answer Graph's validation handshake: the decoded token, as text/plain, 200."""
    token = parse_qs(environ.get("QUERY_STRING", "")).get("validationToken")
    if token:
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
        return [token[0].encode()]
    start_response("202 Accepted", [("Content-Length", "0")])
    return [b""]


@pytest.fixture
def ms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MicrosoftStandIns]:
    with (
        microsoft_standins(tmp_path) as standins,
        BackgroundServer(echo_validation) as web_app,
    ):
        standins.entra.register_app(CLIENT_ID, SECRET)
        for name, value in standins.environment().items():
            monkeypatch.setenv(name, value)
        standins.graph.route(PUBLIC, web_app.base_url)
        yield standins


@pytest.fixture
def client(ms: MicrosoftStandIns) -> Iterator[GraphClient]:
    tokens = AppTokenProvider(
        tenant_id=ms.entra.tenant_id,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        authority_host=ms.entra.base_url,
        graph_base_url=ms.graph.root_url,
    )
    with GraphClient(base_url=ms.graph.root_url, token=tokens.token) as graph_client:
        yield graph_client


@pytest.fixture
def channels(client: GraphClient) -> PushChannels:
    # Typed as the port, so mypy checks that GraphSubscriptions implements it.
    return GraphSubscriptions(client, notification_url=NOTIFY_URL, lifecycle_url=LIFECYCLE_URL)


@pytest.fixture
def anna(ms: MicrosoftStandIns) -> GraphUser:
    return ms.graph.add_user("anna.berg@contoso.com")


def ref(user: GraphUser) -> MailboxRef:
    return MailboxRef(
        org_id=1, provider=Provider.MICROSOFT, address=user.mail.lower(), external_id=user.id
    )


# --------------------------------------------------------------------------- subscriptions


def test_subscribe_creates_one_validated_subscription(
    ms: MicrosoftStandIns, channels: PushChannels, anna: GraphUser
) -> None:
    before = datetime.now(UTC)

    channel = channels.subscribe(ref(anna), "state-1")

    [stored] = ms.graph.subscriptions.values()
    assert stored.id == channel.external_id
    assert stored.resource == channel.resource == f"/users/{anna.id}/events"
    assert stored.user_id == anna.id
    assert stored.change_type_text == "created,updated,deleted"
    assert (stored.notification_url, stored.lifecycle_url) == (NOTIFY_URL, LIFECYCLE_URL)
    assert stored.client_state == "state-1"
    # 10,070 minutes ahead, to the second: just under Outlook's 10,080-minute maximum.
    lifetime = channel.expires_at - before
    assert timedelta(minutes=10_070) - timedelta(seconds=1) <= lifetime
    assert lifetime <= timedelta(minutes=10_070, seconds=5)
    assert channel.expires_at.tzinfo is UTC
    assert [v.status for v in ms.graph.validations] == [200, 200]
    [create] = ms.graph.log(method="POST", path_prefix="/subscriptions")
    assert create.headers["Prefer"] == 'IdType="ImmutableId"'


def test_subscribing_again_replaces_the_lost_subscription(
    ms: MicrosoftStandIns, channels: PushChannels, anna: GraphUser
) -> None:
    bob = ms.graph.add_user("bob@contoso.com")
    bobs = channels.subscribe(ref(bob), "bob-state")
    first = channels.subscribe(ref(anna), "state-1")

    # The database row of the first was lost: subscribing again meets Graph's 409.
    second = channels.subscribe(ref(anna), "state-2")

    assert second.external_id != first.external_id
    assert sorted(ms.graph.subscriptions) == sorted([bobs.external_id, second.external_id])
    assert ms.graph.subscriptions[second.external_id].client_state == "state-2"
    assert len(ms.graph.log(method="POST", path_prefix="/subscriptions", status=409)) == 1
    assert [r.path for r in ms.graph.log(method="DELETE")] == [
        f"/subscriptions/{first.external_id}"
    ]


def test_a_conflict_with_another_notification_url_is_not_deleted(
    ms: MicrosoftStandIns, client: GraphClient, channels: PushChannels, anna: GraphUser
) -> None:
    other = GraphSubscriptions(
        client,
        notification_url=f"{PUBLIC}/elsewhere",
        lifecycle_url=LIFECYCLE_URL,
    )
    foreign = other.subscribe(ref(anna), "theirs")

    with pytest.raises(ProviderError) as conflict:
        channels.subscribe(ref(anna), "ours")

    assert conflict.value.reason == "graph.conflict"
    assert not conflict.value.transient
    assert list(ms.graph.subscriptions) == [foreign.external_id]


def test_renew_moves_the_expiry_ahead(
    ms: MicrosoftStandIns, client: GraphClient, anna: GraphUser
) -> None:
    short = GraphSubscriptions(
        client,
        notification_url=NOTIFY_URL,
        lifecycle_url=LIFECYCLE_URL,
        lifetime=timedelta(hours=1),
    )
    channel = short.subscribe(ref(anna), "state")
    long = GraphSubscriptions(client, notification_url=NOTIFY_URL, lifecycle_url=LIFECYCLE_URL)

    expires_at = long.renew(channel.external_id)

    assert expires_at - channel.expires_at > timedelta(days=6)
    assert ms.graph.subscriptions[channel.external_id].expiration == expires_at


def test_renewing_a_gone_subscription_raises_channel_gone(
    ms: MicrosoftStandIns, channels: PushChannels, anna: GraphUser
) -> None:
    expired = channels.subscribe(ref(anna), "state")
    ms.graph.expire_subscription(expired.external_id)
    with pytest.raises(ChannelGone) as gone:
        channels.renew(expired.external_id)
    assert gone.value.reason == "graph.not_found"

    deleted = channels.subscribe(ref(anna), "state")
    channels.unsubscribe(deleted.external_id)
    with pytest.raises(ChannelGone):
        channels.renew(deleted.external_id)


def test_reauthorize(ms: MicrosoftStandIns, channels: PushChannels, anna: GraphUser) -> None:
    channel = channels.subscribe(ref(anna), "state")
    ms.graph.subscriptions[channel.external_id].needs_reauthorization = True

    channels.reauthorize(channel.external_id)

    assert not ms.graph.subscriptions[channel.external_id].needs_reauthorization
    channels.unsubscribe(channel.external_id)
    with pytest.raises(ChannelGone):
        channels.reauthorize(channel.external_id)


def test_unsubscribe_twice(ms: MicrosoftStandIns, channels: PushChannels, anna: GraphUser) -> None:
    channel = channels.subscribe(ref(anna), "state")

    channels.unsubscribe(channel.external_id)
    channels.unsubscribe(channel.external_id)

    assert ms.graph.subscriptions == {}
    assert [r.status for r in ms.graph.log(method="DELETE")] == [204, 404]


# --------------------------------------------------------------------------- directory


@dataclass
class _ListedAs(GraphUser):
    """A stand-in user whose listing says what the stand-in cannot: disabled, no mailbox, guest."""

    enabled: bool = True
    has_mailbox: bool = True
    guest: bool = False

    def json(self) -> dict[str, Any]:
        listed = super().json()
        listed["accountEnabled"] = self.enabled
        listed["userType"] = "Guest" if self.guest else "Member"
        if not self.has_mailbox:
            listed["mail"] = None
        return listed


def add_users(
    ms: MicrosoftStandIns,
    *mails: str,
    enabled: bool = True,
    has_mailbox: bool = True,
    guest: bool = False,
) -> list[GraphUser]:
    users = []
    for mail in mails:
        user = ms.graph.add_user(mail)
        if not (enabled and has_mailbox) or guest:
            user = _ListedAs(**asdict(user), enabled=enabled, has_mailbox=has_mailbox, guest=guest)
            ms.graph.users[user.id] = user
        users.append(user)
    return users


def test_directory_lists_enabled_users_with_a_mailbox_page_by_page(
    ms: MicrosoftStandIns, client: GraphClient
) -> None:
    enabled = add_users(ms, "Anna.Berg@Contoso.com", "bob@contoso.com", "carl@contoso.com")
    add_users(ms, "dora@contoso.com", enabled=False)
    add_users(ms, "room-1@contoso.com", has_mailbox=False)
    add_users(ms, "partner_fabrikam.example#EXT#@contoso.com", guest=True)

    directory: Directory = GraphDirectory(client, page_size=2)

    found = list(directory.mailboxes())

    assert sorted(found, key=lambda e: e.address) == [
        DirectoryEntry(enabled[0].id, "anna.berg@contoso.com", "Anna Berg"),
        DirectoryEntry(enabled[1].id, "bob@contoso.com", "Bob"),
        DirectoryEntry(enabled[2].id, "carl@contoso.com", "Carl"),
    ]
    pages = ms.graph.log(method="GET", path_prefix="/users")
    assert len(pages) == 3
    assert pages[0].query["$select"] == [
        "id,mail,userPrincipalName,displayName,accountEnabled,userType"
    ]
    assert pages[0].query["$top"] == ["2"]


def test_directory_lists_the_members_of_a_group(ms: MicrosoftStandIns, client: GraphClient) -> None:
    anna, bob, _ = add_users(ms, "anna@contoso.com", "bob@contoso.com", "carl@contoso.com")
    [dora] = add_users(ms, "dora@contoso.com", enabled=False)
    group = ms.graph.add_group("Sales", [anna, bob, dora])

    found = list(GraphDirectory(client, page_size=1).mailboxes(group.id))

    assert [(e.external_id, e.address) for e in found] == [
        (anna.id, "anna@contoso.com"),
        (bob.id, "bob@contoso.com"),
    ]
    assert len(ms.graph.log(method="GET", path_prefix=f"/groups/{group.id}/members")) == 3
