"""Notification Recipients and My notifications: count, switches, IDOR, CSRF, search and pagination."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from panel.extensions import db
from panel.models import AuditEvent, Company, User
from panel.reminders import recipients

LIST = "/settings/sage/recipients"


def ids(app) -> dict[str, int]:
    with app.app_context():
        return {u.email: u.id for u in User.query.all()}


def notify(app, email: str) -> bool:
    with app.app_context():
        return User.query.filter_by(email=email).one().notify_sage_token


def audit_details(app, action="recipient_changed") -> list[tuple[str, str]]:
    with app.app_context():
        return [(e.actor_name, e.detail) for e in AuditEvent.query.filter_by(action=action).order_by(AuditEvent.id)]


def update_user(app, email: str, **values) -> None:
    with app.app_context():
        User.query.filter_by(email=email).update(values)
        db.session.commit()


def switch_url(app, email: str) -> str:
    return f"/settings/notifications/{ids(app)[email]}"


@pytest.fixture
def crowd(app):
    """60 more users in Demo Ltd (63 in all): Person 01 .. Person 60, every third one switched on."""
    with app.app_context():
        demo = Company.query.filter_by(name="Demo Ltd").one()
        for n in range(1, 61):
            db.session.add(User(company=demo, email=f"p{n:02d}@bulk.example", name=f"Person {n:02d}",
                                password_hash="x", notify_sage_token=n % 3 == 0))
        db.session.commit()
    return app


def count_line(page: str) -> str:
    return re.search(r'data-testid="recipient-count">([^<]+)<', page).group(1)


def test_count_excludes_inactive_users(app, admin):
    assert count_line(admin.get("/settings/sage").text) == "2 people will be emailed."  # Alice and Chloe
    update_user(app, "chloe@example.com", active=False)  # still switched on, but inactive
    page = admin.get("/settings/sage").text
    assert count_line(page) == "1 person will be emailed."
    assert "Inactive — never emailed" in page
    with app.app_context():
        assert recipients.count(Company.query.filter_by(name="Demo Ltd").one().id) == 1


def test_nobody_switched_on_warns(app, admin):
    update_user(app, "admin@example.com", notify_sage_token=False)
    update_user(app, "chloe@example.com", notify_sage_token=False)
    assert count_line(admin.get("/settings/sage").text).startswith("Nobody will be reminded")
    resp = admin.get(f"{LIST}/count", htmx=True)
    assert "Nobody will be reminded" in resp.text and 'role="alert"' in resp.text


def test_admin_switches_a_colleague_inline(app, admin):
    resp = admin.post(switch_url(app, "ben@example.com"), data={"on": "1", "fragment": "row"})
    assert resp.status_code == 200
    assert resp.text.lstrip().startswith(f'<tr id="recipient-{ids(app)["ben@example.com"]}"')
    assert 'role="switch"' in resp.text and 'aria-checked="true"' in resp.text
    assert "recipients-changed" in resp.headers["HX-Trigger"]
    assert notify(app, "ben@example.com") is True
    assert audit_details(app) == [("Alice Admin", "Ben Hughes: off → on")]
    # Asking for the state it already has changes nothing and audits nothing.
    admin.post(switch_url(app, "ben@example.com"), data={"on": "1", "fragment": "row"})
    assert len(audit_details(app)) == 1
    assert admin.post(switch_url(app, "ben@example.com"), data={"on": "0", "fragment": "row"}).status_code == 200
    assert notify(app, "ben@example.com") is False
    assert audit_details(app)[-1] == ("Alice Admin", "Ben Hughes: on → off")


def test_count_line_follows_the_switches(app, admin):
    admin.post(switch_url(app, "ben@example.com"), data={"on": "1", "fragment": "row"})
    assert count_line(admin.get(f"{LIST}/count", htmx=True).text) == "3 people will be emailed."


def test_user_switches_own_reminders(app, user):
    page = user.get("/settings/notifications").text
    assert 'aria-current="page">My notifications' in page
    assert 'aria-label="Email me Sage token reminders"' in page and 'aria-checked="false"' in page
    resp = user.post(switch_url(app, "ben@example.com"), data={"on": "1", "fragment": "own"})
    assert resp.status_code == 200 and resp.text.lstrip().startswith('<div id="my-switch"')
    assert 'aria-checked="true"' in resp.text
    assert notify(app, "ben@example.com") is True
    assert audit_details(app) == [("Ben Hughes", "Ben Hughes: off → on")]
    # A user asking for the admin's row fragment still gets only their own switch.
    resp = user.post(switch_url(app, "ben@example.com"), data={"on": "0", "fragment": "row"})
    assert 'id="my-switch"' in resp.text and "<tr" not in resp.text


@pytest.mark.parametrize("who,target", [
    ("user", "chloe@example.com"),          # a user, someone else in the same company
    ("user", "admin@example.com"),
    ("user", "oscar@other.example"),
    ("admin", "oscar@other.example"),       # an admin, another company's user
    ("admin", "olga@other.example"),
    ("other_admin", "ben@example.com"),
])
def test_switching_someone_out_of_reach_is_404(app, request, who, target):
    session = request.getfixturevalue(who)
    before = notify(app, target)
    resp = session.post(switch_url(app, target), data={"on": "0" if before else "1", "fragment": "row"})
    assert resp.status_code == 404
    assert notify(app, target) is before and audit_details(app) == []


def test_unknown_id_is_404(app, admin):
    assert admin.post("/settings/notifications/999999", data={"on": "1"}).status_code == 404


@pytest.mark.parametrize("data", [{}, {"on": "yes"}, {"on": "2"}, {"on": ["1", "0"]}])
def test_bad_switch_value_changes_nothing(app, admin, data):
    assert admin.post(switch_url(app, "ben@example.com"), data=data).status_code == 400
    assert notify(app, "ben@example.com") is False and audit_details(app) == []


def test_switch_without_csrf_token_is_refused(app, admin):
    resp = admin.client.post(switch_url(app, "ben@example.com"), data={"on": "1"}, headers={"HX-Request": "true"})
    assert resp.status_code == 400
    assert notify(app, "ben@example.com") is False and audit_details(app) == []


def test_switch_without_javascript_redirects_back(app, admin, user):
    resp = admin.post(switch_url(app, "ben@example.com"), htmx=False, data={"on": "1", "fragment": "row"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/settings/sage#recipients")
    resp = user.post(switch_url(app, "ben@example.com"), htmx=False, data={"on": "0"})
    assert resp.headers["Location"].endswith("/settings/notifications")
    assert notify(app, "ben@example.com") is False


def test_only_admins_see_and_search_the_list(user):
    page = user.get("/settings/sage").text
    assert 'id="recipient-list"' not in page and "My notifications" in page
    assert user.get(LIST, htmx=True).status_code == 403
    assert user.get(f"{LIST}/count", htmx=True).status_code == 403


def rows(page: str) -> list[str]:
    # <wbr> marks where a narrow screen may wrap the address (before "@" and each ".")
    return [cell.replace("<wbr>", "") for cell in re.findall(r'<td class="recipient-email">(.+?)</td>', page)]


def link(page: str, which: str) -> str:
    """The hx-get URL of a pager link (data-page="first|prev|next|last")."""
    return re.search(rf'data-page="{which}"[^>]*hx-get="([^"]+)"', page).group(1).replace("&amp;", "&")


def sql_of(app, fn):
    statements = []
    with app.app_context():
        listen = lambda conn, cursor, sql, params, *a: statements.append((sql, params))  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listen)
    try:
        return fn(), statements
    finally:
        with app.app_context():
            event.remove(db.engine, "before_cursor_execute", listen)


def test_pages_of_25_by_keyset(crowd, admin):
    first = admin.get(LIST, htmx=True)
    assert first.status_code == 200 and "HX-Request" in first.headers["Vary"]
    assert len(rows(first.text)) == 25
    assert "63 people · page 1 of 3" in first.text
    second, sql = sql_of(crowd, lambda: admin.get(link(first.text, "next"), htmx=True).text)
    assert len(rows(second)) == 25 and "page 2 of 3" in second
    # The next page starts after the last person shown (lower(name), id) — no rows skipped by OFFSET.
    assert any("lower(user.name) >" in s.replace('"', "") for s, _ in sql), sql
    last, sql = sql_of(crowd, lambda: admin.get(link(first.text, "last"), htmx=True).text)
    assert len(rows(last)) == 13 and "page 3 of 3" in last
    assert "ORDER BY lower(user.name) DESC" in " ".join(s.replace('"', "") for s, _ in sql)
    assert not set(rows(first.text)) & set(rows(second)) and not set(rows(second)) & set(rows(last))
    assert set(rows(first.text)) | set(rows(second)) | set(rows(last)) == set(rows_of_everyone(crowd))
    back = admin.get(link(last, "prev"), htmx=True).text
    assert rows(back) == rows(second) and "page 2 of 3" in back
    assert rows(admin.get(link(back, "first"), htmx=True).text) == rows(first.text)
    assert 'data-page="next"' not in last and 'data-page="prev"' not in first.text
    assert len(rows(admin.get("/settings/sage").text)) == 25  # the full page never renders the whole company
    assert len(rows(admin.get("/settings/sage?page=2").text)) == 25
    assert rows(admin.get(f"{LIST}?page=3", htmx=True).text) == rows(last)  # a plain page number still works
    assert "page 3 of 3" in admin.get(f"{LIST}?page=999", htmx=True).text  # out of range: the last page
    assert "page 1 of 3" in admin.get(f"{LIST}?page=-4", htmx=True).text
    assert "page 1 of 3" in admin.get(f"{LIST}?after=999999", htmx=True).text  # an unknown boundary: page 1


def rows_of_everyone(app) -> list[str]:
    with app.app_context():
        demo = Company.query.filter_by(name="Demo Ltd").one()
        return [u.email for u in User.query.filter_by(company_id=demo.id)]


def test_search_by_name_or_email(crowd, admin):
    found = rows(admin.get(f"{LIST}?q=person+4", htmx=True).text)
    assert sorted(found) == [f"p{n}@bulk.example" for n in range(40, 50)]
    assert rows(admin.get(f"{LIST}?q=P07@BULK", htmx=True).text) == ["p07@bulk.example"]
    assert rows(admin.get(f"{LIST}?q=ben", htmx=True).text) == ["ben@example.com"]
    assert rows(admin.get(f"{LIST}?q=olga", htmx=True).text) == []  # another company's people never show
    empty = admin.get(f"{LIST}?q=%25", htmx=True).text  # a literal '%', not a wildcard
    assert rows(empty) == [] and "Nobody matches" in empty
    page2 = admin.get(f"{LIST}?q=bulk&page=2", htmx=True).text
    assert len(rows(page2)) == 25 and "60 people matching · page 2 of 3" in page2


def test_plain_get_of_the_list_goes_to_the_page(crowd, admin):
    resp = admin.get(f"{LIST}?q=person&page=2")
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/settings/sage?q=person&page=2#recipients")
    assert "page 2 of 3" in admin.get("/settings/sage?q=person&page=2").text


def same_token(html: str) -> str:
    """The markup with CSRF tokens blanked: each render signs the session's token with the current second."""
    return re.sub(r'name="csrf_token" value="[^"]+"', 'name="csrf_token" value=""', html)


