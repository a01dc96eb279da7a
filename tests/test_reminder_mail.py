"""The reminder email as it travels: composed, sent through aiosmtpd, and read byte for byte and parsed
(``policy.strict``) as a mailbox provider would. Headers, both parts, both roles' wording, the .ics attachment."""
from __future__ import annotations

import re
from datetime import timedelta

import icalendar
import pytest
from mail_fixtures import BASE, NOW, people, send_and_receive
from mail_fixtures import mail_app, smtp  # noqa: F401  (fixtures)
from support import connect_sage
from wire import (assert_folded_within_78, assert_wire_ok, field, head_and_body, provider_addresses, strict,
                  unfolded)

from panel.extensions import db
from panel.models import Company, User
from panel.reminders.ics import expiry_event
from panel.reminders.mail import UnsafeHeader, compose_reminder
from panel.reminders.message import POLICY
from panel.reminders.unsubscribe import person_for

URL_LINE = re.compile(rb"List-Unsubscribe: <https://panel\.example/unsubscribe/([A-Za-z0-9_.-]+)>")


def reminder_for(email: str, *, token=None, now=NOW, test=False):
    """``email``'s reminder (inside an app context)."""
    person, = people(email)
    return compose_reminder(person.company, person, token, now, BASE, test=test)


def add_user(name: str, email: str, role: str = "user", active: bool = True, company: str = "Demo Ltd") -> User:
    firm = Company.query.filter_by(name=company).one()
    person = User(company=firm, name=name, email=email, role=role, active=active, password_hash="x")
    db.session.add(person)
    db.session.commit()
    return person


# ---- what travels: the header lines ------------------------------------------------------------------------------

def test_every_header_a_provider_reads_is_right_on_the_wire(mail_app, smtp):
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW + timedelta(days=12, hours=2))
        alice, = people("admin@example.com")
        got = send_and_receive(smtp, reminder_for("admin@example.com", token=token))
        ids = (alice.company_id, alice.id, token.generation)
    raw = got.raw
    assert_wire_ok(raw)
    # RFC 2369/8058: a literal <https://…> on one line — no RFC 2047 encoded-word, no folding inside it.
    [line] = field(raw, "List-Unsubscribe")
    assert URL_LINE.fullmatch(line) and b"=?" not in line, line
    with mail_app.app_context():
        assert person_for(URL_LINE.fullmatch(line).group(1).decode()).email == "admin@example.com"
    assert field(raw, "List-Unsubscribe-Post") == [b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
    assert field(raw, "Message-ID") == [b"Message-ID: <sage-reminder.%d.%d.%d.2027-03-20@panel.example>" % ids]
    assert field(raw, "Date") == [b"Date: Sat, 20 Mar 2027 09:30:00 +0000"]
    assert field(raw, "From") == [b"From: Sage panel <no-reply@example.com>"]
    assert field(raw, "To") == [b"To: Alice Admin <admin@example.com>"]
    assert field(raw, "Auto-Submitted") == [b"Auto-Submitted: auto-generated"]
    assert field(raw, "MIME-Version") == [b"MIME-Version: 1.0"]
    assert (got.mail_from, got.rcpt_tos) == ("no-reply@example.com", ["admin@example.com"])
    # Subject: RFC 2047 only for the dash, folded within 78 characters, and decodes to exactly the subject.
    assert_folded_within_78(raw, "Subject")
    msg = strict(raw)
    assert msg["Subject"] == "Sage token expires in 12 days — renew now"


def test_the_bytes_sent_are_what_the_standard_library_makes_of_the_message(mail_app, smtp):
    """``Outgoing.raw`` writes each text part in one piece and folds a shared subject once (issue 13): byte for byte
    what ``as_bytes()`` gives — ASCII and non-ASCII names, a name with a line break in the body, one subject object
    in two messages."""
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW + timedelta(days=12, hours=2))
        add_user("Zoë Ünicode-Ñame", "zoe@example.com")
        ben, = people("ben@example.com")
        ben.name = "Ben\r\nBcc: x@evil.example"
        sent = [reminder_for(e, token=token) for e in ("admin@example.com", "zoe@example.com", "ben@example.com",
                                                       "chloe@example.com")]
    assert sent[0].message["Subject"] is sent[1].message["Subject"]  # parsed once, folded once
    for message in sent:
        assert message.raw == message.message.as_bytes(policy=POLICY)
    assert "\r" in sent[2].message.get_body(("plain",)).get_payload()  # a part with CR in it: the other path


