"""Token Renewal Reminders settings: validation table, inline saving, audit, CSRF and two admins at once."""
from __future__ import annotations

import html
import threading

import pytest
from support import PASSWORD, Session
from werkzeug.datastructures import MultiDict

from panel.extensions import db
from panel.models import AuditEvent, Company, Role
from panel.reminders import parsing as forms

DAYS = "/settings/sage/reminders/days"
HOUR = "/settings/sage/reminders/hour"
TZ = "/settings/sage/reminders/timezone"

BAD_DAYS = {
    "zero": "0",
    "negative": "-1",
    "negative week": "-7",
    "plus sign": "+7",
    "decimal": "7.0",
    "decimal comma": "7,5",
    "exponent": "1e3",
    "nan": "nan",
    "infinity": "inf",
    "underscore": "1_000",
    "too big": "366",
    "ten to the ninth": "1000000000",
    "more than ten characters": "00000000007",
    "five thousand digits": "9" * 5000,
    "arabic-indic digits": "\u0667",  # ٧
    "fullwidth digits": "\uff11\uff14",  # １４
    "superscript": "\u00b2",
    "empty": "",
    "only spaces": "   ",
    "inner space": "1 4",
    "letters": "abc",
    "hex": "0x1F",
    "no-break space": "14\u00a0",
    "html": "<b>7</b>",
    "crlf": "7\r\n",
}


def company(app, name="Demo Ltd") -> Company:
    with app.app_context():
        c = Company.query.filter_by(name=name).one()
        db.session.expunge(c)
        return c


def events(app, action="setting_changed") -> list[AuditEvent]:
    with app.app_context():
        rows = AuditEvent.query.filter_by(action=action).order_by(AuditEvent.id).all()
        db.session.expunge_all()
        return rows


@pytest.mark.parametrize("text", BAD_DAYS.values(), ids=BAD_DAYS.keys())
def test_parser_rejects(text):
    parsed = forms.reminder_days([text])
    assert parsed.value is None and parsed.error


@pytest.mark.parametrize("text,value", [("1", 1), ("365", 365), (" 14 ", 14), ("\t28\t", 28), ("007", 7)])
def test_parser_accepts(text, value):
    assert forms.reminder_days([text]).value == value


@pytest.mark.parametrize("values", [[], ["7", "8"], ["7", "7"]], ids=["missing", "twice", "twice same"])
def test_parser_wants_exactly_one_value(values):
    assert forms.reminder_days(values).error


@pytest.mark.parametrize("text", BAD_DAYS.values(), ids=BAD_DAYS.keys())
def test_bad_days_show_message_keep_text_and_change_nothing(app, admin, text):
    resp = admin.post(DAYS, data={"reminder_days": text})
    assert resp.status_code == 200
    assert 'aria-invalid="true"' in resp.text
    assert 'aria-describedby="reminder-days-hint reminder-days-error"' in resp.text
    assert 'id="reminder-days-error" class="field-error"' in resp.text
    assert f'value="{html.escape(text[:forms.KEEP])}"' in resp.text  # the person's text stays to be corrected
    assert ">Saved<" not in resp.text
    assert "HX-Trigger" not in resp.headers
    assert company(app).reminder_days == 28
    assert events(app) == []


@pytest.mark.parametrize("data", [[("reminder_days", "7"), ("reminder_days", "9")], [("other", "7")]],
                         ids=["sent twice", "missing"])
def test_days_field_sent_twice_or_missing(app, admin, data):
    resp = admin.post(DAYS, data=MultiDict(data))
    assert resp.status_code == 200 and 'aria-invalid="true"' in resp.text
    assert company(app).reminder_days == 28 and events(app) == []


def test_good_days_save_announce_and_refresh_the_widget(app, admin):
    resp = admin.post(DAYS, data={"reminder_days": " 14 "})
    assert resp.status_code == 200
    assert resp.headers["HX-Trigger"] == "sage-token-changed"
    assert "HX-Request" in resp.headers["Vary"]
    assert 'role="status" aria-live="polite" data-announce>Saved<' in resp.text
    assert 'value="14"' in resp.text and "aria-invalid" not in resp.text
    assert company(app).reminder_days == 14
    [event] = events(app)
    assert (event.detail, event.actor_name) == ("Reminder days: 28 → 14", "Alice Admin")
    # The Sage page now shows the saved value; saving the same value again audits nothing new.
    assert 'value="14"' in admin.get("/settings/sage").text
    assert ">Saved<" in admin.post(DAYS, data={"reminder_days": "14"}).text
    assert len(events(app)) == 1


