"""The stand-ins keep the documented contracts, checked over real HTTP with requests (and msal).

These tests pin what the end-to-end tests rely on: the token endpoint's answers and errors,
the JWKS, Graph's token checks, the subscription handshake, delta paging and expiry, $batch,
throttling with Retry-After, and the exact change-notification payload.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
from werkzeug.wrappers import Request, Response

from tests.standins import BackgroundServer, microsoft_standins
from tests.standins.entra import GRAPH_RESOURCE, Entra, decode_unverified
from tests.standins.graph import Graph, GraphUser
from tests.standins.tls import LocalCA, make_ca

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CLIENT_ID = "6f1c3b1e-0d5a-4a43-9c55-1d2a9a0c1f10"
SECRET = "s3cret-value"
API_ID = "0a6f2a8e-47f5-4c3b-9d1e-7e2b5f0c9a11"
CECP = "String {00020329-0000-0000-C000-000000000046} Name cecp-5d7f4f4e-addin"
WINDOW = {"startDateTime": "2026-03-01T00:00:00Z", "endDateTime": "2026-04-01T00:00:00Z"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def entra(ca: LocalCA) -> Iterator[Entra]:
    with Entra(ca) as stand_in:
        stand_in.register_app(CLIENT_ID, SECRET)
        yield stand_in


@pytest.fixture
def graph(entra: Entra, ca: LocalCA) -> Iterator[Graph]:
    with Graph(entra, verify=str(ca.ca_path)) as stand_in:
        yield stand_in


@pytest.fixture
def http(ca: LocalCA) -> Iterator[requests.Session]:
    # trust_env off: the machine's REQUESTS_CA_BUNDLE would otherwise override `verify`.
    with requests.Session() as session:
        session.trust_env = False
        session.verify = str(ca.ca_path)
        yield session


@pytest.fixture
def anna(graph: Graph) -> GraphUser:
    return graph.add_user("anna.berg@contoso.com")


@pytest.fixture
def bob(graph: Graph) -> GraphUser:
    return graph.add_user("bob.stone@contoso.com")


def app_token(entra: Entra, http: requests.Session, resource: str) -> str:
    response = http.post(
        f"{entra.authority()}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "scope": f"{resource}/.default",
        },
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture
def auth(entra: Entra, graph: Graph, http: requests.Session) -> dict[str, str]:
    return {"Authorization": f"Bearer {app_token(entra, http, graph.base_url)}"}


class Receiver:
    """A product-side endpoint: answers validation handshakes and records notifications."""

    def __init__(self, *, echo: str = "token", status: int = 202) -> None:
        self.echo = echo  # "token" (correct), "wrong", or "json" (right text, wrong type)
        self.status = status
        self.calls: list[dict[str, Any]] = []
        self.server = BackgroundServer(self._app)

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._respond(Request(environ))(environ, start_response)

    def _respond(self, request: Request) -> Response:
        self.calls.append(
            {
                "path": request.path,
                "args": request.args.to_dict(),
                "content_type": request.headers.get("Content-Type"),
                "body": request.get_data(as_text=True),
            }
        )
        token = request.args.get("validationToken")
        if token is not None:
            if self.echo == "wrong":
                return Response(token + "x", content_type="text/plain")
            if self.echo == "json":
                return Response(token, content_type="application/json")
            return Response(token, content_type="text/plain; charset=utf-8")
        return Response(status=self.status)

    def url(self, path: str = "/notify") -> str:
        return self.server.base_url + path


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver()
    with made.server:
        yield made


def subscribe(
    http: requests.Session,
    graph: Graph,
    auth: dict[str, str],
    user: GraphUser,
    receiver: Receiver,
    **extra: Any,
) -> requests.Response:
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": receiver.url("/notify?tenant=t1"),
        "lifecycleNotificationUrl": receiver.url("/lifecycle"),
        "resource": f"/users/{user.id}/events",
        "expirationDateTime": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
        "clientState": "client-secret-state",
        **extra,
    }
    return http.post(f"{graph.root_url}/subscriptions", json=body, headers=auth)


# --------------------------------------------------------------------------- Entra


def test_msal_gets_an_app_token_and_reuses_its_cache(
    entra: Entra, graph: Graph, ca: LocalCA, http: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    msal = pytest.importorskip("msal")
    # The product trusts the stand-in CA through the environment, as it will in production.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_path))
    app = msal.ConfidentialClientApplication(
        CLIENT_ID,
        client_credential=SECRET,
        authority=entra.authority(),
        instance_discovery=False,  # else msal asks login.microsoftonline.com about the host
    )
    first = app.acquire_token_for_client(scopes=[f"{graph.base_url}/.default"])
    second = app.acquire_token_for_client(scopes=[f"{graph.base_url}/.default"])

    assert first["token_type"] == "Bearer"
    assert first["expires_in"] == 3599
    assert second["access_token"] == first["access_token"]
    assert entra.count_token_requests(grant_type="client_credentials", client_id=CLIENT_ID) == 1
    assert entra.token_requests[0].auth_method == "client_secret_post"
    header, claims = decode_unverified(first["access_token"])
    assert header["kid"] == entra.current_kid
    assert header["alg"] == "RS256"
    assert claims["aud"] == graph.base_url
    assert claims["iss"] == f"https://sts.windows.net/{entra.tenant_id}/"
    assert claims["ver"] == "1.0"
    assert claims["appid"] == CLIENT_ID
    assert claims["idtyp"] == "app"
    assert claims["roles"] == ["Calendars.ReadWrite", "User.Read.All", "GroupMember.Read.All"]
    user = graph.add_user("carol@contoso.com")
    answer = http.get(
        f"{graph.root_url}/users/{user.id}",
        headers={"Authorization": f"Bearer {first['access_token']}"},
    )
    assert answer.status_code == 200
    assert answer.json()["mail"] == "carol@contoso.com"


def test_plain_client_credentials_post(entra: Entra, http: requests.Session) -> None:
    response = http.post(
        f"{entra.authority()}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store, no-cache"
    body = response.json()
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3599)
    claims = entra.verify(body["access_token"], audiences=[GRAPH_RESOURCE])
    assert claims["tid"] == entra.tenant_id
    assert claims["exp"] - claims["iat"] == 3600


def test_token_endpoint_errors_have_entras_shape(entra: Entra, http: requests.Session) -> None:
    url = f"{entra.authority()}/oauth2/v2.0/token"
    form = {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": "wrong",
        "scope": "https://graph.microsoft.com/.default",
    }
    wrong = http.post(url, data=form)
    unknown = http.post(url, data={**form, "client_id": "nobody", "client_secret": SECRET})
    bad_scope = http.post(url, data={**form, "client_secret": SECRET, "scope": "User.Read"})
    basic = http.post(
        url, data={k: v for k, v in form.items() if k != "client_secret"}, auth=(CLIENT_ID, SECRET)
    )

    assert wrong.status_code == 401
    body = wrong.json()
    assert body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert set(body) >= {"timestamp", "trace_id", "correlation_id", "error_uri"}
    assert (unknown.status_code, unknown.json()["error"]) == (400, "unauthorized_client")
    assert unknown.json()["error_codes"] == [700016]
    assert (bad_scope.status_code, bad_scope.json()["error_codes"]) == (400, [1002012])
    assert basic.status_code == 200
    assert entra.token_requests[-1].auth_method == "client_secret_basic"
    assert [r.status for r in entra.token_requests] == [401, 400, 400, 200]
    entra.fail_next(1)
    outage = http.post(url, data={**form, "client_secret": SECRET})
    assert (outage.status_code, outage.json()["error_codes"]) == (503, [90033])
    assert http.post(url, data={**form, "client_secret": SECRET}).status_code == 200


def test_metadata_and_jwks_publish_the_signing_key(entra: Entra, http: requests.Session) -> None:
    metadata = http.get(f"{entra.authority()}/v2.0/.well-known/openid-configuration").json()
    keys = http.get(metadata["jwks_uri"]).json()["keys"]

    assert metadata["token_endpoint"] == f"{entra.authority()}/oauth2/v2.0/token"
    assert metadata["issuer"] == f"https://login.microsoftonline.com/{entra.tenant_id}/v2.0"
    assert [k["kid"] for k in keys] == [entra.current_kid]
    assert keys[0]["kty"] == "RSA"
    assert keys[0]["use"] == "sig"
    assert keys[0]["e"] == "AQAB"
    assert keys[0]["x5t"] == keys[0]["kid"]
    assert len(keys[0]["x5c"]) == 1
    v1 = http.get(f"{entra.authority()}/.well-known/openid-configuration").json()
    assert v1["issuer"] == f"https://sts.windows.net/{entra.tenant_id}/"
    missing = http.get(f"{entra.base_url}/no-such-tenant/v2.0/.well-known/openid-configuration")
    assert (missing.status_code, missing.json()["error_codes"]) == (400, [90002])


def test_issuers_can_point_at_the_stand_in(ca: LocalCA, http: requests.Session) -> None:
    with Entra(ca, issuer_mode="self") as entra:
        metadata = http.get(f"{entra.authority()}/v2.0/.well-known/openid-configuration").json()
        claims = entra.verify(entra.mint_access_token())
        v1_claims = entra.verify(entra.mint_access_token(version="1.0"))
    assert metadata["issuer"] == f"{entra.base_url}/{entra.tenant_id}/v2.0"
    assert claims["iss"] == metadata["issuer"]
    assert v1_claims["iss"] == f"{entra.base_url}/{entra.tenant_id}/"


def test_key_rotation_serves_the_new_kid(
    entra: Entra, graph: Graph, http: requests.Session, auth: dict[str, str], anna: GraphUser
) -> None:
    old_kid = entra.current_kid
    new_kid = entra.rotate_key()
    kids = [k["kid"] for k in http.get(f"{entra.authority()}/discovery/v2.0/keys").json()["keys"]]
    fresh = app_token(entra, http, graph.base_url)

    assert kids == [new_kid, old_kid]
    assert decode_unverified(fresh)[0]["kid"] == new_kid
    # A token signed before the rotation still verifies while its key is published...
    assert http.get(f"{graph.root_url}/users/{anna.id}", headers=auth).status_code == 200
    entra.retire_key(old_kid)
    # ...and stops verifying once it is withdrawn.
    assert http.get(f"{graph.root_url}/users/{anna.id}", headers=auth).status_code == 401


def test_on_behalf_of_exchanges_a_user_token(entra: Entra, http: requests.Session) -> None:
    entra.register_app(API_ID, "api-secret", identifier_uris=(f"api://crm.test/{API_ID}",))
    user_token = entra.mint_access_token(aud=API_ID)
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "client_id": API_ID,
        "client_secret": "api-secret",
        "assertion": user_token,
        "scope": "https://graph.microsoft.com/Calendars.Read openid offline_access",
        "requested_token_use": "on_behalf_of",
    }
    url = f"{entra.authority()}/oauth2/v2.0/token"
    ok = http.post(url, data=form)
    expired = http.post(url, data={**form, "assertion": entra.mint_access_token(aud=API_ID, exp=1)})
    foreign = http.post(url, data={**form, "assertion": entra.mint_access_token(aud="other")})

    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["scope"] == "Calendars.Read"
    assert {"refresh_token", "id_token"} <= set(body)
    claims = entra.verify(body["access_token"], audiences=[GRAPH_RESOURCE])
    assert claims["scp"] == "Calendars.Read"
    assert claims["oid"] == entra.default_user.oid
    assert claims["appid"] == API_ID
    assert (expired.status_code, expired.json()["error_codes"]) == (400, [500133])
    assert (foreign.status_code, foreign.json()["error_codes"]) == (400, [500131])


def test_msal_on_behalf_of(entra: Entra, ca: LocalCA, monkeypatch: pytest.MonkeyPatch) -> None:
    msal = pytest.importorskip("msal")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_path))
    entra.register_app(API_ID, "api-secret")
    app = msal.ConfidentialClientApplication(
        API_ID,
        client_credential="api-secret",
        authority=entra.authority(),
        instance_discovery=False,
    )
    result = app.acquire_token_on_behalf_of(
        entra.mint_access_token(aud=API_ID), ["https://graph.microsoft.com/.default"]
    )

    assert "access_token" in result, result
    claims = entra.verify(result["access_token"], audiences=[GRAPH_RESOURCE])
    assert claims["scp"] == "Calendars.ReadWrite User.Read"  # the app's consented scopes
    assert result["id_token_claims"]["oid"] == entra.default_user.oid
    assert entra.token_requests[-1].grant_type == "urn:ietf:params:oauth:grant-type:jwt-bearer"


# --------------------------------------------------------------------------- Graph: auth


def test_graph_rejects_missing_and_foreign_tokens(
    entra: Entra, graph: Graph, http: requests.Session, anna: GraphUser
) -> None:
    url = f"{graph.root_url}/users/{anna.id}/events"

    def answer(token: str | None) -> tuple[int, str, str]:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        response = http.get(url, headers=headers)
        error = response.json()["error"]
        return response.status_code, error["code"], error["message"]

    graph_claims: dict[str, Any] = {"aud": GRAPH_RESOURCE, "roles": ["Calendars.Read"], "scp": None}
    assert answer(None) == (401, "InvalidAuthenticationToken", "Access token is empty.")
    unknown = entra.mint_access_token(sign_with="unknown", **graph_claims)
    impostor = entra.mint_access_token(sign_with="impostor", **graph_claims)
    unsigned = entra.mint_access_token(sign_with="none", **graph_claims)
    for forged in (unknown, impostor, unsigned):
        assert answer(forged) == (
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure.",
        )
    # A genuine token for another audience (our own API) is not a Graph token.
    assert answer(entra.mint_access_token())[2] == (
        "Access token validation failure. Invalid audience."
    )
    expired = entra.mint_access_token(exp=int(time.time()) - 600, **graph_claims)
    assert answer(expired)[2] == "Lifetime validation failed, the token is expired."
    assert answer("not-a-jwt")[0] == 401
    response = http.get(url)
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm=""')
    assert response.json()["error"]["innerError"]["request-id"] == response.headers["request-id"]


def test_permissions_and_access_policy(
    entra: Entra, graph: Graph, http: requests.Session, anna: GraphUser
) -> None:
    entra.register_app("no-roles", "pw", graph_roles=())
    token = app_token_for(entra, http, "no-roles", "pw", graph.base_url)
    denied = http.get(f"{graph.root_url}/users/{anna.id}/events", headers=bearer(token))
    graph.deny_mailbox(anna)
    token = app_token(entra, http, graph.base_url)
    policy = http.get(f"{graph.root_url}/users/{anna.id}/events", headers=bearer(token))

    assert (denied.status_code, denied.json()["error"]["code"]) == (403, "ErrorAccessDenied")
    assert policy.status_code == 403
    assert policy.json()["error"]["message"] == "Access to OData is disabled."


def app_token_for(
    entra: Entra, http: requests.Session, client_id: str, secret: str, resource: str
) -> str:
    response = http.post(
        f"{entra.authority()}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": f"{resource}/.default",
        },
    )
    return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------- Graph: directory


def test_users_page_with_select_and_next_link(
    graph: Graph, http: requests.Session, auth: dict[str, str]
) -> None:
    for n in range(5):
        graph.add_user(f"user{n}@contoso.com")
    first = http.get(
        f"{graph.root_url}/users", params={"$top": "2", "$select": "id,mail"}, headers=auth
    ).json()
    mails = [u["mail"] for u in first["value"]]
    link = first["@odata.nextLink"]
    while link:
        page = http.get(link, headers=auth).json()
        mails += [u["mail"] for u in page["value"]]
        link = page.get("@odata.nextLink")

    assert set(first["value"][0]) == {"id", "mail"}
    assert mails == [f"user{n}@contoso.com" for n in range(5)]
    group = graph.add_group("Sales", [graph.user("user1@contoso.com")])
    members = http.get(f"{graph.root_url}/groups/{group.id}/members", headers=auth).json()
    assert [(m["@odata.type"], m["mail"]) for m in members["value"]] == [
        ("#microsoft.graph.user", "user1@contoso.com")
    ]


# --------------------------------------------------------------------------- Graph: events


def test_event_get_expands_only_the_asked_extended_property(
    graph: Graph, http: requests.Session, auth: dict[str, str], anna: GraphUser, bob: GraphUser
) -> None:
    made = graph.create_event(
        anna,
        start="2026-03-10T09:00:00",
        time_zone="W. Europe Standard Time",
        attendees=[bob.mail, "x@fabrikam.com"],
        extended_properties={CECP: '{"company": 7}', "String {abc} Name other": "no"},
    )
    url = f"{graph.root_url}/users/{anna.id}/events/{made['id']}"
    expand = f"singleValueExtendedProperties($filter=id eq '{CECP}')"
    got = http.get(url, params={"$expand": expand}, headers=auth).json()
    plain = http.get(url, headers=auth).json()
    in_berlin = http.get(
        url, headers={**auth, "Prefer": 'outlook.timezone="W. Europe Standard Time"'}
    ).json()
    copy_id = graph.copy_of(made["id"], bob)
    copy = http.get(
        f"{graph.root_url}/users/{bob.id}/events/{copy_id}",
        params={"$expand": expand},
        headers=auth,
    ).json()
    missing = http.get(f"{graph.root_url}/users/{anna.id}/events/AAMkNOPE=", headers=auth)

    assert got["singleValueExtendedProperties"] == [{"id": CECP, "value": '{"company": 7}'}]
    assert "singleValueExtendedProperties" not in plain
    assert got["start"] == {"dateTime": "2026-03-10T08:00:00.0000000", "timeZone": "UTC"}
    assert in_berlin["start"]["dateTime"] == "2026-03-10T09:00:00.0000000"
    assert got["originalStartTimeZone"] == "W. Europe Standard Time"
    assert got["@odata.etag"] == f'W/"{got["changeKey"]}"'
    # Exchange delivers the invitation as a separate item with the same iCalUId...
    assert copy_id != made["id"]
    assert copy["iCalUId"] == made["iCalUId"]
    assert (copy["isOrganizer"], copy["responseStatus"]["response"]) == (False, "notResponded")
    # ...and custom properties are not transmitted to attendees.
    assert "singleValueExtendedProperties" not in copy
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "ErrorItemNotFound"


def test_mutators_keep_organizer_and_attendee_copies_consistent(
    graph: Graph, anna: GraphUser, bob: GraphUser
) -> None:
    made = graph.create_event(anna, start="2026-03-10T09:00:00Z", attendees=[bob.mail])
    copy_id = graph.copy_of(made["id"], bob)
    graph.respond(bob, copy_id, "tentativelyAccepted")
    organizer = graph.event(anna, made["id"])
    attendee = graph.event(bob, copy_id)

    assert organizer["attendees"][0]["status"]["response"] == "tentativelyAccepted"
    assert attendee["responseStatus"]["response"] == "tentativelyAccepted"
    assert attendee["showAs"] == "tentative"
    graph.update_event(anna, made["id"], subject="Renamed", start="2026-03-10T10:00:00Z")
    assert graph.event(bob, copy_id)["subject"] == "Renamed"
    assert graph.event(bob, copy_id)["start"]["dateTime"] == "2026-03-10T10:00:00.0000000"
    graph.cancel_event(anna, made["id"])
    cancelled = graph.event(bob, copy_id)
    assert (cancelled["isCancelled"], cancelled["subject"]) == (True, "Canceled: Renamed")
    with pytest.raises(KeyError):
        graph.event(anna, made["id"])
    assert [(u, c) for u, _, c in graph.pending_notifications] == [
        (anna.id, "created"),
        (bob.id, "created"),
        (bob.id, "updated"),
        (anna.id, "updated"),
        (anna.id, "updated"),
        (bob.id, "updated"),
        (bob.id, "updated"),
        (anna.id, "deleted"),
    ]


def test_series_occurrences_exceptions_and_instances(
    graph: Graph, http: requests.Session, auth: dict[str, str], anna: GraphUser, bob: GraphUser
) -> None:
    series = graph.create_event(
        anna,
        subject="Weekly",
        start="2026-03-03T09:00:00",
        time_zone="Europe/Oslo",
        recurrence={
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
            "range": {"type": "numbered", "numberOfOccurrences": 4},
        },
        attendees=[bob.mail],
    )
    graph.cancel_occurrence(anna, series["id"], "2026-03-10")
    moved = graph.move_occurrence(
        anna, series["id"], "2026-03-17", start="2026-03-18T13:00:00", subject="Moved"
    )
    url = f"{graph.root_url}/users/{anna.id}/events/{series['id']}/instances"
    instances = http.get(url, params=WINDOW, headers=auth).json()["value"]
    master = http.get(
        f"{graph.root_url}/users/{anna.id}/events/{series['id']}",
        params={"$select": "subject,cancelledOccurrences"},
        headers=auth,
    ).json()
    bob_view = graph.event(
        bob, graph.occurrence_id(bob, graph.copy_of(series["id"], bob), "2026-03-10")
    )

    assert [(i["type"], i["start"]["dateTime"][:16]) for i in instances] == [
        ("occurrence", "2026-03-03T08:00"),  # 09:00 Oslo is 08:00 UTC in winter
        ("exception", "2026-03-18T12:00"),
        ("occurrence", "2026-03-24T08:00"),
    ]
    assert instances[1]["id"] == moved
    assert instances[1]["subject"] == "Moved"
    assert instances[1]["originalStart"] == "2026-03-17T08:00:00.0000000Z"
    assert {i["seriesMasterId"] for i in instances} == {series["id"]}
    assert series["recurrence"]["range"]["recurrenceTimeZone"] == "W. Europe Standard Time"
    # Each occurrence has its own iCalUId: the master's with the instance date in it.
    assert instances[0]["iCalUId"] != series["iCalUId"]
    assert instances[0]["iCalUId"][:32] == series["iCalUId"][:32]
    assert instances[0]["iCalUId"][32:40] == "07EA0303"
    assert master["cancelledOccurrences"] == [f"OID.{series['id']}.2026-03-10"]
    assert set(master) == {"@odata.context", "@odata.etag", "id", "subject", "cancelledOccurrences"}
    # The attendee's occurrence is cancelled, not gone.
    assert (bob_view["isCancelled"], bob_view["subject"]) == (True, "Canceled: Weekly")


# --------------------------------------------------------------------------- Graph: delta


def read_round(
    http: requests.Session, url: str, auth: dict[str, str], params: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], int, str]:
    """All items of one delta round, the number of pages, and the deltaLink."""
    items: list[dict[str, Any]] = []
    pages = 0
    headers = {**auth, "Prefer": "odata.maxpagesize=2"}
    response = http.get(url, params=params, headers=headers)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        items += body["value"]
        if "@odata.deltaLink" in body:
            return items, pages, body["@odata.deltaLink"]
        response = http.get(body["@odata.nextLink"], headers=headers)


def test_delta_pages_then_returns_only_changes_then_expires(
    graph: Graph, http: requests.Session, auth: dict[str, str], anna: GraphUser
) -> None:
    keep = graph.create_event(anna, subject="Keep", start="2026-03-02T09:00:00Z")
    change = graph.create_event(anna, subject="Change", start="2026-03-04T09:00:00Z")
    drop = graph.create_event(anna, subject="Drop", start="2026-03-05T09:00:00Z")
    graph.create_event(anna, subject="Outside", start="2026-05-05T09:00:00Z")
    series = graph.create_event(
        anna,
        subject="Daily",
        start="2026-03-09T15:00:00Z",
        recurrence={
            "pattern": {"type": "daily", "interval": 1},
            "range": {"type": "numbered", "numberOfOccurrences": 3},
        },
    )
    url = f"{graph.root_url}/users/{anna.id}/calendarView/delta"
    items, pages, delta_link = read_round(http, url, auth, WINDOW)

    assert pages == 3
    assert [i["subject"] for i in items] == ["Keep", "Change", "Drop", "Daily", "Daily", "Daily"]
    assert [i["type"] for i in items[3:]] == ["occurrence"] * 3
    assert all(i["@odata.type"] == "#microsoft.graph.event" for i in items)
    assert "$deltatoken=" in delta_link

    graph.update_event(anna, change["id"], subject="Changed")
    graph.delete_event(anna, drop["id"])
    graph.cancel_occurrence(anna, series["id"], "2026-03-10")
    added = graph.create_event(anna, subject="Added", start="2026-03-20T09:00:00Z")
    changes, _, next_link = read_round(http, delta_link, auth)
    removed = {i["id"] for i in changes if "@removed" in i}
    # A change to the master changes its occurrences' changeKeys, so the two remaining
    # occurrences come back too (the product must treat re-reported items idempotently).
    assert sorted(i["subject"] for i in changes if "@removed" not in i) == [
        "Added", "Changed", "Daily", "Daily",
    ]  # fmt: skip
    assert removed == {drop["id"], graph.occurrence_id(anna, series["id"], "2026-03-10")}
    assert keep["id"] not in {i["id"] for i in changes}
    assert added["id"] in {i["id"] for i in changes}
    assert all(i["@removed"] == {"reason": "deleted"} for i in changes if "@removed" in i)
    quiet, _, _ = read_round(http, next_link, auth)
    assert quiet == []

    assert graph.expire_delta_tokens(anna) >= 1
    gone = http.get(next_link, headers=auth)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "SyncStateNotFound"
    refused = http.get(url, params={**WINDOW, "$select": "subject"}, headers=auth)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "ErrorInvalidUrlQuery"
    no_window = http.get(url, headers=auth)
    assert no_window.json()["error"]["code"] == "ErrorInvalidParameter"


# --------------------------------------------------------------------------- Graph: subscriptions


def test_subscription_creation_performs_the_validation_handshake(
    graph: Graph, http: requests.Session, auth: dict[str, str], anna: GraphUser, receiver: Receiver
) -> None:
    created = subscribe(http, graph, auth, anna, receiver)

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["resource"] == f"/users/{anna.id}/events"
    assert body["changeType"] == "created,updated,deleted"
    assert body["applicationId"] == CLIENT_ID
    assert body["clientState"] == "client-secret-state"
    assert body["expirationDateTime"].endswith("Z")
    # Both URLs were validated, each with its own token, decoded back exactly.
    assert [call["path"] for call in receiver.calls] == ["/notify", "/lifecycle"]
    assert [call["args"]["validationToken"] for call in receiver.calls] == [
        v.payload for v in graph.validations
    ]
    first = receiver.calls[0]
    assert first["args"]["tenant"] == "t1"  # query strings on notificationUrl pass through
    assert first["args"]["validationToken"].startswith("Validation: Testing client application")
    assert first["content_type"] == "text/plain; charset=utf-8"
    assert first["body"] == ""

    again = subscribe(http, graph, auth, anna, receiver)
    assert again.status_code == 409
    assert again.json()["error"]["message"] == (
        f"Subscription Id {body['id']} already exists for the requested combination"
    )
    assert len(receiver.calls) == 2  # no handshake for a duplicate

    renewed = http.patch(
        f"{graph.root_url}/subscriptions/{body['id']}",
        json={"expirationDateTime": (datetime.now(UTC) + timedelta(days=3)).isoformat()},
        headers=auth,
    )
    assert renewed.status_code == 200
    assert renewed.json()["expirationDateTime"] > body["expirationDateTime"]
    listed = http.get(f"{graph.root_url}/subscriptions", headers=auth).json()["value"]
    assert [s["id"] for s in listed] == [body["id"]]
    reauthorized = http.post(
        f"{graph.root_url}/subscriptions/{body['id']}/reauthorize", headers=auth
    )
    assert reauthorized.status_code == 204
    assert (
        http.delete(f"{graph.root_url}/subscriptions/{body['id']}", headers=auth).status_code == 204
    )
    assert http.get(f"{graph.root_url}/subscriptions/{body['id']}", headers=auth).status_code == 404


@pytest.mark.parametrize("echo", ["wrong", "json"])
def test_subscription_fails_when_the_endpoint_answers_wrong(
    graph: Graph, http: requests.Session, auth: dict[str, str], anna: GraphUser, echo: str
) -> None:
    bad = Receiver(echo=echo)
    with bad.server:
        refused = subscribe(http, graph, auth, anna, bad)

    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "ValidationError"
    assert refused.json()["error"]["message"].startswith("Subscription validation request failed.")
    assert graph.subscriptions == {}


def test_subscription_request_limits(
    graph: Graph, http: requests.Session, auth: dict[str, str], anna: GraphUser, receiver: Receiver
) -> None:
    too_long = (datetime.now(UTC) + timedelta(minutes=10081)).isoformat()
    late = subscribe(http, graph, auth, anna, receiver, expirationDateTime=too_long)
    state = subscribe(http, graph, auth, anna, receiver, clientState="x" * 129)
    soon = subscribe(
        http,
        graph,
        auth,
        anna,
        receiver,
        expirationDateTime=(datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
    )

    assert late.status_code == 400
    assert late.json()["error"]["message"] == (
        "Subscription expiration can only be 10080 minutes in the future."
    )
    assert state.status_code == 400
    assert soon.status_code == 201
    expires = datetime.fromisoformat(soon.json()["expirationDateTime"][:26] + "+00:00")
    assert expires >= datetime.now(UTC) + timedelta(minutes=44)  # raised to 45 minutes


def test_notifications_have_the_documented_shape(
    graph: Graph, http: requests.Session, auth: dict[str, str], anna: GraphUser, receiver: Receiver
) -> None:
    sub = subscribe(http, graph, auth, anna, receiver).json()
    graph.pending_notifications.clear()
    made = graph.create_event(anna, start="2026-03-10T09:00:00Z")
    graph.update_event(anna, made["id"], subject="Changed")
    receiver.calls.clear()

    sent = graph.flush_notifications()
    forged = graph.notify_changes([(anna, made["id"], "updated")], client_state="forged")
    single = graph.notify_changes(
        [(anna, made["id"], "created"), (anna, made["id"], "updated")], batch=False, repeat=2
    )
    lifecycle = graph.send_lifecycle(sub["id"], "missed")

    assert [d.status for d in sent] == [202]
    assert sent[0].url == receiver.url("/notify?tenant=t1")
    payload = json.loads(receiver.calls[0]["body"])
    assert receiver.calls[0]["content_type"] == "application/json; charset=utf-8"
    assert receiver.calls[0]["args"] == {"tenant": "t1"}
    assert [item["changeType"] for item in payload["value"]] == ["created", "updated"]
    item = payload["value"][1]
    assert set(item) == {
        "id",
        "subscriptionId",
        "subscriptionExpirationDateTime",
        "clientState",
        "changeType",
        "resource",
        "tenantId",
        "resourceData",
    }
    resource = f"Users/{anna.id}/Events/{made['id']}"
    assert item["subscriptionId"] == sub["id"]
    assert item["subscriptionExpirationDateTime"] == sub["expirationDateTime"]
    assert item["clientState"] == "client-secret-state"
    assert item["resource"] == resource
    assert item["tenantId"] == graph.tenant_id
    assert item["resourceData"] == {
        "@odata.type": "#Microsoft.Graph.Event",
        "@odata.id": resource,
        "@odata.etag": f'W/"{graph.event(anna, made["id"])["changeKey"]}"',
        "id": made["id"],
    }
    assert forged[0].payload["value"][0]["clientState"] == "forged"
    assert [len(d.payload["value"]) for d in single] == [1, 1, 1, 1]
    assert [d.payload["value"][0]["changeType"] for d in single] == [
        "created", "created", "updated", "updated",
    ]  # fmt: skip
    assert lifecycle.status == 202
    assert lifecycle.payload == {
        "value": [
            {
                "subscriptionId": sub["id"],
                "subscriptionExpirationDateTime": sub["expirationDateTime"],
                "tenantId": graph.tenant_id,
                "clientState": "client-secret-state",
                "lifecycleEvent": "missed",
            }
        ]
    }
    assert receiver.calls[-1]["path"] == "/lifecycle"


def test_notifications_only_reach_loopback(graph: Graph, anna: GraphUser) -> None:
    with pytest.raises(ValueError, match="not a loopback address"):
        graph._target("https://crm.example.com/graph/notify")
    graph.route("https://crm.example.com", "http://127.0.0.1:9")
    assert graph._target("https://crm.example.com/graph/notify?x=1") == (
        "http://127.0.0.1:9/graph/notify?x=1"
    )


# --------------------------------------------------------------------------- Graph: batch, 429


def test_batch_dispatches_each_request(
    graph: Graph, http: requests.Session, auth: dict[str, str], anna: GraphUser
) -> None:
    made = graph.create_event(anna, start="2026-03-10T09:00:00Z", subject="In batch")
    graph.fail_next(1, status=429, retry_after=3, path_prefix=f"/users/{anna.id}/events/nope")
    requests_ = [
        {"id": "1", "method": "GET", "url": f"/users/{anna.id}/events/{made['id']}"},
        {"id": "2", "method": "GET", "url": f"users/{anna.id}/events/nope"},
        {"id": "3", "method": "GET", "url": f"/users/{anna.id}/events/nope"},
    ]
    answer = http.post(f"{graph.root_url}/$batch", json={"requests": requests_}, headers=auth)
    too_many = http.post(
        f"{graph.root_url}/$batch",
        json={"requests": [{**requests_[0], "id": str(n)} for n in range(21)]},
        headers=auth,
    )

    assert answer.status_code == 200
    by_id = {r["id"]: r for r in answer.json()["responses"]}
    assert by_id["1"]["status"] == 200
    assert by_id["1"]["body"]["subject"] == "In batch"
    statuses = sorted(by_id[i]["status"] for i in ("2", "3"))
    assert statuses == [404, 429]
    throttled = next(r for r in by_id.values() if r["status"] == 429)
    assert throttled["headers"]["Retry-After"] == "3"
    assert throttled["body"]["error"]["code"] == "ApplicationThrottled"
    assert too_many.status_code == 400
    assert len(graph.log(path_prefix=f"/users/{anna.id}/events")) == 3
    assert all(r.in_batch for r in graph.log(path_prefix=f"/users/{anna.id}/events"))


def test_fail_next_throttles_with_retry_after_and_the_log_shows_it(
    graph: Graph, http: requests.Session, auth: dict[str, str], anna: GraphUser
) -> None:
    made = graph.create_event(anna, start="2026-03-10T09:00:00Z")
    graph.fail_next(2, status=429, retry_after=2, path_prefix="/users")
    graph.fail_next(1, status=503, retry_after=None, path_prefix="/users")
    url = f"{graph.root_url}/users/{anna.id}/events/{made['id']}"
    answers = [http.get(url, headers={**auth, "client-request-id": "c-1"}) for _ in range(4)]

    assert [a.status_code for a in answers] == [429, 429, 503, 200]
    assert answers[0].headers["Retry-After"] == "2"
    assert answers[0].json()["error"]["code"] == "ApplicationThrottled"
    assert "Retry-After" not in answers[2].headers
    assert answers[2].json()["error"]["code"] == "ServiceNotAvailable"
    assert answers[0].headers["client-request-id"] == "c-1"
    log = graph.log(path_prefix=f"/users/{anna.id}/events")
    assert [r.status for r in log] == [429, 429, 503, 200]
    assert all(log[i].at <= log[i + 1].at for i in range(3))
    assert "Authorization" not in log[0].headers
    assert log[0].headers["Client-Request-Id"] == "c-1"
    assert (log[0].mailbox, log[0].app_id) == (anna.id, CLIENT_ID)
    assert graph.event_gets(anna) == 4


def test_concurrency_is_tracked_and_can_be_limited(
    graph: Graph, auth: dict[str, str], anna: GraphUser, ca: LocalCA
) -> None:
    graph.latency = 0.3
    url = f"{graph.root_url}/users/{anna.id}"
    statuses: list[int] = []

    def call() -> None:
        with requests.Session() as session:
            session.trust_env = False
            statuses.append(session.get(url, headers=auth).status_code)

    def burst(n: int) -> None:
        threads = [threading.Thread(target=call) for _ in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    burst(4)
    assert graph.max_in_flight(anna) == 4
    assert graph.max_in_flight(app_id=CLIENT_ID) == 4
    statuses.clear()
    graph.concurrency_limit = 2
    burst(4)
    assert sorted(statuses) == [200, 200, 429, 429]


# --------------------------------------------------------------------------- bundle


def test_bundle_settings_point_at_the_stand_ins(tmp_path: Path) -> None:
    with microsoft_standins(tmp_path, graph_https=True) as ms:
        env = ms.environment()
        ms.entra.register_app(CLIENT_ID, SECRET)
        user = ms.graph.add_user("dana@contoso.com")
        with requests.Session() as session:
            session.trust_env = False
            session.verify = env["REQUESTS_CA_BUNDLE"]
            token = app_token(ms.entra, session, "https://graph.microsoft.com")
            answer = session.get(f"{env['GRAPH_BASE_URL']}/users/{user.id}", headers=bearer(token))

    assert env["GRAPH_BASE_URL"].startswith("https://localhost:")
    assert env["GRAPH_BASE_URL"].endswith("/v1.0")
    assert env["MS_AUTHORITY_HOST"].startswith("https://localhost:")
    assert answer.json()["userPrincipalName"] == "dana@contoso.com"


def test_stop_waits_for_the_requests_under_way() -> None:
    """Request threads are daemons: without the wait a test's engine could close mid-request."""
    started, finished = threading.Event(), threading.Event()

    def slow(environ: dict[str, Any], start_response: Any) -> Any:
        started.set()
        time.sleep(0.3)
        finished.set()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    server = BackgroundServer(slow).start()
    caller = threading.Thread(target=requests.get, args=(server.base_url,), kwargs={"timeout": 5})
    caller.start()
    assert started.wait(5)
    server.stop()
    assert finished.is_set()
    caller.join(5)
