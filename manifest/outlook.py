"""The Outlook add-in-only (XML) manifest, built from settings.

One pure function, `outlook_manifest`, renders the document; no Flask here. The shape follows
Microsoft's docs:
- XML manifest overview: https://learn.microsoft.com/office/dev/add-ins/develop/xml-manifest-overview
- element order (enforced by the XSDs):
  https://learn.microsoft.com/office/dev/add-ins/develop/manifest-element-ordering
- event-based activation (Runtimes, LaunchEvent, the JavaScript-only Override for classic Outlook
  on Windows): https://learn.microsoft.com/office/dev/add-ins/develop/event-based-activation
- Smart Alerts, `OnAppointmentSend` and `SendMode`:
  https://learn.microsoft.com/office/dev/add-ins/outlook/onmessagesend-onappointmentsend-events
- WebApplicationInfo: https://learn.microsoft.com/javascript/api/manifest/webapplicationinfo

The XSDs in manifest/xsd/ validate the result in the tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import urlsplit
from xml.sax.saxutils import escape, quoteattr

if TYPE_CHECKING:
    from bootstrap import Settings

SendPolicy = Literal["SoftBlock", "PromptUser", "off"]
SEND_POLICIES: Final[tuple[SendPolicy, ...]] = ("SoftBlock", "PromptUser", "off")
# SoftBlock is Outlook's own default: the send waits for the add-in, and goes ahead if it fails.
DEFAULT_SEND_POLICY: Final[SendPolicy] = "SoftBlock"

DISPLAY_NAME: Final = "Meeting-to-CRM"
PROVIDER_NAME: Final = "Meeting-to-CRM"


def _package_version() -> str:
    """The manifest's four-part version from the package's (pyproject.toml) version.

    Admins must see a higher version in Integrated apps to take a changed manifest, so it
    follows the release: raise `version` in pyproject.toml with every release.
    """
    try:
        parts = package_version("meeting-to-crm").split("+")[0].split(".")
    except PackageNotFoundError:  # run from a tree that was never installed
        return "1.0.0.0"
    numbers = [part if part.isdigit() else "0" for part in parts[:4]]
    return ".".join(numbers + ["0"] * (4 - len(numbers)))


VERSION: Final = _package_version()
DESCRIPTION: Final = (
    "Links Outlook meetings to CRM companies and contacts when they are created, "
    "and keeps the CRM activity up to date."
)
# The organizer's task pane button; notification actions name it as their commandId.
TASKPANE_BUTTON_ID: Final = "openTaskPaneButton"
ATTENDEE_TASKPANE_BUTTON_ID: Final = "openTaskPaneAttendeeButton"
# The delegated scope the CRM's Entra app registration exposes (Office SSO convention).
API_SCOPE: Final = "access_as_user"

# Paths under PUBLIC_BASE_URL; the add-in front end serves them.
TASKPANE_PATH: Final = "/addin/taskpane.html"
COMMANDS_PATH: Final = "/addin/commands.html"
LAUNCH_EVENT_JS_PATH: Final = "/addin/launchevent.js"
SUPPORT_PATH: Final = "/addin/support.html"
ICON_SIZES: Final = (16, 32, 64, 80, 128)
RIBBON_ICON_SIZES: Final = (16, 32, 80)  # the sizes a ribbon button's <Icon> lists


def icon_path(size: int) -> str:
    return f"/addin/assets/icon-{size}.png"


# LaunchEvent Type -> FunctionName, the name launchevent.js registers with Office.actions.associate.
LAUNCH_EVENTS: Final[tuple[tuple[str, str], ...]] = (
    ("OnNewAppointmentOrganizer", "onNewAppointmentOrganizer"),  # Mailbox 1.10
    ("OnAppointmentAttendeesChanged", "onAppointmentAttendeesChanged"),  # Mailbox 1.11
)
SEND_EVENT: Final = ("OnAppointmentSend", "onAppointmentSend")  # Mailbox 1.12

_NS_APP: Final = "http://schemas.microsoft.com/office/appforoffice/1.1"
_NS_XSI: Final = "http://www.w3.org/2001/XMLSchema-instance"
_NS_BT: Final = "http://schemas.microsoft.com/office/officeappbasictypes/1.0"
_NS_MAIL_1_0: Final = "http://schemas.microsoft.com/office/mailappversionoverrides"
_NS_MAIL_1_1: Final = "http://schemas.microsoft.com/office/mailappversionoverrides/1.1"


class ManifestError(ValueError):
    """The settings cannot make a valid manifest; the message names the environment variable."""


def as_send_policy(value: str) -> SendPolicy:
    """The admin's send policy from text (a query parameter, a CLI option)."""
    for policy in SEND_POLICIES:
        if value == policy:
            return policy
    raise ValueError(f"the send policy must be one of {', '.join(SEND_POLICIES)}, got {value!r}")


