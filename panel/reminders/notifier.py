"""Messages to chat and notification services through Apprise (one URL per service: Teams, Slack, and 100+ more):
check a URL before it is saved, mask it for display, and send one message with a bounded wait.

What a send's result means for the ledger: Apprise answers success, failure (the service refused it, or could not
be reached: nothing arrived, safe to try again) or timeout (the request went out and no answer came in time: it may
have arrived, so it is never sent again). The read timeout is set longer than the call's deadline, so a slow
answer always shows up as Apprise's TIMEOUT and never as a failure.
"""
from __future__ import annotations

import enum
import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import apprise
from apprise import AppriseResultStatus, NotifyFormat

MAX_URL = 2000
# Notifications shown on the server's own desktop or written to its own log: nobody would see them.
LOCAL_ONLY = {"syslog", "dbus", "kde", "qt", "glib", "gnome", "macosx", "windows", "blink1"}
# Teams channels take messages through Workflows (Power Automate) since Microsoft retired Office 365 connectors.
FRIENDLY = {"workflow": "Microsoft Teams (Workflows)", "slack": "Slack"}

# Apprise logs at INFO for every message; its DEBUG lines would carry request details, so never below WARNING.
logging.getLogger("apprise").setLevel(logging.WARNING)


class BadChannel(ValueError):
    """A channel URL that cannot be used; the message is for the person who typed it."""


class Sent(str, enum.Enum):
    """What one message's send came to."""

    SENT = "sent"
    REFUSED = "refused"        # the service said no or could not be reached: nothing arrived
    UNCERTAIN = "uncertain"    # sent, no answer in time: it may have arrived


@dataclass(frozen=True)
class Parsed:
    """A checked URL: the Apprise protocol, what people call the service, and a masked form to show."""

    service: str
    service_name: str
    masked: str


def _plugin(url: str):
    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


def _protocol(plugin) -> str:
    names = plugin.protocol or plugin.secure_protocol  # json, not jsons: the service, not its transport
    names = names if isinstance(names, (list, tuple)) else [names]
    return str(names[0])[:40]


def _mask_part(part: str) -> str:
    return part if len(part) <= 3 else f"{part[0]}…{part[-1]}"


def mask(plugin) -> str:
    """Apprise's privacy URL with every path segment and the query left out or elided (a path can be a secret)."""
    shown = urlsplit(plugin.url(privacy=True))
    path = "/".join(_mask_part(p) for p in shown.path.split("/") if p)
    host = shown.netloc if "host" in plugin.template_tokens else _mask_part(shown.netloc.split("@")[-1])
    return f"{shown.scheme}://{host}/{path}"[:300]


def _network_host(plugin) -> str | None:
    """The host the service is reached at, when the URL names it (Slack's and Teams' hosts are fixed, and what
    stands in the host position of their URLs is a token, never looked up)."""
    return (plugin.host or "").strip("[]") or None if "host" in plugin.template_tokens else None


def private_address(host: str) -> bool:
    """True when ``host`` is, or resolves to, an address that is not on the public internet."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False  # cannot be reached at all, so nothing private can be reached either
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            return True
    return False


def parse(url: str, allow_private: bool) -> Parsed:
    """Check a channel URL as typed; raises BadChannel with a clear message."""
    url = (url or "").strip()
    if not url:
        raise BadChannel("Enter the webhook URL of a Teams or Slack channel, or an Apprise URL.")
    if len(url) > MAX_URL:
        raise BadChannel(f"That URL is longer than {MAX_URL} characters.")
    if any(not c.isprintable() or c.isspace() for c in url):
        raise BadChannel("A URL cannot contain spaces or control characters.")
    plugin = _plugin(url)
    if plugin is None:
        raise BadChannel("That is not a URL Apprise can send to. Paste a Teams or Slack webhook URL "
                         "(https://…), or an Apprise URL such as workflows://… or slack://….")
    service = _protocol(plugin)
    if service in LOCAL_ONLY:
        raise BadChannel(f"{plugin.service_name} notifications would only appear on the server itself.")
    host = _network_host(plugin)
    if host and not allow_private and private_address(host):
        raise BadChannel(f"{host} is on a private or local network, which channels may not reach.")
    name = FRIENDLY.get(service, str(plugin.service_name))[:100]
    return Parsed(service, name, mask(plugin))


def send(url: str, title: str, body: str, *, deadline: float, allow_private: bool) -> tuple[Sent, str]:
    """Send one message to the service at ``url``; (how it went, a reason fit to show and store)."""
    plugin = _plugin(url)
    if plugin is None:
        return Sent.REFUSED, "the stored URL is no longer one Apprise can send to"
    host = _network_host(plugin)
    if host and not allow_private and private_address(host):
        return Sent.REFUSED, f"{host} is on a private or local network"
    plugin.socket_connect_timeout = max(1.0, deadline / 3)
    plugin.socket_read_timeout = deadline * 4  # longer than the deadline: a late answer is a TIMEOUT, not a failure
    sender = apprise.Apprise()
    sender.add(plugin)
    result = sender.notify(body=body, title=title, body_format=NotifyFormat.TEXT, timeout=deadline)
    if result.status is AppriseResultStatus.SUCCESS:
        return Sent.SENT, ""
    said = "; ".join(e.message for e in result.logs() if e.level in ("WARNING", "ERROR"))[:300]
    if result.status is AppriseResultStatus.TIMEOUT:
        return Sent.UNCERTAIN, f"no answer within {deadline:g} s, so it may have arrived; not sent again ({said})"
    return Sent.REFUSED, said or f"{plugin.service_name} did not accept the message"
