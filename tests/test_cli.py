"""CLI commands: seed-demo, create-company, create-user."""
from __future__ import annotations

from panel.models import Company, User


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
