"""Views of the Sage settings screen."""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user, login_required

bp = Blueprint("sage", __name__)


@bp.route("/")
def index():
    """The panel's home is the Sage settings screen."""
    return redirect(url_for("sage.settings"))


@bp.route("/settings/sage")
@login_required
def settings():
    """Settings › Sage."""
    return render_template("settings/sage.html", company=current_user.company)
