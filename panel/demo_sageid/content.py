"""Fixed demo content: the one demo account, what each scope means, and the Sage 200 sites it can see."""
from __future__ import annotations

from datetime import timedelta

DEMO_EMAIL = "sage.demo@example.com"
DEMO_PASSWORD = "demo-sage-200"

# Shown on the consent page, in the order of SCOPES; the API itself always adds "read your sites and companies".
SCOPE_TEXT = {
    "openid": "Confirm that it is you (openid)",
    "profile": "See your name (profile)",
    "email": "See your email address (email)",
    "offline_access": "Stay connected while you are away (offline access)",
}

# Shaped like Sage 200's GET /sites.
DEMO_SITES = [
    {"site_id": "9a1c4d2e-3b7f-4e21-8c55-0d6f2a1b7e01", "site_name": "Demo Trading Ltd",
     "company_id": 1, "company_name": "Demo Trading Ltd"},
    {"site_id": "4f8b2c6a-91d3-4a7e-b2f0-5c3e8d9a6b02", "site_name": "Demo Manufacturing Ltd",
     "company_id": 2, "company_name": "Demo Manufacturing Ltd"},
]


def scope_items(scope: str) -> list[str]:
    """Plain-language lines for the consent page, one per granted scope, reading the data first."""
    return ["Read your sites and companies"] + [SCOPE_TEXT[s] for s in scope.split() if s in SCOPE_TEXT]


def describe_lifetime(lifetime: timedelta) -> str:
    """'90 days', '1 day', '5 minutes': how long a consent lasts, for the consent page."""
    minutes = int(lifetime.total_seconds() // 60)
    if minutes % (24 * 60) == 0:
        count, unit = minutes // (24 * 60), "day"
    else:
        count, unit = minutes, "minute"
    return f"{count} {unit}{'' if count == 1 else 's'}"
