"""The Outlook add-in's web pages: task pane, event runtime, icons, config (issue #4).

URL contract (the manifest generator references exactly these):

- ``/addin/taskpane.html`` and ``/addin/commands.html``: HTML, ``Cache-Control: no-cache``;
- ``/addin/launchevent.js``: the JavaScript-only runtime of classic Outlook on Windows (one
  file, no imports). Its URL is fixed by the manifest, so it is not content-hashed: no-cache;
- ``/addin/assets/icon-<16|32|64|80|128>.png``;
- ``/addin/config.json``: the client id and API scope the pane asks Entra for;
- ``/.well-known/microsoft-officeaddins-allowed.json``: lets the JS-only runtime use SSO/CORS.

CSS and ES modules are served as ``/addin/static/<name>.<hash>.<ext>`` with a year-long
immutable cache: the hash is of the served bytes, and each module's imports are rewritten to
the hashed names of what they import, so a change anywhere changes every URL that leads to it.
The HTML pages get the hashed names substituted when they are served.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app

import bootstrap

__all__ = ["blueprint", "content_security_policy"]

PANE_DIR = Path(__file__).resolve().parent / "static" / "pane"
VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"
ICON_SIZES = (16, 32, 64, 80, 128)

# Outlook on the web and new Outlook frame the pane from these origins (outlook.cloud.microsoft
# is the address Microsoft has been moving Outlook on the web to since 2025); Office desktop
# hosts from *.officeapps.live.com. No other page may frame it (clickjacking).
FRAME_ANCESTORS = (
    "https://outlook.cloud.microsoft",
    "https://outlook.office.com",
    "https://outlook.office365.com",
    "https://outlook.live.com",
    "https://*.outlook.com",
    "https://*.officeapps.live.com",
)
OFFICE_JS = "https://appsforoffice.microsoft.com"
ENTRA = "https://login.microsoftonline.com"

HTML_CACHE = "no-cache"
IMMUTABLE_CACHE = "public, max-age=31536000, immutable"

# `import ... from "./x.js"`, `import "./x.js"`, `import("./x.js")`: only our own relative
# specifiers are rewritten; the modules use no bare or absolute ones.
_IMPORT = re.compile(r"""((?:\bfrom|\bimport)\s*\(?\s*)(["'])\./([A-Za-z0-9_-]+\.js)\2""")
_PLACEHOLDER = re.compile(r"\{\{asset:([A-Za-z0-9_.-]+)\}\}")
_HASHED = re.compile(r"^(?P<stem>[A-Za-z0-9_.-]+)\.(?P<hash>[0-9a-f]{12})\.(?P<ext>js|css)$")
_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}

blueprint = Blueprint("addin_web", __name__)


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    hashed_name: str  # e.g. "taskpane.3f2a9c01b2de.js"


class Assets:
    """The pane's CSS/JS and the vendored MSAL, read once per app, keyed by plain name."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self._sources = sources
        self._built: dict[str, Asset] = {}
        for name in sources:
            self._build(name, ())

    def _build(self, name: str, stack: tuple[str, ...]) -> Asset:
        if name in self._built:
            return self._built[name]
        if name in stack:
            raise ValueError(f"import cycle: {' -> '.join((*stack, name))}")
        text = self._sources[name].read_text(encoding="utf-8")
        if name.endswith(".js") and not name.startswith("msal-browser"):

            def rewrite(match: re.Match[str]) -> str:
                target = match.group(3)
                if target not in self._sources:
                    raise ValueError(f"{name} imports {target}, which is not a pane module")
                hashed = self._build(target, (*stack, name)).hashed_name
                return f"{match.group(1)}{match.group(2)}./{hashed}{match.group(2)}"

            text = _IMPORT.sub(rewrite, text)
        body = text.encode("utf-8")
        stem, ext = name.rsplit(".", 1)
        digest = hashlib.sha256(body).hexdigest()[:12]
        asset = Asset(body, f"{stem}.{digest}.{ext}")
        self._built[name] = asset
        return asset

    def url(self, name: str) -> str:
        return f"/addin/static/{self._built[name].hashed_name}"

    def by_hashed_name(self, hashed_name: str) -> Asset | None:
        match = _HASHED.match(hashed_name)
        if match is None:
            return None
        asset = self._built.get(f"{match['stem']}.{match['ext']}")
        return asset if asset is not None and asset.hashed_name == hashed_name else None


def _load_assets() -> Assets:
    sources = {p.name: p for p in sorted(PANE_DIR.iterdir()) if p.suffix in (".js", ".css")}
    sources["msal-browser.min.js"] = VENDOR_DIR / "msal-browser.min.js"
    return Assets(sources)


def _assets() -> Assets:
    # Built once per app: the files do not change under a running server (a deploy restarts).
    built = current_app.extensions.get("addin_assets")
    if built is None:
        built = current_app.extensions["addin_assets"] = _load_assets()
    return built


def _settings() -> bootstrap.Settings:
    return current_app.extensions["container"].settings  # type: ignore[no-any-return]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(public_base_url: str) -> str:
    """No inline script or style anywhere; Office.js from Microsoft; framing only by Outlook.

    ``connect-src`` names the public base URL too: the event runtime fetches it by absolute
    URL, which is not 'self' when a proxy serves the pages under another origin.
    """
    connect = " ".join(dict.fromkeys(("'self'", _origin(public_base_url), ENTRA)))
    return "; ".join(
        (
            "default-src 'self'",
            f"script-src 'self' {OFFICE_JS}",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect}",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            f"frame-ancestors {' '.join(FRAME_ANCESTORS)}",
        )
    )


def _with_csp(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = content_security_policy(
        _settings().public_base_url
    )
    return response


def _page(file_name: str) -> Response:
    assets = _assets()
    text = (PANE_DIR / file_name).read_text(encoding="utf-8")

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "launchevent.js":
            return "/addin/launchevent.js"
        try:
            return assets.url(name)
        except KeyError:
            raise ValueError(f"{file_name} names an unknown asset {name}") from None

    response = Response(_PLACEHOLDER.sub(substitute, text), mimetype="text/html")
    response.headers["Cache-Control"] = HTML_CACHE
    return _with_csp(response)


@blueprint.get("/addin/taskpane.html")
def taskpane() -> Response:
    return _page("taskpane.html")


@blueprint.get("/addin/support.html")
def support() -> Response:
    """The manifest's SupportUrl: what the add-in does and whom to ask."""
    return _page("support.html")


@blueprint.get("/addin/commands.html")
def commands() -> Response:
    return _page("commands.html")


@blueprint.get("/addin/launchevent.js")
def launchevent() -> Response:
    """The event handlers; the API's absolute base URL is filled in (no `location` to use)."""
    text = (Path(__file__).resolve().parent / "launchevent.js").read_text(encoding="utf-8")
    text = text.replace("__CRM_BASE_URL__", _settings().public_base_url.rstrip("/"))
    response = Response(text, mimetype="text/javascript")
    response.headers["Cache-Control"] = HTML_CACHE
    return response


@blueprint.get("/addin/static/<string:hashed_name>")
def static_asset(hashed_name: str) -> Response:
    asset = _assets().by_hashed_name(hashed_name)
    if asset is None:
        abort(404)
    ext = hashed_name.rsplit(".", 1)[1]
    response = Response(asset.body, content_type=_TYPES[ext])
    response.headers["Cache-Control"] = IMMUTABLE_CACHE
    return response


@blueprint.get("/addin/assets/icon-<int:size>.png")
def icon(size: int) -> Response:
    if size not in ICON_SIZES:
        abort(404)
    body = (PANE_DIR / "assets" / f"icon-{size}.png").read_bytes()
    response = Response(body, mimetype="image/png")
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


@blueprint.get("/addin/config.json")
def config() -> Response:
    """What the pane's auth module asks Entra for; the scope is our API's access_as_user."""
    settings = _settings()
    audience = (settings.ms_api_audience or "").rstrip("/")
    # The tenant's own authority: Entra refuses /common for a single-tenant registration.
    tenant = settings.ms_tenant_id or "organizations"
    body = {
        "clientId": settings.ms_client_id or "",
        "apiScope": f"{audience}/access_as_user" if audience else "",
        "authority": f"{settings.ms_authority_host.rstrip('/')}/{tenant}",
    }
    response = Response(json.dumps(body), mimetype="application/json")
    response.headers["Cache-Control"] = HTML_CACHE
    return response


@blueprint.get("/.well-known/microsoft-officeaddins-allowed.json")
def allowed() -> Response:
    """Classic Outlook lets only the JS files listed here use SSO and CORS from the runtime."""
    base = _settings().public_base_url.rstrip("/")
    response = Response(
        json.dumps({"allowed": [f"{base}/addin/launchevent.js"]}), mimetype="application/json"
    )
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
