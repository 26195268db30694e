"""The Outlook XML manifest: valid against the XSDs, send policies, ids, URLs, refusals."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

import bootstrap
from manifest import outlook

XSD = Path(__file__).resolve().parents[2] / "manifest" / "xsd" / "OfficeAppManifestV1_1.xsd"
NS = {
    "app": "http://schemas.microsoft.com/office/appforoffice/1.1",
    "bt": "http://schemas.microsoft.com/office/officeappbasictypes/1.0",
    "o10": "http://schemas.microsoft.com/office/mailappversionoverrides",
    "o": "http://schemas.microsoft.com/office/mailappversionoverrides/1.1",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
XSI_TYPE = f"{{{NS['xsi']}}}type"
ADDIN_ID = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
CLIENT_ID = "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a"
BASE = "https://crm.example.com"
SETTINGS = bootstrap.Settings(public_base_url=BASE, addin_id=ADDIN_ID)
SSO_SETTINGS = replace(
    SETTINGS, ms_client_id=CLIENT_ID, ms_api_audience=f"api://crm.example.com/{CLIENT_ID}"
)


@pytest.fixture(scope="module")
def schema() -> Any:
    # Parsed from its path, so its xs:import lines resolve to the sibling files.
    return etree.XMLSchema(etree.parse(str(XSD)))


def parse(document: str) -> Any:
    return etree.fromstring(document.encode("utf-8"))


def launch_events(root: Any) -> dict[str, dict[str, str]]:
    found = root.findall(".//o:LaunchEvents/o:LaunchEvent", NS)
    return {event.get("Type"): dict(event.attrib) for event in found}


def mailbox_min_version(root: Any) -> str:
    sets = root.find("o10:VersionOverrides/o:VersionOverrides/o:Requirements/bt:Sets", NS)
    assert sets.find("bt:Set", NS).get("Name") == "Mailbox"
    return str(sets.get("DefaultMinVersion"))


@pytest.mark.parametrize("policy", outlook.SEND_POLICIES)
@pytest.mark.parametrize("settings", [SETTINGS, SSO_SETTINGS], ids=["no-sso", "sso"])
def test_the_manifest_validates_against_the_official_xsds(
    schema: Any, settings: bootstrap.Settings, policy: outlook.SendPolicy
) -> None:
    document = outlook.outlook_manifest(settings, send_policy=policy)
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<OfficeApp ')
    schema.assertValid(parse(document))


def test_the_schema_checks_the_nested_version_overrides(schema: Any) -> None:
    """A misplaced element deep inside VersionOverrides 1.1 is caught: the check has teeth."""
    root = parse(outlook.outlook_manifest(SETTINGS))
    launch_point = root.find(".//o:ExtensionPoint[@xsi:type='LaunchEvent']", NS)
    launch_point.append(launch_point.find("o:LaunchEvents", NS))  # now after SourceLocation
    assert not schema.validate(root)
    assert "LaunchEvents" in str(schema.error_log.last_error)


@pytest.mark.parametrize("policy", ["SoftBlock", "PromptUser"])
def test_a_send_policy_adds_on_appointment_send_with_its_send_mode(policy: str) -> None:
    root = parse(outlook.outlook_manifest(SETTINGS, send_policy=outlook.as_send_policy(policy)))
    events = launch_events(root)
    assert events["OnAppointmentSend"] == {
        "Type": "OnAppointmentSend",
        "FunctionName": "onAppointmentSend",
        "SendMode": policy,
    }
    assert mailbox_min_version(root) == "1.12"  # OnAppointmentSend needs Mailbox 1.12


def test_policy_off_leaves_on_appointment_send_out() -> None:
    document = outlook.outlook_manifest(SETTINGS, send_policy="off")
    root = parse(document)
    assert "OnAppointmentSend" not in document
    assert "SendMode" not in document
    assert set(launch_events(root)) == {
        "OnNewAppointmentOrganizer",
        "OnAppointmentAttendeesChanged",
    }
    assert mailbox_min_version(root) == "1.11"  # OnAppointmentAttendeesChanged


def test_the_default_policy_is_soft_block() -> None:
    events = launch_events(parse(outlook.outlook_manifest(SETTINGS)))
    assert events["OnAppointmentSend"]["SendMode"] == "SoftBlock"


def test_an_unknown_send_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="SoftBlock, PromptUser, off"):
        outlook.as_send_policy("Block")
    with pytest.raises(ValueError, match="SoftBlock, PromptUser, off"):
        outlook.outlook_manifest(SETTINGS, send_policy="sometimes")  # type: ignore[arg-type]


def test_launch_events_call_the_handlers_in_the_runtime() -> None:
    root = parse(outlook.outlook_manifest(SETTINGS))
    events = launch_events(root)
    assert events["OnNewAppointmentOrganizer"] == {
        "Type": "OnNewAppointmentOrganizer",
        "FunctionName": "onNewAppointmentOrganizer",
    }
    assert events["OnAppointmentAttendeesChanged"] == {
        "Type": "OnAppointmentAttendeesChanged",
        "FunctionName": "onAppointmentAttendeesChanged",
    }
    host = root.find(".//o:Host", NS)
    runtime = host.find("o:Runtimes/o:Runtime", NS)
    assert runtime.get("resid") == "WebViewRuntime.Url"
    override = runtime.find("o:Override", NS)
    assert (override.get("type"), override.get("resid")) == ("javascript", "JSRuntime.Url")
    source = host.find(".//o:ExtensionPoint[@xsi:type='LaunchEvent']/o:SourceLocation", NS)
    assert source.get("resid") == runtime.get("resid")
    assert host.find("o:DesktopFormFactor/o:FunctionFile", NS).get("resid") == "Commands.Url"


def test_without_ms_client_id_there_is_no_web_application_info() -> None:
    document = outlook.outlook_manifest(replace(SETTINGS, ms_api_audience="api://x/y"))
    assert "WebApplicationInfo" not in document


def test_web_application_info_names_the_app_registration() -> None:
    root = parse(outlook.outlook_manifest(SSO_SETTINGS))
    info = root.find(".//o:WebApplicationInfo", NS)
    assert info.findtext("o:Id", namespaces=NS) == CLIENT_ID
    assert info.findtext("o:Resource", namespaces=NS) == f"api://crm.example.com/{CLIENT_ID}"
    scopes = [scope.text for scope in info.findall("o:Scopes/o:Scope", NS)]
    assert scopes == ["openid", "profile", outlook.API_SCOPE]


def test_web_application_info_defaults_the_resource_to_the_app_id_uri() -> None:
    settings = replace(SETTINGS, ms_client_id=CLIENT_ID, ms_api_audience=None)
    info = parse(outlook.outlook_manifest(settings)).find(".//o:WebApplicationInfo", NS)
    assert info.findtext("o:Resource", namespaces=NS) == f"api://crm.example.com/{CLIENT_ID}"


@pytest.mark.parametrize(
    "base", ["http://crm.example.com", "http://localhost:5000", "ftp://crm.example.com", "https://"]
)
def test_a_base_url_that_is_not_https_is_refused(base: str) -> None:
    with pytest.raises(outlook.ManifestError, match="PUBLIC_BASE_URL must be an https:// URL"):
        outlook.outlook_manifest(replace(SETTINGS, public_base_url=base))


@pytest.mark.parametrize("addin_id", [None, ""])
def test_a_missing_addin_id_is_refused(addin_id: str | None) -> None:
    with pytest.raises(outlook.ManifestError, match="ADDIN_ID is not set"):
        outlook.outlook_manifest(replace(SETTINGS, addin_id=addin_id))


def test_a_client_id_that_is_not_a_guid_is_refused() -> None:
    with pytest.raises(outlook.ManifestError, match="MS_CLIENT_ID must be a GUID"):
        outlook.outlook_manifest(replace(SETTINGS, ms_client_id="my-app"))


def test_ids_names_and_permissions() -> None:
    root = parse(outlook.outlook_manifest(SETTINGS))
    assert root.get(XSI_TYPE) == "MailApp"
    assert root.findtext("app:Id", namespaces=NS) == ADDIN_ID
    assert root.find("app:DisplayName", NS).get("DefaultValue") == "Meeting-to-CRM"
    assert root.findtext("app:Permissions", namespaces=NS) == "ReadWriteItem"
    assert root.find("app:Hosts/app:Host", NS).get("Name") == "Mailbox"
    top_set = root.find("app:Requirements/app:Sets/app:Set", NS)
    assert (top_set.get("Name"), top_set.get("MinVersion")) == ("Mailbox", "1.1")
    rules = root.findall("app:Rule/app:Rule", NS)
    assert {(rule.get("ItemType"), rule.get("FormType")) for rule in rules} == {
        ("Appointment", "Read"),
        ("Appointment", "Edit"),
    }
    forms = root.findall("app:FormSettings/app:Form", NS)
    assert [form.get(XSI_TYPE) for form in forms] == ["ItemRead", "ItemEdit"]


def test_both_appointment_surfaces_have_a_button_opening_the_task_pane() -> None:
    root = parse(outlook.outlook_manifest(SETTINGS))
    buttons = {}
    for point in root.findall(".//o:DesktopFormFactor/o:ExtensionPoint", NS):
        for control in point.findall(".//o:Control", NS):
            action = control.find("o:Action", NS)
            assert action.get(XSI_TYPE) == "ShowTaskpane"
            assert action.find("o:SourceLocation", NS).get("resid") == "Taskpane.Url"
            buttons[point.get(XSI_TYPE)] = control.get("id")
    assert buttons == {
        # Notification actions open the pane with this commandId.
        "AppointmentOrganizerCommandSurface": "openTaskPaneButton",
        "AppointmentAttendeeCommandSurface": "openTaskPaneAttendeeButton",
    }
    assert outlook.TASKPANE_BUTTON_ID == "openTaskPaneButton"


def test_every_resid_names_a_resource_of_its_kind() -> None:
    """No XSD checks this; Outlook refuses a manifest with a dangling resid."""
    root = parse(outlook.outlook_manifest(SSO_SETTINGS))
    resources = root.find(".//o:Resources", NS)
    ids = {
        kind: {item.get("id") for item in resources.find(f"bt:{kind}", NS)}
        for kind in ("Images", "Urls", "ShortStrings", "LongStrings")
    }
    kind_of = {
        "Image": "Images",
        "SourceLocation": "Urls",
        "FunctionFile": "Urls",
        "Runtime": "Urls",
        "Override": "Urls",
        "Label": "ShortStrings",
        "Title": "ShortStrings",
        "Description": "LongStrings",
    }
    referenced = [e for e in root.iter() if isinstance(e.tag, str) and e.get("resid")]
    assert len(referenced) > 20
    for element in referenced:
        kind = kind_of[etree.QName(element).localname]
        assert element.get("resid") in ids[kind], (element.tag, element.get("resid"))


def test_the_urls_are_the_add_in_pages_under_the_base_url() -> None:
    document = outlook.outlook_manifest(SETTINGS)
    root = parse(document)
    values = [value for element in root.iter() for value in element.attrib.values()]
    values += [element.text for element in root.iter() if element.text]
    urls = {value for value in values if "://" in value and not value.startswith("http://schemas")}
    assert urls == {
        f"{BASE}/addin/taskpane.html",
        f"{BASE}/addin/commands.html",
        f"{BASE}/addin/launchevent.js",
        f"{BASE}/addin/support.html",
        *(f"{BASE}/addin/assets/icon-{size}.png" for size in (16, 32, 64, 80, 128)),
        BASE,  # the AppDomain
    }
    assert set(outlook.AddinUrls(BASE).all()) == urls - {BASE}
    assert all(url.startswith("https://") for url in urls)
    resources = root.find(".//o:Resources/bt:Urls", NS)
    assert {url.get("id"): url.get("DefaultValue") for url in resources} == {
        "Taskpane.Url": f"{BASE}/addin/taskpane.html",
        "Commands.Url": f"{BASE}/addin/commands.html",
        "WebViewRuntime.Url": f"{BASE}/addin/commands.html",
        "JSRuntime.Url": f"{BASE}/addin/launchevent.js",
    }


def test_a_base_url_with_a_path_keeps_it() -> None:
    root = parse(outlook.outlook_manifest(replace(SETTINGS, public_base_url=f"{BASE}/crm/")))
    assert root.findtext("app:AppDomains/app:AppDomain", namespaces=NS) == BASE
    taskpane = root.find(".//bt:Url[@id='Taskpane.Url']", NS).get("DefaultValue")
    assert taskpane == f"{BASE}/crm/addin/taskpane.html"


def test_text_is_escaped() -> None:
    settings = replace(SSO_SETTINGS, ms_api_audience='api://a&b/"x"<y>')
    info = parse(outlook.outlook_manifest(settings)).find(".//o:WebApplicationInfo", NS)
    assert info.findtext("o:Resource", namespaces=NS) == 'api://a&b/"x"<y>'


def test_the_generator_does_not_use_flask() -> None:
    source = Path(outlook.__file__).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"flask", "werkzeug", "sqlalchemy", "services"}


def test_the_manifest_version_follows_the_release() -> None:
    # Integrated apps takes a changed manifest only with a higher version: raising the
    # package version (pyproject.toml) raises the manifest's.
    from importlib.metadata import version

    root = parse(outlook.outlook_manifest(SETTINGS))
    expected = version("meeting-to-crm").split("+")[0]
    assert root.find("app:Version", NS).text == f"{expected}.0"
    assert [part.isdigit() for part in root.find("app:Version", NS).text.split(".")] == [True] * 4
