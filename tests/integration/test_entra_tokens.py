"""The task pane's Entra access tokens, over real HTTPS against the Entra stand-in.

The product fetches the stand-in's OpenID metadata and JWKS itself (MS_AUTHORITY_HOST, the
stand-in CA through REQUESTS_CA_BUNDLE); the stand-in runs with ``issuer_mode="self"`` so the
issuers it signs are the ones its metadata publishes. Requests go through the Flask test client
to real API endpoints. What is checked: https://learn.microsoft.com/entra/identity-platform/access-tokens#validate-tokens
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from flask import Flask
from flask.testing import FlaskClient
from jwt import PyJWK
from sqlalchemy import event, select
from werkzeug.wrappers import Request, Response

import bootstrap
import wsgi
from graph.identity import EntraSigningKeys, EntraUnavailable
from services import identities, organizations
from services.auth import PrincipalKind
from services.tables import Company, Organization, User
from services.unit_of_work import UnitOfWorkFactory
from tests.conftest import make_tenant, table_counts, with_settings
from tests.helpers import assert_error
from tests.standins import MicrosoftStandIns, microsoft_standins
from tests.standins.entra import Entra

API_CLIENT_ID = "0f9e8d7c-6b5a-4c3d-9e2f-1a0b9c8d7e6f"
APP_ID_URI = f"api://crm.test/{API_CLIENT_ID}"
DAEMON_ID = "11111111-2222-4333-8444-555555555555"  # a confidential client of the tenant


@dataclass
class EntraTraffic:
    """Requests the product made to the stand-in's metadata and key endpoints, and outages."""

    hits: Counter[str] = field(default_factory=Counter)
    down: set[str] = field(default_factory=set)

    def keys(self) -> int:
        return self.hits["keys_v2"] + self.hits["keys_v1"]


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MicrosoftStandIns]:
    """One stand-in for the module (its keys take a while to make); each test has its own app,
    hence its own key cache, and the tests only add tenants, users and keys to the stand-in."""
    with microsoft_standins(tmp_path_factory.mktemp("entra"), issuer_mode="self") as ms:
        ms.entra.default_audience = API_CLIENT_ID  # minted user tokens are for our API
        ms.entra.register_app(
            DAEMON_ID, "daemon-secret", app_roles={API_CLIENT_ID: ("Crm.ReadWrite.All",)}
        )
        yield ms


@pytest.fixture
def entra(standins: MicrosoftStandIns, monkeypatch: pytest.MonkeyPatch) -> Entra:
    for name, value in standins.environment().items():
        monkeypatch.setenv(name, value)  # REQUESTS_CA_BUNDLE: trust the stand-in's CA
    return standins.entra


@pytest.fixture
def traffic(entra: Entra, monkeypatch: pytest.MonkeyPatch) -> EntraTraffic:
    """Counts (and on demand fails) the stand-in's metadata and JWKS answers."""
    seen = EntraTraffic()
    for endpoint in ("metadata_v2", "metadata_v1", "keys_v2", "keys_v1"):
        original = getattr(entra, f"_handle_{endpoint}")

        def handler(
            request: Request,
            tenant: str,
            _original: Callable[[Request, str], Response] = original,
            _endpoint: str = endpoint,
        ) -> Response:
            seen.hits[_endpoint] += 1
            if _endpoint in seen.down:
                return Response("busy", status=503)
            return _original(request, tenant)

        monkeypatch.setattr(entra, f"_handle_{endpoint}", handler)
    return seen


@pytest.fixture
def settings(settings: bootstrap.Settings, entra: Entra) -> bootstrap.Settings:
    return with_settings(
        settings,
        ms_client_id=API_CLIENT_ID,
        ms_api_audience=APP_ID_URI,
        ms_authority_host=entra.base_url,
    )


@pytest.fixture
def contoso(uow_factory: UnitOfWorkFactory, entra: Entra) -> int:
    """The organization connected to the stand-in's tenant (the allow-list)."""
    with uow_factory() as uow:
        org = organizations.create_organization(
            uow,
            name="Contoso",
            own_domains=["contoso.onmicrosoft.com"],
            ms_tenant_id=entra.tenant_id,
        )
        uow.commit()
    return org.id


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def status_of(client: FlaskClient, token: str) -> int:
    return client.get("/api/v1/me", headers=bearer(token)).status_code


def users(uow_factory: UnitOfWorkFactory) -> list[User]:
    with uow_factory() as uow:
        return list(uow.session.scalars(select(User).order_by(User.id)))