@pytest.mark.parametrize("left,test", [
    (timedelta(days=12, hours=2), False), (timedelta(hours=5, minutes=3), True), (timedelta(seconds=20), True),
    (-timedelta(days=3, hours=1), True), (-timedelta(minutes=1), False)])
def test_every_subject_is_folded_and_decodes_exactly(mail_app, smtp, left, test):
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW + left)
        message = reminder_for("admin@example.com", token=token, test=test)
        raw = send_and_receive(smtp, message).raw
    assert_wire_ok(raw)
    assert_folded_within_78(raw, "Subject")
    assert strict(raw)["Subject"] == message.message["Subject"]
    assert unfolded(raw, "Subject").isascii()


def test_the_message_parses_strictly_with_both_parts_and_the_calendar(mail_app, smtp):
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW + timedelta(days=12, hours=2))
        raw = send_and_receive(smtp, reminder_for("admin@example.com", token=token)).raw
    msg = strict(raw)
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", "text/calendar"]
    assert [p.get_filename() for p in msg.iter_attachments()] == ["sage-token-expiry.ics"]
    # MIME-Version once, at the top (the library repeats it on the parts it makes; it is removed there).
    assert raw.count(b"\r\nMIME-Version:") + raw.startswith(b"MIME-Version:") == 1
    text = msg.get_body(("plain",)).get_content()
    page = msg.get_body(("html",)).get_content()
    link = unfolded(raw, "List-Unsubscribe")[1:-1]
    for part in (text, page):
        assert "Demo Ltd" in part
        assert "Thu 1 Apr 2027, 12:30 BST" in part  # expiry in the company's timezone
        assert "12 days, 2 hours" in part  # time left, as the widget says it
        assert "Alice Admin, Fri 1 Jan 2027" in part  # who last connected, and when
        assert f"{BASE}/settings/sage" in part
        assert "Why you are receiving this" in part and "How to stop" in part
        assert f"{BASE}/settings/notifications" in part and link in part
        assert "sage-token-expiry.ics" in part
    assert 'href="https://panel.example/settings/sage"' in page


def test_the_html_part_escapes_names_and_no_header_can_be_injected(mail_app, smtp):
    with mail_app.app_context():
        ben, = people("ben@example.com")
        ben.name = "Ben\r\nBcc: x@evil.example"
        ben.company.name = "Evil Ltd\r\nBcc: y@evil.example\r\n\r\n<script>alert(1)</script>"
        got = send_and_receive(smtp, compose_reminder(ben.company, ben, None, NOW, BASE))
        db.session.rollback()
    head, _ = head_and_body(got.raw)
    assert not [line for line in head.split(b"\r\n") if line.lower().startswith(b"bcc")], head
    msg = strict(got.raw)
    assert msg["Bcc"] is None and provider_addresses(got.raw, "To") == [("Ben Bcc: x@evil.example", "ben@example.com")]
    assert "&lt;script&gt;" in msg.get_body(("html",)).get_content()
    assert got.rcpt_tos == ["ben@example.com"]  # the server was asked to deliver to Ben only


# ---- the To header: any name stays one mailbox (issue 11) ------------------------------------------------------

NAMES = {
    "long ASCII name with a comma": "Padding " + "padding " * 8 + "padding, attacker@evil.test",
    "long non-ASCII name with a comma": "Padding … " + "padding " * 8 + "padding, attacker@evil.test",
    "quotes and a comma": 'Ben "the boss", Hughes',
    "angle brackets": "Zoë, Ämter <x@evil.test>",
    "a list in a long name": "Zoë " + "padding " * 12 + '"quoted, part" and <x@evil.test>; y@evil.test',
    "an encoded-word look-alike": "=?utf-8?q?attacker=40evil.test?=, x",
    "200 characters": "a" * 199 + ",",
    "a comment": "Ben (x@evil.test) Hughes",
}


