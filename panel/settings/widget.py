"""The token widget's full render, with its ETag. A poll whose If-None-Match is still current never gets here:
``panel.fastpoll`` answers it 304 in front of Flask (see there for what the ETag covers). static/sage.js keeps the
ETag of the widget it shows and sends it as If-None-Match on timed polls and when the tab becomes visible again; a
change event (sage-token-changed) always comes here. The body is the same for everyone of a company and role:
nothing personal, no CSRF token.
"""
from __future__ import annotations

from flask import current_app, session
from flask_login import current_user

from ..derived import COMPANY, USER
from ..fastpoll import etag, user_id
from ..render import fragment
from ..sessions import poll_endpoint
from ..versions import current
from .presenter import widget_context


@poll_endpoint
def widget():
    """The token widget partial, rendered in full with the ETag its next polls send."""
    app = current_app._get_current_object()
    # The user's version is read BEFORE the session is checked against the database: a session that ends after
    # that check raises the version after this read, so the ETag given here can never match again.
    uid = user_id(session)
    mine = current(app, [(USER, uid)]) if uid is not None else None
    if not current_user.is_authenticated:
        return app.login_manager.unauthorized()
    company_id = current_user.company_id
    theirs = current(app, [(COMPANY, company_id)])
    ctx = widget_context(current_user.company, current_user.is_admin)
    resp = fragment("settings/_token_widget.html", **ctx)
    if mine is not None and theirs is not None and uid == current_user.id:
        resp.headers["ETag"] = etag(app, uid, company_id, {**mine, **theirs}, int(ctx["valid_until"].timestamp()))
    return resp