def test_plain_form_post_without_htmx_redirects(app, admin):
    resp = admin.post(DAYS, htmx=False, data={"reminder_days": "21"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/settings/sage")
    assert company(app).reminder_days == 21


@pytest.mark.parametrize("text", ["24", "-1", "abc", "", "8.0", "\u0668", "1" * 11])
def test_bad_hour(app, admin, text):
    resp = admin.post(HOUR, data={"reminder_hour": text})
    assert resp.status_code == 200 and 'aria-invalid="true"' in resp.text
    assert '<option value="8" selected>' in resp.text  # the stored hour stays selected
    assert company(app).reminder_hour == 8 and events(app) == []


@pytest.mark.parametrize("text,value,detail", [("0", 0, "08:00 → 00:00"), ("23", 23, "08:00 → 23:00")])
def test_good_hour(app, admin, text, value, detail):
    resp = admin.post(HOUR, data={"reminder_hour": text})
    assert ">Saved<" in resp.text and resp.headers["HX-Trigger"] == "sage-token-changed"
    assert f'<option value="{value}" selected>' in resp.text
    assert company(app).reminder_hour == value
    assert events(app)[0].detail == f"Send at hour: {detail}"


@pytest.mark.parametrize("text", ["Mars/Olympus", "europe/london", "localtime", "Factory", "", "Europe/London\r\nX: y",
                                  "../../etc/passwd", "Europe/" + "x" * 80])
def test_bad_timezone(app, admin, text):
    resp = admin.post(TZ, data={"timezone": text})
    assert resp.status_code == 200 and 'aria-invalid="true"' in resp.text
    assert company(app).timezone == "Europe/London" and events(app) == []


def test_timezone_sent_twice(app, admin):
    resp = admin.post(TZ, data=MultiDict([("timezone", "Asia/Tokyo"), ("timezone", "UTC")]))
    assert 'aria-invalid="true"' in resp.text and company(app).timezone == "Europe/London"


def test_good_timezone(app, admin):
    resp = admin.post(TZ, data={"timezone": " Australia/Sydney "})
    assert ">Saved<" in resp.text and 'value="Australia/Sydney"' in resp.text
    assert company(app).timezone == "Australia/Sydney"
    assert events(app)[0].detail == "Timezone: Europe/London → Australia/Sydney"


def test_every_offered_timezone_is_accepted():
    assert "Europe/London" in forms.timezones() and "localtime" not in forms.timezones()
    assert all(forms.timezone([name]).ok for name in forms.timezones())


def test_unknown_setting_is_404(admin):
    assert admin.post("/settings/sage/reminders/name", data={"name": "x"}).status_code == 404


def test_ordinary_user_sees_values_read_only_and_cannot_save(app, user):
    page = user.get("/settings/sage").text
    assert "Token Renewal Reminders" in page and 'data-testid="reminder-values"' in page
    assert 'id="reminder-days"' not in page
    for url, data in [(DAYS, {"reminder_days": "7"}), (HOUR, {"reminder_hour": "9"}), (TZ, {"timezone": "UTC"})]:
        assert user.post(url, data=data).status_code == 403
    c = company(app)
    assert (c.reminder_days, c.reminder_hour, c.timezone) == (28, 8, "Europe/London")


def test_post_without_csrf_token_is_refused(app, admin):
    resp = admin.client.post(DAYS, data={"reminder_days": "7"}, headers={"HX-Request": "true"})
    assert resp.status_code == 400 and resp.headers.get("HX-Refresh") == "true"
    assert company(app).reminder_days == 28 and events(app) == []


def test_signed_out_htmx_request_is_sent_to_login(client):
    resp = client.post(DAYS, data={"reminder_days": "7"}, headers={"HX-Request": "true"})
    assert resp.status_code in (400, 401)  # CSRF (no session) or login: never a save


def test_two_admins_saving_at_once(app):
    from panel.accounts import create_user

    with app.app_context():
        create_user(Company.query.filter_by(name="Demo Ltd").one(), "second@example.com", "Sam Second", PASSWORD,
                    Role.ADMIN)
    first = Session(app.test_client(), "admin@example.com")
    second = Session(app.test_client(), "second@example.com")
    values = {id(first): [str(v) for v in range(10, 30, 2)], id(second): [str(v) for v in range(31, 51, 2)]}
    start, failures = threading.Barrier(2), []

    def save(session):
        start.wait()
        for value in values[id(session)]:
            resp = session.post(DAYS, data={"reminder_days": value})
            if resp.status_code != 200 or ">Saved<" not in resp.text:
                failures.append(resp.text)

    threads = [threading.Thread(target=save, args=(s,)) for s in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures
    final = company(app).reminder_days
    chain = [e.detail.removeprefix("Reminder days: ").split(" → ") for e in events(app)]
    assert len(chain) == 20  # every save changed the value (the two sets never overlap) and each was audited
    assert chain[0][0] == "28" and chain[-1][1] == str(final)
    assert all(prev[1] == nxt[0] for prev, nxt in zip(chain, chain[1:])), chain  # no lost or torn update
    assert {e.actor_name for e in events(app)} == {"Alice Admin", "Sam Second"}
