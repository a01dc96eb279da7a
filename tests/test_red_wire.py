from datetime import datetime, timedelta, timezone
import re
import pytest
from smtp_server import SMTPServer
from support import connect_sage, make_app
from wire import field, provider_addresses, strict, assert_wire_ok
from panel.models import User
from panel.reminders import delivery
from panel.reminders.mail import compose_reminder

NOW = datetime(2027, 3, 20, 9, 30, tzinfo=timezone.utc)

@pytest.fixture
def smtp():
    with SMTPServer() as s:
        yield s

def test_red(tmp_path, template_db, redis_server, smtp):
    app = make_app(tmp_path, template_db, redis_server, PANEL_BASE_URL="https://panel.example", **smtp.config())
    with app.app_context():
        ben = User.query.filter_by(email="ben@example.com").one()
        ben.name = "Padding " + "padding " * 8 + "padding, attacker@evil.test"
        token = connect_sage(expires_at=NOW + timedelta(days=12))
        delivery.send_batch([compose_reminder(ben.company, ben, token, NOW, "https://panel.example")])
    raw = smtp.handler.received[0].raw
    open("/tmp/red/raw.eml","wb").write(raw)
    errors = []
    try: assert [a for _n, a in provider_addresses(raw, "To")] == ["ben@example.com"]
    except AssertionError as e: errors.append(f"To: {e}")
    lu = field(raw, "List-Unsubscribe")
    if not (len(lu) == 1 and re.fullmatch(rb"List-Unsubscribe: <https://[!-~]+>", lu[0])): errors.append(f"List-Unsubscribe: {lu}")
    try: strict(raw)
    except Exception as e: errors.append(f"strict: {e!r}")
    assert not errors, errors
