"""THE SCREEN: Settings › Sage and My notifications — one blueprint; every URL of the screen is listed here.

Each region of templates/settings/ has its view module: pages (the two full pages), widget (the polled token
widget), connection (Login Now, callback, check, disconnect, activity), channels (the connection check switch and
notification channels), reminders (settings, recipients, switches),
notifications (test email), outbox (demo mode). Views parse, call the domain (``panel.sage``, ``panel.reminders``)
and render a partial; nothing imports this package but the app factory.
"""
from __future__ import annotations

from flask import Blueprint, Flask

from ..fastpoll import install as answer_polls_early
from . import channels, connection, notifications, outbox, pages, reminders, widget

bp = Blueprint("settings", __name__)
WIDGET_URL = "/settings/sage/widget"

ROUTES = [
    # rule                                              view                              methods
    ("/",                                               pages.index,                      ["GET"]),
    ("/settings/sage",                                  pages.sage,                       ["GET"]),
    ("/settings/notifications",                         pages.notifications,              ["GET"]),
    (WIDGET_URL,                                        widget.widget,                    ["GET"]),
    ("/settings/sage/audit",                            connection.audit_list,            ["GET"]),
    ("/settings/sage/connect",                          connection.connect,               ["GET"]),
    ("/settings/sage/callback",                         connection.callback,              ["GET"]),
    ("/settings/sage/connection",                       connection.connection_card,       ["GET"]),
    ("/settings/sage/check",                            connection.check,                 ["POST"]),
    ("/settings/sage/disconnect",                       connection.disconnect,            ["POST"]),
    ("/settings/sage/reminders/<field>",                reminders.save_setting,           ["POST"]),
    ("/settings/sage/recipients",                       reminders.recipient_list,         ["GET"]),
    ("/settings/sage/recipients/count",                 reminders.recipient_count,        ["GET"]),
    ("/settings/notifications/<int:user_id>",           reminders.switch,                 ["POST"]),
    ("/settings/notifications/test-email",              notifications.test_email,         ["POST"]),
    ("/settings/notifications/test-email/<job_id>",     notifications.test_email_status,  ["GET"]),
    ("/settings/sage/alerts",                           channels.card,                    ["GET"]),
    ("/settings/sage/alerts/check",                     channels.switch_check,            ["POST"]),
    ("/settings/sage/channels",                         channels.add,                     ["POST"]),
    ("/settings/sage/channels/<int:channel_id>/test",   channels.test,                    ["POST"]),
    ("/settings/sage/channels/<int:channel_id>/remove", channels.remove,                  ["POST"]),
    ("/settings/sage/outbox",                           outbox.outbox_list,               ["GET"]),
    ("/settings/sage/outbox/<name>",                    outbox.outbox_message,            ["GET"]),
    ("/settings/sage/outbox/<name>/html",               outbox.outbox_html,               ["GET"]),
]

ENDPOINTS = {channels.card: "alerts_card", channels.add: "add_channel", channels.test: "test_channel",
             channels.remove: "remove_channel"}  # names that say which card they belong to

for _rule, _view, _methods in ROUTES:
    bp.add_url_rule(_rule, endpoint=ENDPOINTS.get(_view), view_func=_view, methods=_methods)


def init_app(app: Flask) -> None:
    """Register the screen's blueprint; current conditional widget polls are answered in front of Flask."""
    app.register_blueprint(bp)
    answer_polls_early(app, WIDGET_URL)