@pytest.mark.parametrize("case", list(NAMES))
def test_a_display_name_never_becomes_another_address(mail_app, smtp, case):
    with mail_app.app_context():
        ben, = people("ben@example.com")
        ben.name = NAMES[case]
        got = send_and_receive(smtp, compose_reminder(ben.company, ben, None, NOW, BASE))
        db.session.rollback()
    strict(got.raw)  # no defect in the To header (or anywhere)
    [(name, address)] = provider_addresses(got.raw, "To")  # one mailbox for the modern and the classic parser
    assert address == "ben@example.com" and got.rcpt_tos == ["ben@example.com"]
    assert_wire_ok(got.raw)
    if case in ("long ASCII name with a comma", "quotes and a comma", "200 characters", "a comment"):
        assert name == NAMES[case]  # kept exactly, quoted on one line
    if case == "an encoded-word look-alike":
        assert name == "= ?utf-8?q?attacker=40evil.test?=, x"  # shown literally, not decoded into other text


@pytest.mark.parametrize("address", ["ben@example.com\r\nBcc: x@evil.example", "ben@example.com, x@evil.example",
                                     "Ben <ben@example.com>", "", "x" * 250 + "@example.com"])
def test_unsafe_addresses_are_refused(mail_app, address):
    with mail_app.app_context():
        ben, = people("ben@example.com")
        ben.email = address
        with pytest.raises(UnsafeHeader):
            compose_reminder(ben.company, ben, None, NOW, BASE)
        db.session.rollback()


@pytest.mark.parametrize("base", ["https://panel.example\r\nBcc: x@evil.example", 'https://panel.example/"x',
                                  "https://panel.example/ x", "javascript:alert(1)"])
def test_unsafe_base_url_is_refused(mail_app, base):
    with mail_app.app_context():
        ben, = people("ben@example.com")
        with pytest.raises(UnsafeHeader):
            compose_reminder(ben.company, ben, None, NOW, base)


# ---- both roles' wording ---------------------------------------------------------------------------------------

def parts(raw: bytes) -> tuple[str, str]:
    """The text and HTML parts, decoded, with line ends as "\n"."""
    msg = strict(raw)
    return tuple(msg.get_body((kind,)).get_content().replace("\r\n", "\n") for kind in ("plain", "html"))


def test_an_admin_is_told_how_to_renew(mail_app, smtp):
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW + timedelta(days=5))
        text, page = parts(send_and_receive(smtp, reminder_for("admin@example.com", token=token)).raw)
    assert "Renew it now: sign in, open Settings > Sage and click Login Now:" in text
    assert ">Renew the Sage token</a>" in page and "sign in and click Login Now" in page
    assert "Only a company admin" not in text + page


def test_a_user_is_told_which_admins_to_ask(mail_app, smtp):
    with mail_app.app_context():
        add_user("Zed Admin", "zed@example.com", role="admin")
        add_user("Gone Admin", "gone@example.com", role="admin", active=False)  # not named: inactive
        token = connect_sage(expires_at=NOW + timedelta(days=5))
        text, page = parts(send_and_receive(smtp, reminder_for("ben@example.com", token=token)).raw)
    assert "Only a company admin can renew the token. Please ask one of them:" in text
    assert "  Alice Admin <admin@example.com>\n  Zed Admin <zed@example.com>\n" in text
    assert f"The token's status, on the panel:\n{BASE}/settings/sage" in text
    assert 'Alice Admin &lt;<a href="mailto:admin@example.com"' in page
    assert 'Zed Admin &lt;<a href="mailto:zed@example.com"' in page
    assert f'href="{BASE}/settings/sage"' in page
    for part in (text, page):
        assert "Login Now:" not in part and "Renew the Sage token" not in part  # nothing she cannot do
        assert "Gone Admin" not in part and "olga@other.example" not in part  # inactive, another company


def test_many_admins_are_named_up_to_five_then_counted(mail_app, smtp):
    with mail_app.app_context():
        for i in range(6):
            add_user(f"Extra Admin {i}", f"extra{i}@example.com", role="admin")
        text, page = parts(send_and_receive(smtp, reminder_for("ben@example.com")).raw)
    assert text.count("@example.com>\n") == 5 and "(and 2 more admins)" in text
    assert "and 2 more admins" in page


def test_a_company_without_an_active_admin_says_so(mail_app, smtp):
    with mail_app.app_context():
        alice, = people("admin@example.com")
        alice.active = False
        db.session.commit()
        text, page = parts(send_and_receive(smtp, reminder_for("ben@example.com")).raw)
    assert "Your company has no active admin in the panel: ask whoever manages your CRM accounts." in text
    assert "Alice Admin" not in text and "Your company has no active admin" in page


