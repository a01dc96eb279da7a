"""The tables the database keeps by triggers (panel.derived): poll versions rise with every change the widget shows
and every session that ends, and only then; tallies and ledger days always equal what counting the rows gives."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, select, text, update
from support import connect_sage

from panel import accounts, clock, triggers
from panel.derived import CompanyTally, LedgerDay, PollState
from panel.extensions import db
from panel.models import Company, DeliveryStatus, ReminderDelivery, Role, SageToken, User, UserSession
from panel.reminders import ledger, recipients, settings
from panel.reminders.plan import Due
from panel.sessions import end_all


def versions() -> dict:
    return {(r.kind, r.ref_id): r.version for r in db.session.execute(select(PollState)).scalars()}


def demo() -> Company:
    return db.session.execute(select(Company).filter_by(name="Demo Ltd")).scalar_one()


def person(email: str) -> User:
    return db.session.execute(select(User).filter_by(email=email)).scalar_one()


def test_every_trigger_is_installed(app):
    with app.app_context():
        dialect = db.engine.dialect.name
        if dialect == "sqlite":
            found = set(db.session.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())
        else:
            found = set(db.session.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars())
        # A later migration that rebuilds a watched table (SQLite batch mode) must call triggers.install() again.
        assert triggers.expected(dialect) <= found


def raised(app, change) -> set:
    """The poll-version keys ``change`` raised."""
    with app.app_context():
        before = versions()
        change()
        db.session.remove()
        after = versions()
    return {k for k, v in after.items() if v != before.get(k, 0)}


def test_what_raises_a_company_version_and_what_does_not(app):
    with app.app_context():
        cid, ben_id = demo().id, person("ben@example.com").id
        connect_sage()
    c = ("c", cid)
    with app.app_context():
        token = db.session.execute(select(SageToken)).scalar_one()
        token_id = token.id

    def save_days():
        settings.save(cid, settings.SETTINGS["days"], 9, None)

    def refresh():  # a refreshed access token changes nothing the widget shows
        db.session.execute(update(SageToken).where(SageToken.id == token_id)
                           .values(access_token_enc="x", last_refreshed_at=clock.now()))
        db.session.commit()

    def needs_login():
        db.session.execute(update(SageToken).where(SageToken.id == token_id).values(state="needs_login"))
        db.session.commit()

    def switch():
        recipients.switch(db.session.get(User, ben_id), True, None)

    def password():
        accounts.set_password(db.session.get(User, ben_id), "another good passphrase")

    assert c in raised(app, save_days)
    assert raised(app, refresh) == set()
    assert raised(app, needs_login) == {c}
    assert c in raised(app, switch)
    assert raised(app, password) == {("u", ben_id)}  # and its sessions end: the user's version, not the company's


def test_ledger_moves_that_change_nothing_shown_raise_nothing(app):
    with app.app_context():
        company = demo()
        token = connect_sage()
        chloe = person("chloe@example.com")
        cid, uid, gen = company.id, chloe.id, token.generation
    c = ("c", cid)
    ids: list[int] = []

    def claim():
        now = clock.now()
        ids.extend(ledger.claim([Due(cid, uid, gen, now.date(), now - timedelta(hours=9), False, 5)], now))

    assert raised(app, claim) == {c}  # "Next reminder" moves to tomorrow
    # claimed → sending (the mark before DATA): nothing shown changes
    assert raised(app, lambda: ledger.mark_data(ids[0], cid, uid, clock.now(), "c@x")) == set()
    assert raised(app, lambda: ledger.finish(ids[0], DeliveryStatus.SENT, clock.now(), "c@x")) == {c}


def test_ending_sessions_raises_the_users_version(app, admin):
    with app.app_context():
        uid = person("admin@example.com").id
    assert raised(app, lambda: end_all(uid)) == {("u", uid)}


def live_counts(cid: int) -> tuple[int, int]:
    people = db.session.execute(select(func.count(User.id)).where(User.company_id == cid)).scalar_one()
    wanted = db.session.execute(select(func.count(User.id)).where(
        User.company_id == cid, User.active.is_(True), User.notify_sage_token.is_(True))).scalar_one()
    return people, wanted


def test_tallies_follow_every_kind_of_change(app):
    with app.app_context():
        company = demo()
        other = db.session.execute(select(Company).filter_by(name="Other Co")).scalar_one()
        cid, oid = company.id, other.id
        accounts.create_user(company, "new@example.com", "New Person", "a good passphrase!", Role.USER, notify=True)
        db.session.execute(User.__table__.insert(), [
            {"company_id": cid, "email": f"bulk{n}@example.com", "name": f"Bulk {n}", "password_hash": "x",
             "role": "user", "active": True, "notify_sage_token": n % 2 == 0, "created_at": clock.now()}
            for n in range(40)])
        db.session.commit()
        db.session.execute(update(User).where(User.email.like("bulk1%")).values(notify_sage_token=True))
        db.session.execute(update(User).where(User.email == "bulk3@example.com").values(company_id=oid))
        accounts.deactivate(person("bulk4@example.com"))
        db.session.execute(db.delete(UserSession))
        db.session.execute(db.delete(User).where(User.email == "bulk6@example.com"))
        db.session.commit()
        for company_id in (cid, oid):
            tally = db.session.get(CompanyTally, company_id)
            assert (tally.people, tally.recipients) == live_counts(company_id)
            assert recipients.count(company_id) == live_counts(company_id)[1]


def test_ledger_days_equal_counting_the_rows(app):
    with app.app_context():
        company, chloe, alice = demo(), person("chloe@example.com"), person("admin@example.com")
        now = clock.now()
        day = date(2026, 11, 20)
        rows = []
        start = datetime(2026, 11, 20, tzinfo=timezone.utc)
        ben = person("ben@example.com")
        for user in (chloe, alice, ben):
            rows.append(ReminderDelivery(company_id=company.id, user_id=user.id, generation=1, local_date=day,
                                         day_start=start, status="claimed", attempts=0, claimed_at=now))
        db.session.add_all(rows)
        db.session.commit()
        assert ledger.last_reminder(company.id) is None  # claimed rows are not reminders sent
        for row, status, reason, at in ((rows[0], "sent", None, now), (rows[1], "failed", "550 no such user",
                                                                        now + timedelta(seconds=3))):
            db.session.execute(update(ReminderDelivery).where(ReminderDelivery.id == row.id)
                               .values(status=status, reason=reason, finished_at=at))
        db.session.commit()
        last = ledger.last_reminder(company.id)
        assert (last.sent, last.failed, last.why, last.at) == (1, 1, "550 no such user", now + timedelta(seconds=3))
        # An uncertain row (the server may have it) counts as sent and is named apart.
        db.session.execute(update(ReminderDelivery).where(ReminderDelivery.id == rows[2].id)
                           .values(status="uncertain", finished_at=now + timedelta(seconds=1)))
        db.session.commit()
        last = ledger.last_reminder(company.id)
        assert (last.sent, last.uncertain, last.failed) == (2, 1, 1)
        db.session.execute(update(ReminderDelivery).where(ReminderDelivery.id == rows[1].id).values(status="sent"))
        db.session.execute(update(ReminderDelivery).where(ReminderDelivery.id == rows[2].id).values(status="sent"))
        db.session.execute(db.delete(ReminderDelivery).where(ReminderDelivery.id == rows[0].id))
        db.session.commit()
        found = db.session.get(LedgerDay, (company.id, day))
        assert (found.sent, found.failed, found.uncertain) == (2, 0, 0)
        assert ledger.last_reminder(company.id).why is None
        assert (found.sent, found.failed, found.uncertain) == tuple(db.session.execute(select(
            *(func.count().filter(ReminderDelivery.status == st) for st in ("sent", "failed", "uncertain")))
            .where(ReminderDelivery.local_date == day)).one())


def test_company_history_reads_one_index_entry_and_agrees_with_the_rows(app):
    """The widget's "Next reminder" needs the company's newest claim and newest hand-over: read from an index, so a
    day of 50,000 ledger rows costs what a day of two does (bench/company_size.py)."""
    with app.app_context():
        company, now = demo(), clock.now()
        people = [person(e) for e in ("admin@example.com", "ben@example.com", "chloe@example.com")]
        rows = []
        for n, (status, hours_ago, handed) in enumerate([("sent", 30, True), ("uncertain", 50, True),
                                                         ("failed", 2, True), ("claimed", 1, False),
                                                         ("sent", 100, True)]):
            at = now - timedelta(hours=hours_ago)
            rows.append(ReminderDelivery(company_id=company.id, user_id=people[n % 3].id, generation=1,
                                         local_date=at.date(), day_start=at - timedelta(minutes=n), status=status,
                                         attempts=1, claimed_at=at, data_at=at if handed else None))
        db.session.add_all(rows)
        db.session.commit()
        found = ledger.company_history(company.id, now)
        recent = [r for r in rows if r.claimed_at >= now - timedelta(days=3)]
        assert found.claimed_at == max(r.claimed_at for r in recent) == now - timedelta(hours=1)
        assert found.sent_at == max(r.data_at for r in recent if r.status in ledger.HANDED_OVER) \
            == now - timedelta(hours=30)  # the failed row's DATA does not count; the 100-hour-old one is too old
        if db.engine.dialect.name == "sqlite":
            for column in ("claimed", "data"):
                plan = db.session.execute(text(
                    f"EXPLAIN QUERY PLAN SELECT {column}_at FROM reminder_delivery WHERE company_id = 1 AND "
                    f"{column}_at >= '2000-01-01' ORDER BY {column}_at DESC LIMIT 1")).all()
                assert f"ix_reminder_delivery_company_{column}" in " ".join(str(r) for r in plan)