@dataclass(frozen=True, slots=True)
class AddinUrls:
    """Every URL the manifest references, absolute and https."""

    base: str

    def __post_init__(self) -> None:
        parts = urlsplit(self.base)
        if parts.scheme != "https" or not parts.netloc:
            raise ManifestError(
                "PUBLIC_BASE_URL must be an https:// URL for the Outlook manifest "
                f"(Outlook loads add-in pages only over https), got {self.base!r}"
            )

    def at(self, path: str) -> str:
        return self.base.rstrip("/") + path

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def taskpane(self) -> str:
        return self.at(TASKPANE_PATH)

    @property
    def commands(self) -> str:
        return self.at(COMMANDS_PATH)

    @property
    def launch_event_js(self) -> str:
        return self.at(LAUNCH_EVENT_JS_PATH)

    @property
    def support(self) -> str:
        return self.at(SUPPORT_PATH)

    def icon(self, size: int) -> str:
        return self.at(icon_path(size))

    def all(self) -> list[str]:
        """Every distinct URL, for tests and for checking they are served."""
        urls = [self.taskpane, self.commands, self.launch_event_js, self.support]
        return urls + [self.icon(size) for size in ICON_SIZES]


def outlook_manifest(settings: Settings, *, send_policy: SendPolicy = DEFAULT_SEND_POLICY) -> str:
    """The MailApp manifest: VersionOverrides 1.0 holding VersionOverrides 1.1.

    `send_policy` is the admin's choice for Smart Alerts: "SoftBlock" or "PromptUser" become the
    `SendMode` of the `OnAppointmentSend` launch event; "off" leaves that event out (and the
    Mailbox requirement drops to 1.11, the highest set the other events need).
    Raises ManifestError when ADDIN_ID is unset, PUBLIC_BASE_URL is not https, or MS_CLIENT_ID
    is not a GUID.
    """
    send_policy = as_send_policy(send_policy)  # callers without type checks too
    if not settings.addin_id:
        raise ManifestError(
            "ADDIN_ID is not set: the Outlook manifest's <Id> is this GUID; make one once with "
            "python -c 'import uuid; print(uuid.uuid4())' and keep it for every version"
        )
    addin_id = _guid("ADDIN_ID", settings.addin_id, "the add-in's manifest id")
    urls = AddinUrls(settings.public_base_url)
    root = _element(
        "OfficeApp",
        {"xmlns": _NS_APP, "xmlns:xsi": _NS_XSI, "xmlns:bt": _NS_BT, "xsi:type": "MailApp"},
        _text("Id", addin_id),
        _text("Version", VERSION),
        _text("ProviderName", PROVIDER_NAME),
        _text("DefaultLocale", "en-US"),
        _element("DisplayName", {"DefaultValue": DISPLAY_NAME}),
        _element("Description", {"DefaultValue": DESCRIPTION}),
        _element("IconUrl", {"DefaultValue": urls.icon(64)}),
        _element("HighResolutionIconUrl", {"DefaultValue": urls.icon(128)}),
        _element("SupportUrl", {"DefaultValue": urls.support}),
        _element("AppDomains", {}, _text("AppDomain", urls.origin)),
        _element("Hosts", {}, _element("Host", {"Name": "Mailbox"})),
        _element(
            "Requirements",
            {},
            _element("Sets", {}, _element("Set", {"Name": "Mailbox", "MinVersion": "1.1"})),
        ),
        _form_settings(urls),
        _text("Permissions", "ReadWriteItem"),
        _element(
            "Rule",
            {"xsi:type": "RuleCollection", "Mode": "Or"},
            # Attendee (read) and organizer (edit) forms of an appointment.
            _element("Rule", {"xsi:type": "ItemIs", "ItemType": "Appointment", "FormType": "Read"}),
            _element("Rule", {"xsi:type": "ItemIs", "ItemType": "Appointment", "FormType": "Edit"}),
        ),
        _element(
            "VersionOverrides",
            {"xmlns": _NS_MAIL_1_0, "xsi:type": "VersionOverridesV1_0"},
            _version_overrides_1_1(settings, urls, send_policy),
        ),
    )
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + "\n".join(root.lines()) + "\n"