# --------------------------------------------------------------------------- accepted tokens


def test_v2_token_signs_in_and_creates_the_user_once(
    client: FlaskClient,
    container: bootstrap.Container,
    entra: Entra,
    contoso: int,
    traffic: EntraTraffic,
    uow_factory: UnitOfWorkFactory,
) -> None:
    me = client.get("/api/v1/me", headers=bearer(entra.mint_access_token()))
    assert me.status_code == 200, me.get_json()
    body = me.get_json()
    assert body["org_id"] == contoso
    assert body["kind"] == "entra"
    assert body["name"] == "Adele Vance"
    [user] = users(uow_factory)
    assert user.id == body["user_id"]
    assert user.org_id == contoso
    assert user.email == "adele.vance@contoso.onmicrosoft.com"
    assert user.entra_object_id == entra.default_user.oid
    assert user.display_name == "Adele Vance"

    # A later sign-in (a fresh token) is the same user; nothing is written, and no write
    # transaction is opened (on SQLite it would queue every request for the write lock).
    before = table_counts(uow_factory)
    commits: list[object] = []
    record = commits.append
    event.listen(container.engine, "commit", record)
    try:
        again = client.get("/api/v1/me", headers=bearer(entra.mint_access_token()))
    finally:
        event.remove(container.engine, "commit", record)
    assert again.get_json() == body
    assert commits == []
    assert table_counts(uow_factory) == before

    created = client.post(
        "/api/v1/companies",
        json={"name": "Tailspin Toys", "domains": ["tailspin.example"]},
        headers=bearer(entra.mint_access_token()),
    )
    assert created.status_code == 201, created.get_json()
    with uow_factory() as uow:
        company = uow.session.get(Company, created.get_json()["id"])
        assert company is not None
        assert company.org_id == contoso
    # One metadata document and one JWKS for all of it: the cache is shared by requests.
    assert traffic.hits == {"metadata_v2": 1, "keys_v2": 1}


@pytest.mark.parametrize("audience", [APP_ID_URI, API_CLIENT_ID])
def test_v1_token_is_checked_against_the_v1_metadata(
    client: FlaskClient, entra: Entra, contoso: int, traffic: EntraTraffic, audience: str
) -> None:
    token = entra.mint_access_token(version="1.0", aud=audience)
    me = client.get("/api/v1/me", headers=bearer(token))
    assert me.status_code == 200, me.get_json()
    assert me.get_json()["kind"] == "entra"
    assert traffic.hits == {"metadata_v1": 1, "keys_v1": 1}
    # A v1.0 token carrying the v2.0 issuer is not what the v1.0 metadata says.
    wrong = entra.mint_access_token(version="1.0", aud=audience, iss=entra.issuer_v2())
    assert_error(client.get("/api/v1/me", headers=bearer(wrong)), 401, "not_authenticated")


def test_existing_user_is_linked_by_email_at_first_sign_in(
    client: FlaskClient, entra: Entra, contoso: int, uow_factory: UnitOfWorkFactory
) -> None:
    with uow_factory() as uow:
        added = organizations.add_user(
            uow, org_id=contoso, email="adele.vance@contoso.onmicrosoft.com", display_name="Adele"
        )
        uow.commit()
    token = entra.mint_access_token(preferred_username="Adele.Vance@Contoso.onmicrosoft.com")
    me = client.get("/api/v1/me", headers=bearer(token)).get_json()
    assert me["user_id"] == added.id
    assert me["name"] == "Adele"
    [user] = users(uow_factory)
    assert user.entra_object_id == entra.default_user.oid

    # Another account presenting the same address does not take the user over.
    before = table_counts(uow_factory)
    impostor = entra.add_user("adele.vance@contoso.onmicrosoft.com", name="Someone Else")
    refused = client.get("/api/v1/me", headers=bearer(entra.mint_access_token(user=impostor)))
    body = assert_error(refused, 403, "forbidden")
    assert "linked to another account" in body["message"]
    assert table_counts(uow_factory) == before


def test_deactivated_user_is_refused(
    client: FlaskClient, entra: Entra, contoso: int, uow_factory: UnitOfWorkFactory
) -> None:
    token = entra.mint_access_token()
    assert status_of(client, token) == 200
    with uow_factory() as uow:
        for user in uow.session.scalars(select(User)):
            user.active = False
        uow.commit()
    body = assert_error(client.get("/api/v1/me", headers=bearer(token)), 403, "forbidden")
    assert "deactivated" in body["message"]


