"""The event handlers of launchevent.js in Chromium against a mocked Office (A1, Smart Alerts).

Each case runs one handler the way Outlook does (through the name it was associated with) and
checks the one event.completed call and the notification calls it made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.browser.conftest import Pane
from tests.conftest import Tenant

pytestmark = pytest.mark.browser

COMMAND_ID = "openTaskPaneButton"

# Runs a handler with a mock event; resolves with the completed() options once it is called,
# then waits a little so that a second completed() call would be seen too.
RUN = """async (name) => {
  const completions = [];
  await new Promise((resolve) => {
    window.__office.handlers[name]({
      completed: (options) => {
        completions.push(options === undefined ? null : options);
        resolve();
      },
    });
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  return completions;
}"""


@pytest.fixture
def contoso(api: Callable[..., Any]) -> dict[str, Any]:
    return api("POST", "/companies", {"name": "Contoso", "domains": ["contoso.example"]})  # type: ignore[no-any-return]


def _runtime(
    make_pane: Callable[..., Pane], tenant: Tenant, attendees: list[str], **config: Any
) -> Pane:
    pane = make_pane(
        {
            "mode": "compose",
            "subject": "Intro",
            "start": "2030-01-07T09:00:00Z",
            "end": "2030-01-07T10:00:00Z",
            "required": [{"emailAddress": email} for email in attendees],
            "user": {"emailAddress": tenant.user_email},
            "token": tenant.token,
        }
        | config
    )
    pane.open("/addin/commands.html")
    pane.page.wait_for_function("() => Object.keys(window.__office.handlers).length === 3")
    return pane


def _run(pane: Pane, handler: str) -> list[Any]:
    return pane.page.evaluate(RUN, handler)  # type: ignore[no-any-return]


def test_a_new_appointment_gets_the_link_prompt(
    make_pane: Callable[..., Pane], tenant: Tenant
) -> None:
    pane = _runtime(make_pane, tenant, [])
    assert _run(pane, "onNewAppointmentOrganizer") == [None]
    ((key, details),) = pane.calls("notificationMessages.addAsync")
    assert key == "crmLink"
    assert details["type"] == "insightMessage"
    assert details["message"] == "Link this meeting to a CRM company"
    (action,) = details["actions"]
    assert action["actionType"] == "showTaskPane"
    assert action["commandId"] == COMMAND_ID
    assert action["actionText"]
    assert pane.errors == []


def test_attendees_changed_names_the_suggested_company(
    make_pane: Callable[..., Pane], tenant: Tenant, contoso: dict[str, Any]
) -> None:
    pane = _runtime(make_pane, tenant, ["per@contoso.example", tenant.user_email])
    assert _run(pane, "onAppointmentAttendeesChanged") == [None]
    ((key, details),) = pane.calls("notificationMessages.replaceAsync")
    assert key == "crmLink"
    assert details["message"] == "Link this meeting to Contoso in the CRM?"
    assert details["actions"][0]["contextData"] == {"companyId": contoso["id"]}
    (options,) = pane.calls("getAccessToken")[0]
    assert options == {"allowSignInPrompt": False, "allowConsentPrompt": False}
    assert pane.errors == []


def test_attendees_changed_on_a_network_failure_still_completes(
    make_pane: Callable[..., Pane], tenant: Tenant, contoso: dict[str, Any]
) -> None:
    pane = _runtime(make_pane, tenant, ["per@contoso.example"])
    pane.page.route(f"{pane.base_url}/api/v1/suggest", lambda route: route.abort())
    assert _run(pane, "onAppointmentAttendeesChanged") == [None]
    assert pane.calls("notificationMessages.replaceAsync") == []
    # the refused request itself is logged by Chromium; no script error is
    assert all("net::ERR_FAILED" in error for error in pane.errors)


def test_attendees_changed_gives_up_on_a_slow_api_after_three_seconds(
    make_pane: Callable[..., Pane], tenant: Tenant, contoso: dict[str, Any]
) -> None:
    pane = _runtime(make_pane, tenant, ["per@contoso.example"])
    pane.page.route(f"{pane.base_url}/api/v1/suggest", lambda route: None)  # never answers
    started = time.monotonic()
    assert _run(pane, "onAppointmentAttendeesChanged") == [None]
    assert 2.5 < time.monotonic() - started < 6
    assert pane.calls("notificationMessages.replaceAsync") == []


def test_attendees_changed_without_a_token_still_completes(
    make_pane: Callable[..., Pane], tenant: Tenant, contoso: dict[str, Any]
) -> None:
    pane = _runtime(make_pane, tenant, ["per@contoso.example"], tokenError="13001")
    assert _run(pane, "onAppointmentAttendeesChanged") == [None]
    assert pane.calls("notificationMessages.replaceAsync") == []
    assert pane.errors == []


def test_send_with_only_internal_attendees_is_allowed(
    make_pane: Callable[..., Pane], tenant: Tenant
) -> None:
    pane = _runtime(make_pane, tenant, ["julie@northwind.example"])
    assert _run(pane, "onAppointmentSend") == [{"allowEvent": True}]
    assert pane.errors == []


def test_send_untagged_with_external_attendees_offers_to_tag(
    make_pane: Callable[..., Pane], tenant: Tenant
) -> None:
    pane = _runtime(make_pane, tenant, ["julie@northwind.example", "per@contoso.example"])
    (options,) = _run(pane, "onAppointmentSend")
    assert options["allowEvent"] is False
    assert options["cancelLabel"] == "Tag it"
    assert len(options["cancelLabel"]) <= 20
    assert options["commandId"] == COMMAND_ID
    assert "CRM" in options["errorMessage"]
    assert pane.errors == []


def test_send_untagged_on_a_mailbox_1_13_client_explains_without_the_tag_button(
    make_pane: Callable[..., Pane], tenant: Tenant
) -> None:
    # Outlook on Mac stops at Mailbox 1.13: cancelLabel and commandId (1.14) are not offered.
    pane = _runtime(make_pane, tenant, ["per@contoso.example"], mailbox="1.13")
    (options,) = _run(pane, "onAppointmentSend")
    assert options["allowEvent"] is False
    assert "cancelLabel" not in options
    assert "commandId" not in options
    assert "Link to CRM" in options["errorMessage"]
    assert pane.errors == []


def test_send_tagged_with_external_attendees_is_allowed(
    make_pane: Callable[..., Pane], tenant: Tenant
) -> None:
    pane = _runtime(
        make_pane,
        tenant,
        ["per@contoso.example"],
        customProperties={"crmCompanyId": "12", "crmKind": "meeting"},
    )
    assert _run(pane, "onAppointmentSend") == [{"allowEvent": True}]
    assert pane.errors == []


def test_send_when_outlook_fails_is_allowed(make_pane: Callable[..., Pane], tenant: Tenant) -> None:
    pane = _runtime(make_pane, tenant, ["per@contoso.example"])
    # The host cannot read the custom properties: our failure must not hold the meeting back.
    pane.page.evaluate(
        """() => { Office.context.mailbox.item.loadCustomPropertiesAsync = (cb) =>
             cb({status: "failed", error: {message: "internal"}}); }"""
    )
    assert _run(pane, "onAppointmentSend") == [{"allowEvent": True}]
    assert pane.errors == []