def test_the_page_includes_exactly_the_fragments_htmx_gets(app, admin):
    page = same_token(admin.get("/settings/sage").text)
    for url in (LIST, f"{LIST}/count"):
        fragment = same_token(admin.get(url, htmx=True).text.strip())
        assert fragment in page, url
    row = same_token(admin.post(switch_url(app, "ben@example.com"), data={"on": "1", "fragment": "row"}).text.strip())
    assert row in same_token(admin.get("/settings/sage").text)


@pytest.fixture
def big(app):
    """6,000 more people in Demo Ltd (past the search's budget and exact-count limit): Person 00001 .. 06000."""
    with app.app_context():
        demo = Company.query.filter_by(name="Demo Ltd").one()
        db.session.execute(User.__table__.insert(), [
            {"company_id": demo.id, "email": f"p{n:05d}@big.example", "name": f"Person {n:05d}", "password_hash": "x",
             "role": "user", "active": True, "notify_sage_token": False, "created_at": demo.created_at}
            for n in range(1, 6001)])
        db.session.commit()
    return app


def test_search_in_a_big_company_takes_rare_matches_from_the_trigram_index(big, admin):
    page, sql = sql_of(big, lambda: admin.get(f"{LIST}?q=person+05999", htmx=True).text)
    assert rows(page) == ["p05999@big.example"] and "1 person matching" in page
    trigram = "user_search MATCH" if big.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else "matches"
    assert any(trigram in s for s, _ in sql), sql
    assert "Nobody matches" in admin.get(f"{LIST}?q=nobody-at-all", htmx=True).text
    dense = admin.get(f"{LIST}?q=person", htmx=True).text  # common: found near the start of the name order
    assert rows(dense) == [f"p{n:05d}@big.example" for n in range(1, 26)]
    assert "More than 25 people match" in dense
    after = admin.get(link(dense, "next"), htmx=True).text
    assert rows(after) == [f"p{n:05d}@big.example" for n in range(26, 51)]
    last = admin.get(link(dense, "last"), htmx=True).text
    assert rows(last) == [f"p{n:05d}@big.example" for n in range(5976, 6001)] and 'data-page="next"' not in last
    whole = admin.get(LIST, htmx=True).text
    assert "6,003 people · page 1 of 241" in whole or "6003 people · page 1 of 241" in whole
