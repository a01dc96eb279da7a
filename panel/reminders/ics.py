"""The token's expiry as an iCalendar event (RFC 5545), attached to each reminder so it can go in a calendar.

One event per company (the UID names the company), its SEQUENCE the token generation: a renewed token's event
replaces the old one when imported. The event is the expiry instant itself (no DTEND: RFC 5545 §3.6.1), with a
display alarm a day before, the renewal link as URL and in the description, which says what to do by role.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

import icalendar

from .message import header_text

PRODID = "-//CRM//Sage token panel//EN"
FILENAME = "sage-token-expiry.ics"


@lru_cache(maxsize=1024)  # the same event for every recipient of a company's daily batch: built once per role
def expiry_event(*, company_id: int, company_name: str, generation: int, consented_at: datetime,
                 expires_at: datetime, settings_url: str, host: str, for_admin: bool,
                 admins: tuple[tuple[str, str], ...] = ()) -> str:
    """The VCALENDAR text (CRLF, folded at 75 octets) for the company's token expiry."""
    company = header_text(company_name)
    if for_admin:
        todo = f"Renew it before then: open {settings_url}, sign in and click Login Now."
    elif admins:
        asked = "; ".join(f"{header_text(name)} <{email}>" for name, email in admins)
        todo = f"Only a company admin can renew it. Ask: {asked}. Status: {settings_url}"
    else:
        todo = f"Only a company admin can renew it. Status: {settings_url}"
    cal = icalendar.Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    event = icalendar.Event()
    event.add("uid", f"sage-token-expiry-{company_id}@{host}")
    event.add("sequence", generation)
    # Without a METHOD, DTSTAMP is when the information last changed: the consent that set this expiry.
    event.add("dtstamp", consented_at)
    event.add("dtstart", expires_at)
    event.add("summary", f"Sage token for {company} expires")
    event.add("description", f"The Sage ID token for {company} expires now; Sage sync stops until it is "
                             f"renewed.\n{todo}")
    event.add("url", settings_url)
    event.add("transp", "TRANSPARENT")  # a deadline, not a meeting: it does not make anyone busy
    alarm = icalendar.Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("trigger", timedelta(days=-1))
    alarm.add("description", f"The Sage token for {company} expires in a day")
    event.add_component(alarm)
    cal.add_component(event)
    return cal.to_ical().decode("utf-8")
