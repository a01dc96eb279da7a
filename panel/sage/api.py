"""Every call to the Sage API goes through here, with an access token from ``refresh.access_token`` (single-flight
refresh across processes and hosts: see panel/sage/refresh.py)."""
from __future__ import annotations

from flask import current_app

from .http import HttpFailure, Reply, request
from .refresh import RefreshPending, SageUnavailable, access_token

MAX_API_BYTES = 1024 * 1024    # a Sage API answer we read (GET /sites lists a few sites and companies)

__all__ = ["RefreshPending", "SageUnavailable", "access_token", "get", "sites"]


def get(company_id: int, path: str) -> Reply:
    """GET ``SAGE_API_BASE + path`` with the company's token; raises SageUnavailable when it cannot."""
    cfg = current_app.config
    headers = {"Authorization": f"Bearer {access_token(company_id)}", "Accept": "application/json"}
    try:
        resp = request("GET", cfg["SAGE_API_BASE"] + path, headers=headers, deadline=cfg["SAGE_HTTP_TIMEOUT"],
                       max_bytes=MAX_API_BYTES)
    except HttpFailure as exc:
        if exc.kind == "timeout":
            raise SageUnavailable("The Sage API did not answer in time.") from exc
        if exc.kind == "too_large":
            raise SageUnavailable("The Sage API answered with more data than expected.") from exc
        raise SageUnavailable("The Sage API could not be reached.") from exc
    if resp.status == 401:
        raise SageUnavailable("The Sage API refused the token (401). Try Login Now if this persists.",
                              status=401, detail=error_detail(resp))
    if resp.status >= 400:
        raise SageUnavailable(f"The Sage API answered with an error ({resp.status}).", status=resp.status,
                              detail=error_detail(resp))
    return resp


def error_detail(resp: Reply) -> str:
    """The reason an error answer gives (``error_description``, ``message`` or ``error``), printable, or ""."""
    try:
        data = resp.json()
    except (ValueError, UnicodeDecodeError):
        return ""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # some gateways answer with a list of errors
    if not isinstance(data, dict):
        return ""
    for key in ("error_description", "message", "Message", "error"):
        text = " ".join(str(data.get(key) or "").split())
        if text:
            return "".join(c for c in text if c.isprintable())[:300]
    return ""


def sites(company_id: int) -> list[dict]:
    """The Sage 200 sites and companies the token can reach (GET /sites)."""
    resp = get(company_id, "/sites")
    try:
        data = resp.json()
    except ValueError as exc:
        raise SageUnavailable("The Sage API answered with something that is not JSON.") from exc
    if isinstance(data, dict):  # some gateways wrap lists
        data = data.get("items") or data.get("sites") or []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []
