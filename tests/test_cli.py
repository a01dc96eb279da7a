"""CLI commands: seed-demo, create-company, create-user."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, text
from support import PASSWORD, Session, base_env

from panel.extensions import db
from panel.models import Company, User

ROOT = Path(__file__).resolve().parent.parent
FLASK = [str(Path(sys.executable).parent / "flask"), "--app", "wsgi"]


def test_seed_demo_is_idempotent_and_prints_the_login(app, runner):
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    assert "admin@example.com" in first.output and "correct horse battery" in first.output
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0
    with app.app_context():
        assert Company.query.filter_by(name="Demo Ltd").count() == 1
        demo = Company.query.filter_by(name="Demo Ltd").one()
        assert len(demo.users) == 4
        assert [u.role for u in demo.users].count("admin") == 1


def test_generated_demo_password_is_kept_0600(app, runner):
    import os
    import stat

    app.config["PANEL_DEMO_PASSWORD"] = ""
    out = runner.invoke(args=["seed-demo"]).output
    path = os.path.join(app.instance_path, "demo_password")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert open(path).read().strip() in out


def test_create_company_and_user(app, runner):
    out = runner.invoke(args=["create-company", "Acme Corp", "--timezone", "Australia/Sydney"])
    assert out.exit_code == 0, out.output
    with app.app_context():
        acme = Company.query.filter_by(name="Acme Corp").one()
        cid = acme.id
    res = runner.invoke(args=["create-user", "--company", str(cid), "--email", "Pat@Acme.example", "--name", "Pat",
                              "--role", "admin"], input="longpassword\nlongpassword\n")
    assert res.exit_code == 0, res.output
    with app.app_context():
        pat = User.query.filter_by(email="pat@acme.example").one()
        assert pat.is_admin and pat.company.timezone == "Australia/Sydney" and pat.check_password("longpassword")
        assert pat.password_hash.startswith("scrypt:")  # the product hashes with scrypt (seeded test users do not)


def test_cli_rejects_bad_input_clearly(app, runner):
    bad_tz = runner.invoke(args=["create-company", "X", "--timezone", "Mars/Olympus"])
    assert bad_tz.exit_code != 0 and "Unknown timezone" in bad_tz.output
    dup = runner.invoke(args=["create-user", "--company", "1", "--email", "admin@example.com"],
                        input="longpassword\nlongpassword\n")
    assert dup.exit_code != 0 and "already exists" in dup.output
    nobody = runner.invoke(args=["create-user", "--company", "999", "--email", "a@b.c"], input="longpassword\nlongpassword\n")
    assert nobody.exit_code != 0 and "No company with id 999" in nobody.output


def test_seed_demo_prints_every_sign_in_and_the_company_id(app, runner):
    """Both roles can be tried without reading code: every demo person and the one demo password are printed."""
    out = runner.invoke(args=["seed-demo"])
    assert out.exit_code == 0, out.output
    with app.app_context():
        demo = db.session.execute(select(Company).filter_by(name="Demo Ltd")).scalar_one()
        people = {u.email: u for u in demo.users}
        assert f"company id {demo.id}" in out.output
        for email in ("admin@example.com", "ben@example.com", "chloe@example.com", "dan@example.com"):
            assert email in out.output
            assert people[email].check_password(PASSWORD)  # the printed password signs each of them in
    assert f"demo password: {PASSWORD}" in out.output
    line = next(ln for ln in out.output.splitlines() if "ben@example.com" in ln)
    assert line.split()[0] == "user"
    # and an ordinary user really signs in with it
    Session(app.test_client(), "dan@example.com", PASSWORD)


def test_seed_demo_refuses_production(app, runner):
    app.config["PRODUCTION"] = True
    out = runner.invoke(args=["seed-demo"])
    assert out.exit_code != 0 and "PANEL_ENV=production" in out.output


def test_doctor_on_an_unmigrated_database_says_what_to_run(tmp_path):
    """No traceback: one line naming the command that fixes it, exit status 1."""
    env = dict(os.environ, **base_env(PANEL_INSTANCE_PATH=str(tmp_path / "inst"), REDIS_URL="redis://127.0.0.1:1"))
    env.pop("DATABASE_URL", None)
    done = subprocess.run(FLASK + ["doctor"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "Error: The database has no tables yet: run `flask --app wsgi db upgrade`." in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert len((done.stdout + done.stderr).strip().splitlines()) == 1


def test_doctor_names_a_database_behind_this_release(app, runner):
    with app.app_context():
        db.session.execute(text("UPDATE alembic_version SET version_num = '0004_reminder_ledger'"))
        db.session.commit()
    out = runner.invoke(args=["doctor"])
    assert out.exit_code == 1
    assert "at migration 0004_reminder_ledger" in out.output and "run `flask --app wsgi db upgrade`" in out.output


@pytest.mark.parametrize("args", [["--help"], ["db", "upgrade", "--help"]])
def test_help_creates_no_files(tmp_path, args):
    """Asking for help builds the app to list commands, and writes nothing: no instance folder, no secrets."""
    instance = tmp_path / "inst"
    env = dict(os.environ, PANEL_INSTANCE_PATH=str(instance))
    for name in ("SECRET_KEY", "PANEL_ENCRYPTION_KEYS", "DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    done = subprocess.run(FLASK + args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout
    assert not instance.exists()
    assert list(tmp_path.iterdir()) == []