def _form_settings(urls: AddinUrls) -> _Element:
    """Outlook clients without VersionOverrides support open the task pane page as a form."""
    source = {"DefaultValue": urls.taskpane}
    return _element(
        "FormSettings",
        {},
        _element(
            "Form",
            {"xsi:type": "ItemRead"},
            _element(
                "DesktopSettings",
                {},
                _element("SourceLocation", source),
                _text("RequestedHeight", "250"),
            ),
        ),
        _element(
            "Form",
            {"xsi:type": "ItemEdit"},
            _element("DesktopSettings", {}, _element("SourceLocation", source)),
        ),
    )


def _version_overrides_1_1(
    settings: Settings, urls: AddinUrls, send_policy: SendPolicy
) -> _Element:
    launch_events = [
        _element("LaunchEvent", {"Type": event, "FunctionName": function})
        for event, function in LAUNCH_EVENTS
    ]
    if send_policy != "off":
        event, function = SEND_EVENT
        launch_events.append(
            _element(
                "LaunchEvent", {"Type": event, "FunctionName": function, "SendMode": send_policy}
            )
        )
    mailbox_version = "1.11" if send_policy == "off" else "1.12"
    desktop = _element(
        "DesktopFormFactor",
        {},
        _element("FunctionFile", {"resid": "Commands.Url"}),
        _command_surface(
            "AppointmentOrganizerCommandSurface", "crmOrganizerGroup", TASKPANE_BUTTON_ID
        ),
        _command_surface(
            "AppointmentAttendeeCommandSurface", "crmAttendeeGroup", ATTENDEE_TASKPANE_BUTTON_ID
        ),
        _element(
            "ExtensionPoint",
            {"xsi:type": "LaunchEvent"},
            _element("LaunchEvents", {}, *launch_events),
            # Must name the same resource as the Runtime.
            _element("SourceLocation", {"resid": "WebViewRuntime.Url"}),
        ),
    )
    runtimes = _element(
        "Runtimes",
        {},
        # The HTML page runs the handlers in Outlook on the web, new Outlook and Mac; classic
        # Outlook on Windows runs the single JavaScript file instead.
        _element(
            "Runtime",
            {"resid": "WebViewRuntime.Url"},
            _element("Override", {"type": "javascript", "resid": "JSRuntime.Url"}),
        ),
    )
    return _element(
        "VersionOverrides",
        {"xmlns": _NS_MAIL_1_1, "xsi:type": "VersionOverridesV1_1"},
        _element("Description", {"resid": "Addin.Description"}),
        _element(
            "Requirements",
            {},
            _element(
                "bt:Sets",
                {"DefaultMinVersion": mailbox_version},
                _element("bt:Set", {"Name": "Mailbox"}),
            ),
        ),
        _element("Hosts", {}, _element("Host", {"xsi:type": "MailHost"}, runtimes, desktop)),
        _resources(urls),
        _web_application_info(settings, urls),
    )