def test_the_read_only_widget_names_the_admins(app, user, admin):
    with app.app_context():
        add_user("Zed Admin", "zed@example.com", role="admin")
    page = user.get("/settings/sage/widget", htmx=True).text
    assert "Only an admin can connect Sage; ask Alice Admin (" in page
    assert '<a href="mailto:admin@example.com">admin@example.com</a>' in page
    assert '<a href="mailto:zed@example.com">zed@example.com</a>' in page
    with app.app_context():
        connect_sage(expires_at=NOW + timedelta(days=5))
    assert "Only an admin can renew the token; ask Alice Admin" in user.get("/settings/sage/widget", htmx=True).text
    assert "admin-contacts" not in admin.get("/settings/sage/widget", htmx=True).text  # admins have Login Now


# ---- the calendar attachment -----------------------------------------------------------------------------------

def calendar_of(raw: bytes):
    msg = strict(raw)
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_content_type() == "text/calendar"
    data = attachment.get_payload(decode=True)
    assert all(len(line) <= 75 for line in data.split(b"\r\n")), "an iCalendar line over 75 octets"
    assert data.endswith(b"END:VCALENDAR\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    return icalendar.Calendar.from_ical(data)


def test_the_ics_holds_the_expiry_and_the_renewal_link(mail_app, smtp):
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW + timedelta(days=12, hours=2))
        expires, generation, company_id = token.expires_at, token.generation, token.company_id
        for_admin = calendar_of(send_and_receive(smtp, reminder_for("admin@example.com", token=token)).raw)
        for_ben = calendar_of(send_and_receive(smtp, reminder_for("ben@example.com", token=token)).raw)
    [event] = for_admin.walk("VEVENT")
    assert for_admin["VERSION"] == "2.0" and for_admin["PRODID"]
    assert event.decoded("DTSTART") == expires and "DTEND" not in event  # the expiry instant itself
    assert str(event["UID"]) == f"sage-token-expiry-{company_id}@panel.example"
    assert int(event["SEQUENCE"]) == generation  # a renewal's event replaces this one
    assert str(event["URL"]) == f"{BASE}/settings/sage"
    assert str(event["SUMMARY"]) == "Sage token for Demo Ltd expires"
    assert "click Login Now" in str(event["DESCRIPTION"]) and f"{BASE}/settings/sage" in str(event["DESCRIPTION"])
    [alarm] = event.walk("VALARM")
    assert alarm.decoded("TRIGGER") == timedelta(days=-1)
    [ben_event] = for_ben.walk("VEVENT")
    assert "Ask: Alice Admin <admin@example.com>" in str(ben_event["DESCRIPTION"])
    assert "Login Now" not in str(ben_event["DESCRIPTION"])


def test_the_event_is_built_once_per_company_token_and_role(mail_app):
    expiry_event.cache_clear()
    with mail_app.app_context():
        token = connect_sage(expires_at=NOW + timedelta(days=5))
        for email in ("admin@example.com", "ben@example.com", "chloe@example.com") * 3:
            reminder_for(email, token=token)
    assert expiry_event.cache_info().misses == 2  # the admin's, and the one every user gets


def test_a_renewal_gives_the_same_event_a_higher_sequence(mail_app, smtp):
    with mail_app.app_context():
        first = connect_sage(expires_at=NOW + timedelta(days=3))
        one = calendar_of(send_and_receive(smtp, reminder_for("admin@example.com", token=first)).raw)
        second = connect_sage(expires_at=NOW + timedelta(days=90))
        two = calendar_of(send_and_receive(smtp, reminder_for("admin@example.com", token=second)).raw)
    [a], [b] = one.walk("VEVENT"), two.walk("VEVENT")
    assert a["UID"] == b["UID"] and int(b["SEQUENCE"]) > int(a["SEQUENCE"])
    assert b.decoded("DTSTART") - a.decoded("DTSTART") == timedelta(days=87)


def test_a_preview_has_no_calendar_and_no_made_up_connection(mail_app, smtp):
    with mail_app.app_context():
        raw = send_and_receive(smtp, reminder_for("ben@example.com", test=True)).raw
    msg = strict(raw)
    assert list(msg.iter_attachments()) == []
    assert msg["Subject"] == "[Preview] Sage token expires in 28 days — renew now"
    text, page = parts(raw)
    assert "Sage is not connected yet for Demo Ltd" in text
    assert "Last connected: not yet (Sage is not connected)" in text and "nobody yet" not in text + page
    assert "sage-token-expiry.ics" not in text + page
