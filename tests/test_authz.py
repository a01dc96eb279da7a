"""Authorization: admin-only views and company scoping."""
from __future__ import annotations

import pytest
from flask import jsonify

from panel.auth import admin_required, company_scoped
from panel.extensions import db
from panel.models import User


@pytest.fixture
def routes(app):
    @admin_required
    def admin_only():
        return "admin area"

    from flask_login import login_required

    @login_required
    def colleague(user_id: int):
        person = db.first_or_404(company_scoped(User, id=user_id))
        return jsonify(email=person.email)

    app.add_url_rule("/_test/admin", "t_admin", admin_only)
    app.add_url_rule("/_test/colleague/<int:user_id>", "t_colleague", colleague)
    return app


def ids(app):
    with app.app_context():
        return {u.email: u.id for u in User.query.all()}


def test_admin_required(routes, admin, user):
    assert admin.client.get("/_test/admin").status_code == 200
    assert user.client.get("/_test/admin").status_code == 403


def test_other_company_answers_404(routes, admin, other_admin):
    people = ids(routes)
    assert admin.client.get(f"/_test/colleague/{people['ben@example.com']}").json["email"] == "ben@example.com"
    assert admin.client.get(f"/_test/colleague/{people['oscar@other.example']}").status_code == 404
    assert other_admin.client.get(f"/_test/colleague/{people['ben@example.com']}").status_code == 404
    assert admin.client.get("/_test/colleague/99999").status_code == 404