def _command_surface(surface: str, group_id: str, button_id: str) -> _Element:
    """A ribbon button on the default tab that opens the task pane."""
    icon = _element(
        "Icon",
        {},
        *(
            _element("bt:Image", {"size": str(s), "resid": f"Icon.{s}x{s}"})
            for s in RIBBON_ICON_SIZES
        ),
    )
    button = _element(
        "Control",
        {"xsi:type": "Button", "id": button_id},
        _element("Label", {"resid": "TaskpaneButton.Label"}),
        _element(
            "Supertip",
            {},
            _element("Title", {"resid": "TaskpaneButton.Label"}),
            _element("Description", {"resid": "TaskpaneButton.Tooltip"}),
        ),
        icon,
        _element(
            "Action",
            {"xsi:type": "ShowTaskpane"},
            _element("SourceLocation", {"resid": "Taskpane.Url"}),
        ),
    )
    group = _element("Group", {"id": group_id}, _element("Label", {"resid": "GroupLabel"}), button)
    return _element(
        "ExtensionPoint",
        {"xsi:type": surface},
        _element("OfficeTab", {"id": "TabDefault"}, group),
    )


def _resources(urls: AddinUrls) -> _Element:
    def entries(kind: str, values: Mapping[str, str]) -> _Element:
        return _element(
            f"bt:{kind}s",
            {},
            *(_element(f"bt:{kind}", {"id": key, "DefaultValue": v}) for key, v in values.items()),
        )

    return _element(
        "Resources",
        {},
        entries("Image", {f"Icon.{s}x{s}": urls.icon(s) for s in RIBBON_ICON_SIZES}),
        entries(
            "Url",
            {
                "Taskpane.Url": urls.taskpane,
                "Commands.Url": urls.commands,
                "WebViewRuntime.Url": urls.commands,
                "JSRuntime.Url": urls.launch_event_js,
            },
        ),
        _element(
            "bt:ShortStrings",
            {},
            _element("bt:String", {"id": "GroupLabel", "DefaultValue": DISPLAY_NAME}),
            _element("bt:String", {"id": "TaskpaneButton.Label", "DefaultValue": "Link to CRM"}),
        ),
        _element(
            "bt:LongStrings",
            {},
            _element(
                "bt:String",
                {
                    "id": "TaskpaneButton.Tooltip",
                    "DefaultValue": "Choose the CRM company and contacts this meeting belongs to.",
                },
            ),
            _element("bt:String", {"id": "Addin.Description", "DefaultValue": DESCRIPTION}),
        ),
    )


def _web_application_info(settings: Settings, urls: AddinUrls) -> _Element | None:
    """Office SSO's app registration; only when MS_CLIENT_ID is set.

    Resource is MS_API_AUDIENCE, by default api://<add-in host>/<client id>.
    """
    if not settings.ms_client_id:
        return None
    client_id = _guid("MS_CLIENT_ID", settings.ms_client_id, "the Entra app registration's id")
    resource = settings.ms_api_audience or f"api://{urlsplit(urls.base).netloc}/{client_id}"
    return _element(
        "WebApplicationInfo",
        {},
        _text("Id", client_id),
        _text("Resource", resource),
        _element(
            "Scopes", {}, *(_text("Scope", scope) for scope in ("openid", "profile", API_SCOPE))
        ),
    )


def _guid(name: str, value: str, what: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ManifestError(f"{name} must be a GUID ({what}), got {value!r}") from None


# A minimal XML writer. ElementTree cannot redeclare the default namespace on the nested
# VersionOverrides elements, which is how every Microsoft sample manifest is written (and
# xsi:type values such as "MailHost" resolve against that default namespace).


@dataclass(frozen=True, slots=True)
class _Element:
    tag: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    children: Sequence[_Element] = ()
    text: str | None = None

    def lines(self, depth: int = 0) -> Iterator[str]:
        pad = "  " * depth
        attrs = "".join(f" {name}={quoteattr(value)}" for name, value in self.attributes.items())
        if self.text is not None:
            yield f"{pad}<{self.tag}{attrs}>{escape(self.text)}</{self.tag}>"
        elif not self.children:
            yield f"{pad}<{self.tag}{attrs}/>"
        else:
            yield f"{pad}<{self.tag}{attrs}>"
            for child in self.children:
                yield from child.lines(depth + 1)
            yield f"{pad}</{self.tag}>"


def _element(tag: str, attributes: Mapping[str, str], *children: _Element | None) -> _Element:
    return _Element(tag, attributes, tuple(child for child in children if child is not None))


def _text(tag: str, text: str) -> _Element:
    return _Element(tag, text=text)
