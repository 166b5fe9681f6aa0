"""The web viewer's files (the package directory ``logsvc/ui``), as the server answers them at ``/ui/``.

The viewer is plain HTML, CSS and JavaScript modules, with no build step: what is in ``ui/`` is what the
browser runs (docs/decisions/0025-web-viewer-without-build-step.md). Only the files found there are
served, each with its media type and the security headers below; no name is ever joined to a path.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.resources import files

from logsvc.errors import RouteNotFound

__all__ = ["CONTENT_SECURITY_POLICY", "MEDIA_TYPES", "SECURITY_HEADERS", "UI_PATH", "Asset", "asset"]

UI_PATH = "/ui/"
_INDEX = "index.html"

# Everything from this origin only, nothing inline, no eval; the DOM's HTML sinks (innerHTML and the like)
# refuse strings outright (Trusted Types with no policy), so log text can only ever be inserted as text.
# Forms submit nowhere: the sign-in form is read by the script, so a key can never land in a URL.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    # Small files that change with the package: always revalidated, never served stale after an upgrade.
    "Cache-Control": "no-cache",
}
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the viewer; it is answered with ``SECURITY_HEADERS``."""

    body: bytes
    media_type: str


@functools.cache
def _assets() -> dict[str, Asset]:
    """The files of ``logsvc/ui``, read once (on first use, never at import)."""
    found: dict[str, Asset] = {}
    for item in files("logsvc").joinpath("ui").iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1] if "." in item.name else ""
        if item.is_file() and suffix in MEDIA_TYPES:
            found[item.name] = Asset(item.read_bytes(), MEDIA_TYPES[suffix])
    return found


def asset(name: str) -> Asset:
    """The viewer's file ``name`` (``index.html`` for the empty name), or 404."""
    found = _assets().get(name or _INDEX)
    if found is None:
        raise RouteNotFound(f"GET {UI_PATH}{name}: Not Found")
    return found
