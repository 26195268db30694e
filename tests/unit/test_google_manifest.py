"""The Google Workspace add-on deployment descriptor: shape, URLs, scopes, refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

import bootstrap
from manifest import google

BASE = "https://crm.example.com"
SETTINGS = bootstrap.Settings(public_base_url=BASE)
SCOPE_PREFIX = "https://www.googleapis.com/auth/"


def run_functions(document: dict[str, Any]) -> dict[str, str]:
    """Every endpoint URL the descriptor names, by where it is named."""
    add_ons = document["addOns"]
    found = {
        f"{host}.homepageTrigger": add_ons[host]["homepageTrigger"]["runFunction"]
        for host in ("common", "gmail", "calendar")
    }
    found["calendar.eventOpenTrigger"] = add_ons["calendar"]["eventOpenTrigger"]["runFunction"]
    for index, trigger in enumerate(add_ons["gmail"]["contextualTriggers"]):
        found[f"gmail.contextualTriggers[{index}]"] = trigger["onTriggerFunction"]
    return found


def test_the_descriptor_is_a_deployment_resource_body() -> None:
    document = google.google_deployment(SETTINGS)
    # Deployment {name, oauthScopes, addOns, etag}: name comes from the gcloud argument, etag
    # from the server.
    assert set(document) == {"oauthScopes", "addOns"}
    assert set(document["addOns"]) == {"common", "gmail", "calendar", "httpOptions"}


def test_the_common_section() -> None:
    common = google.google_deployment(SETTINGS)["addOns"]["common"]
    assert common == {
        "name": "Meeting-to-CRM",
        "logoUrl": f"{BASE}/addin/assets/icon-128.png",
        "layoutProperties": {"primaryColor": "#0f6cbd", "secondaryColor": "#115ea3"},
        "useLocaleFromApp": True,
        "homepageTrigger": {"runFunction": f"{BASE}/addon/google/homepage"},
    }


def test_gmail_runs_the_homepage_and_every_opened_message() -> None:
    gmail = google.google_deployment(SETTINGS)["addOns"]["gmail"]
    assert gmail == {
        "homepageTrigger": {"runFunction": f"{BASE}/addon/google/homepage"},
        "contextualTriggers": [
            {"unconditional": {}, "onTriggerFunction": f"{BASE}/addon/google/gmail/message-open"}
        ],
    }


def test_calendar_reads_the_open_event_and_writes_nothing() -> None:
    calendar = google.google_deployment(SETTINGS)["addOns"]["calendar"]
    assert calendar == {
        "homepageTrigger": {"runFunction": f"{BASE}/addon/google/homepage"},
        "eventOpenTrigger": {"runFunction": f"{BASE}/addon/google/calendar/event-open"},
        "currentEventAccess": "READ",
    }


def test_google_signs_requests_with_the_system_id_token() -> None:
    document = google.google_deployment(SETTINGS)
    assert document["addOns"]["httpOptions"] == {
        "authorizationHeader": "SYSTEM_ID_TOKEN",
        "granularOauthPermissionSupport": "OPT_IN",
    }


def test_every_run_function_is_an_https_endpoint_under_the_base_url() -> None:
    for where, url in run_functions(google.google_deployment(SETTINGS)).items():
        assert url.startswith(f"{BASE}/"), where
        assert url.removeprefix(BASE) in google.ENDPOINT_PATHS, where


def test_the_endpoint_list_names_every_url_google_posts_to() -> None:
    urls = google.AddonUrls(BASE)
    assert urls.endpoints() == [
        f"{BASE}/addon/google/homepage",
        f"{BASE}/addon/google/calendar/event-open",
        f"{BASE}/addon/google/gmail/message-open",
        f"{BASE}/addon/google/action",
        f"{BASE}/addon/google/autocomplete",
    ]
    named = set(run_functions(google.google_deployment(SETTINGS)).values())
    assert named <= set(urls.endpoints())


def test_the_scopes_are_exactly_what_the_endpoints_need_and_sorted() -> None:
    scopes = google.google_deployment(SETTINGS)["oauthScopes"]
    assert scopes == sorted(scopes)
    assert len(scopes) == len(set(scopes))
    assert [scope.removeprefix(SCOPE_PREFIX) for scope in scopes] == [
        "calendar.addons.current.event.read",  # currentEventAccess READ
        "calendar.addons.execute",
        "gmail.addons.current.message.readonly",  # the opened message, with its invitation
        "gmail.addons.execute",
        "script.locale",  # useLocaleFromApp: userLocale and timeZone in the event
        "userinfo.email",  # the userIdToken, the user's verified e-mail
    ]


def test_no_scope_of_the_background_sync_is_asked_of_users() -> None:
    """Calendar and Gmail API scopes belong to domain-wide delegation, not to user consent."""
    scopes = google.google_deployment(SETTINGS)["oauthScopes"]
    for broad in ("calendar", "calendar.events", "gmail.readonly", "gmail.metadata"):
        assert f"{SCOPE_PREFIX}{broad}" not in scopes
    assert "https://mail.google.com/" not in scopes


def test_a_trailing_slash_on_the_base_url_makes_no_double_slash() -> None:
    settings = bootstrap.Settings(public_base_url=f"{BASE}/")
    for url in run_functions(google.google_deployment(settings)).values():
        assert "//" not in url.removeprefix("https://")


def test_a_base_url_with_a_path_prefixes_every_url() -> None:
    settings = bootstrap.Settings(public_base_url=f"{BASE}/crm")
    document = google.google_deployment(settings)
    assert document["addOns"]["common"]["logoUrl"] == f"{BASE}/crm/addin/assets/icon-128.png"
    for url in run_functions(document).values():
        assert url.startswith(f"{BASE}/crm/addon/google/")


@pytest.mark.parametrize(
    "base", ["http://localhost:5000", "http://crm.example.com", "crm.example.com", "https://"]
)
def test_a_base_url_that_is_not_https_is_refused_naming_the_setting(base: str) -> None:
    with pytest.raises(google.ManifestError, match="PUBLIC_BASE_URL must be an https:// URL"):
        google.google_deployment(bootstrap.Settings(public_base_url=base))


def test_the_json_is_the_descriptor() -> None:
    text = google.deployment_json(SETTINGS)
    assert text.endswith("}\n")
    assert json.loads(text) == google.google_deployment(SETTINGS)


def test_each_call_returns_a_fresh_document() -> None:
    first = google.google_deployment(SETTINGS)
    first["oauthScopes"].append("https://mail.google.com/")
    first["addOns"]["gmail"]["homepageTrigger"]["runFunction"] = "https://evil.example"
    second = google.google_deployment(SETTINGS)
    assert "https://mail.google.com/" not in second["oauthScopes"]
    assert second["addOns"]["gmail"]["homepageTrigger"]["runFunction"].startswith(BASE)