def test_a_tenant_disconnected_after_its_keys_were_cached_is_refused(
    client: FlaskClient,
    entra: Entra,
    contoso: int,
    uow_factory: UnitOfWorkFactory,
    traffic: EntraTraffic,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With the keys cached the separate connection check is skipped; sign-in still refuses."""
    assert status_of(client, entra.mint_access_token()) == 200
    with uow_factory() as uow:
        org = uow.session.get(Organization, contoso)
        assert org is not None
        org.ms_tenant_id = None
        uow.commit()
    before = table_counts(uow_factory)
    caplog.set_level(logging.INFO, logger="addin.entra")
    refused = client.get("/api/v1/me", headers=bearer(entra.mint_access_token()))
    assert_error(refused, 403, "forbidden")
    assert "not connected" in refused.get_json()["message"]
    assert [r.getMessage() for r in caplog.records if r.name == "addin.entra"] == [
        "auth.entra.refused reason=tenant_not_connected"
    ]
    assert table_counts(uow_factory) == before
    assert traffic.hits == {"metadata_v2": 1, "keys_v2": 1}  # the keys came from the cache


def test_api_keys_still_work_and_org_scoping_holds(
    client: FlaskClient, entra: Entra, contoso: int, uow_factory: UnitOfWorkFactory
) -> None:
    other = make_tenant(uow_factory, "Northwind", "northwind.example")
    created = client.post("/api/v1/companies", json={"name": "Northwind Co"}, headers=other.headers)
    assert created.status_code == 201
    listed = client.get("/api/v1/companies", headers=bearer(entra.mint_access_token()))
    assert listed.status_code == 200
    assert "Northwind Co" not in json.dumps(listed.get_json())


def test_first_sign_ins_racing_each_other_create_one_user(
    entra: Entra, contoso: int, uow_factory: UnitOfWorkFactory
) -> None:
    identity = identities.VerifiedIdentity(
        kind=PrincipalKind.ENTRA,
        tenant=entra.tenant_id,
        subject=str(uuid.uuid4()),
        email="race@contoso.onmicrosoft.com",
        name="Race",
    )
    start = threading.Barrier(6)
    results: list[int | None] = []

    def sign_in() -> None:
        start.wait()
        results.append(identities.sign_in(uow_factory, identity).user_id)

    threads = [threading.Thread(target=sign_in) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6
    assert len(set(results)) == 1
    assert [u.email for u in users(uow_factory)] == ["race@contoso.onmicrosoft.com"]


def test_without_ms_client_id_entra_tokens_are_not_accepted(
    settings: bootstrap.Settings,
    container: bootstrap.Container,
    entra: Entra,
    contoso: int,
) -> None:
    application: Flask = wsgi.create_app(with_settings(settings, ms_client_id=None))
    application.extensions["container"].close()
    application.extensions["container"] = container
    refused = application.test_client().get("/api/v1/me", headers=bearer(entra.mint_access_token()))
    assert_error(refused, 401, "not_authenticated")


# --------------------------------------------------------------------------- refused tokens


def _now() -> int:
    return int(time.time())


def _hs256_with_the_public_key(entra: Entra) -> str:
    """The classic algorithm confusion: HMAC keyed with the published RSA public key (PEM)."""
    jwks = requests.get(f"{entra.base_url}/{entra.tenant_id}/discovery/v2.0/keys", timeout=10)
    public_key: Any = PyJWK(jwks.json()["keys"][0]).key
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    header = {"alg": "HS256", "typ": "JWT", "kid": entra.current_kid}
    signing_input = f"{part(header)}.{part(entra.user_claims())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def _tampered(entra: Entra) -> str:
    """A genuine token whose payload was edited (another oid) and signature kept."""
    header, _, signature = entra.mint_access_token().split(".")
    claims = {**entra.user_claims(), "oid": str(uuid.uuid4())}
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}.{signature}"


def _other_tenant_user(entra: Entra) -> str:
    tid = entra.add_tenant(domain="fabrikam.onmicrosoft.com")
    user = entra.add_user("pat@fabrikam.onmicrosoft.com", tenant_id=tid)
    return entra.mint_access_token(user=user)


def _issuer_of_another_tenant(entra: Entra) -> str:
    return entra.mint_access_token(iss=entra.issuer_v2(entra.add_tenant()))


REFUSED: list[tuple[str, Callable[[Entra], str], int]] = [
    ("expired", lambda e: e.mint_access_token(iat=_now() - 7200, nbf=_now() - 7200,
                                              exp=_now() - 120), 401),
    ("not_yet_valid", lambda e: e.mint_access_token(nbf=_now() + 600, exp=_now() + 4000), 401),
    ("issued_in_the_future", lambda e: e.mint_access_token(iat=_now() + 600), 401),
    ("no_exp", lambda e: e.mint_access_token(exp=None), 401),
    ("microsoft_issuer_not_the_authority", lambda e: e.mint_access_token(
        iss=f"https://login.microsoftonline.com/{e.tenant_id}/v2.0"), 401),
    ("foreign_issuer", lambda e: e.mint_access_token(
        iss=f"https://evil.example/{e.tenant_id}/v2.0"), 401),
    ("v1_issuer_on_v2_token", lambda e: e.mint_access_token(iss=e.issuer_v1()), 401),
    ("tid_issuer_mismatch", _issuer_of_another_tenant, 401),
    ("tid_not_a_guid", lambda e: e.mint_access_token(tid="contoso.onmicrosoft.com"), 401),
    ("wrong_audience", lambda e: e.mint_access_token(aud=str(uuid.uuid4())), 401),
    ("graph_audience", lambda e: e.mint_access_token(aud="https://graph.microsoft.com"), 401),
    ("audience_list", lambda e: e.mint_access_token(aud=[API_CLIENT_ID, "other"]), 401),
    ("unconnected_tenant", _other_tenant_user, 403),
    ("unknown_key", lambda e: e.mint_access_token(sign_with="unknown"), 401),
    ("alg_none", lambda e: e.mint_access_token(sign_with="none"), 401),
    ("impostor_signature", lambda e: e.mint_access_token(sign_with="impostor"), 401),
    ("tampered_payload", _tampered, 401),
    ("hs256_with_public_key", _hs256_with_the_public_key, 401),
    ("rs512_header", lambda e: e.mint_access_token(header={"alg": "RS512"}), 401),
    ("no_kid", lambda e: e.mint_access_token(header={"kid": None, "x5t": None}), 401),
    ("no_version", lambda e: e.mint_access_token(ver=None), 401),
    ("no_oid", lambda e: e.mint_access_token(oid=None), 401),
    ("missing_scp", lambda e: e.mint_access_token(scp=None), 401),
    ("wrong_scp", lambda e: e.mint_access_token(scp="User.Read Mail.Read"), 403),
    ("scp_lookalike", lambda e: e.mint_access_token(scp="access_as_user_admin"), 403),
    ("app_only_roles", lambda e: e.mint_app_token(DAEMON_ID, audience=API_CLIENT_ID), 403),
    ("app_only_v2_idtyp", lambda e: e.mint_access_token(
        scp=None, roles=["Crm.ReadWrite.All"], idtyp="app"), 403),
    ("id_token", lambda e: e.mint_id_token(client_id=API_CLIENT_ID, nonce="n-0S6_WzA2Mj"), 401),
    ("garbage", lambda e: "this-is-not-a-token", 401),
    ("garbage_jwt_shape", lambda e: "eyJhbGciOi.eyJ0aWQiOi.c2lnbmF0dXJl", 401),
]  # fmt: skip


@pytest.mark.parametrize(
    ("forge", "status"), [(forge, status) for _, forge, status in REFUSED],
    ids=[name for name, _, _ in REFUSED],
)  # fmt: skip
def test_forged_or_wrong_tokens_are_refused_without_side_effects(
    client: FlaskClient,
    entra: Entra,
    contoso: int,
    uow_factory: UnitOfWorkFactory,
    caplog: pytest.LogCaptureFixture,
    forge: Callable[[Entra], str],
    status: int,
) -> None:
    # A real sign-in first, so a refusal could not pass for "the user does not exist yet".
    assert status_of(client, entra.mint_access_token()) == 200
    token = forge(entra)
    before = table_counts(uow_factory)
    caplog.set_level(logging.INFO)
    for method, url in (("GET", "/api/v1/me"), ("POST", "/api/v1/companies")):
        response = client.open(url, method=method, json={"name": "Forged"}, headers=bearer(token))
        body = assert_error(response, status, "not_authenticated" if status == 401 else "forbidden")
        assert token not in json.dumps(body)
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert table_counts(uow_factory) == before
    signature = token.rpartition(".")[2]
    assert token not in caplog.text
    assert not signature or signature not in caplog.text


def test_refusals_are_logged_with_a_reason_code(
    client: FlaskClient, entra: Entra, contoso: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="addin.entra")
    client.get("/api/v1/me", headers=bearer(entra.mint_access_token(exp=_now() - 600)))
    client.get("/api/v1/me", headers=bearer(entra.mint_access_token(scp="User.Read")))
    client.get("/api/v1/me", headers=bearer(_other_tenant_user(entra)))
    reasons = [r.getMessage() for r in caplog.records if r.name == "addin.entra"]
    assert reasons == [
        "auth.entra.refused reason=expired",
        "auth.entra.refused reason=scope",
        "auth.entra.refused reason=tenant_not_connected",
    ]


# --------------------------------------------------------------------------- keys: cache, rotation


def test_rotated_key_is_picked_up_with_one_jwks_refresh(
    client: FlaskClient, entra: Entra, contoso: int, traffic: EntraTraffic
) -> None:
    old = entra.mint_access_token()
    for _ in range(3):
        assert status_of(client, entra.mint_access_token()) == 200
    assert traffic.hits == {"metadata_v2": 1, "keys_v2": 1}

    entra.rotate_key()  # Entra signs with a key the cached JWKS does not have yet
    for _ in range(3):
        assert status_of(client, entra.mint_access_token()) == 200
    assert status_of(client, old) == 200  # old key still served
    assert traffic.hits == {"metadata_v2": 1, "keys_v2": 2}

    # A flood of unknown kids right after that refresh does not reach Entra.
    for _ in range(5):
        forged = entra.mint_access_token(header={"kid": str(uuid.uuid4())})
        assert_error(client.get("/api/v1/me", headers=bearer(forged)), 401)
    assert traffic.hits == {"metadata_v2": 1, "keys_v2": 2}


def test_flood_of_unknown_kids_costs_one_jwks_refresh(
    client: FlaskClient, entra: Entra, contoso: int, traffic: EntraTraffic
) -> None:
    for _ in range(10):
        forged = entra.mint_access_token(sign_with="unknown")
        assert_error(client.get("/api/v1/me", headers=bearer(forged)), 401)
    assert traffic.hits == {"metadata_v2": 1, "keys_v2": 2}
    assert status_of(client, entra.mint_access_token()) == 200


def test_unreachable_entra_is_a_503_and_retried_later(
    client: FlaskClient,
    entra: Entra,
    contoso: int,
    traffic: EntraTraffic,
    uow_factory: UnitOfWorkFactory,
) -> None:
    traffic.down.add("keys_v2")
    before = table_counts(uow_factory)
    for _ in range(3):
        response = client.get("/api/v1/me", headers=bearer(entra.mint_access_token()))
        assert_error(response, 503, "unavailable")
    assert table_counts(uow_factory) == before
    assert traffic.hits["keys_v2"] == 1  # the next attempt waits for the retry interval


def test_keys_are_read_again_after_the_ttl_and_kept_through_an_outage(
    entra: Entra, traffic: EntraTraffic
) -> None:
    clock = [1000.0]
    keys = EntraSigningKeys(
        authority_host=entra.base_url, ttl=100, retry_interval=30, clock=lambda: clock[0]
    )
    kid, tid = entra.current_kid, entra.tenant_id
    found = keys.signing_key(tid, "2.0", kid)
    assert found.key is not None
    assert found.issuer == entra.issuer_v2()
    clock[0] += 99
    keys.signing_key(tid, "2.0", kid)
    assert traffic.hits == {"metadata_v2": 1, "keys_v2": 1}
    clock[0] += 1
    keys.signing_key(tid, "2.0", kid)
    assert traffic.hits == {"metadata_v2": 2, "keys_v2": 2}

    traffic.down.add("keys_v2")
    clock[0] += 100
    assert keys.signing_key(tid, "2.0", kid).key is not None  # stale keys beat no keys
    clock[0] += 29
    keys.signing_key(tid, "2.0", kid)
    assert traffic.hits["keys_v2"] == 3  # no new attempt within the retry interval
    clock[0] += 1
    keys.signing_key(tid, "2.0", kid)
    assert traffic.hits["keys_v2"] == 4

    # Another tenant, nothing cached: the outage is an error, and is not retried at once.
    other = entra.add_tenant()
    with pytest.raises(EntraUnavailable) as failed:
        keys.signing_key(other, "2.0", kid)
    assert failed.value.reason == "entra.http_503"
    with pytest.raises(EntraUnavailable):
        keys.signing_key(other, "2.0", kid)
    assert traffic.hits["keys_v2"] == 5
