"""Issue 15 at scale (SQLite): what the channel part adds to a sweep, what a /metrics scrape costs, and the
connection checks' tick — each against the email sweep measured in the same run (bench/sweep_scaling.py's data).

N companies x 10 users with a token each, 5 % due; 1 % of the companies have a notification channel. Timed at the
same frozen instant: the email sweep's claim (``sweep.find_and_claim``), the channel claim (``channel_send.batches``),
a /metrics scrape (test client; every company's seconds left), the check tick's bookkeeping
(``check_state.add_missing`` for every company, then ``claim_due`` of one tick's 15-minute slice). Nothing is sent.

    .venv/bin/python bench/alerts_scaling.py --scales 10000,100000
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import timedelta

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from sweep_scaling import ENV, NOW, USERS_PER_COMPANY, company_rows, seed  # noqa: E402

TOKEN = "bench-metrics-token-0123456789abcdefghij"


def best(fn, repeat: int = 3) -> tuple[float, object]:
    """The best wall time of ``repeat`` calls and the last result."""
    times, result = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return min(times), result


def run(total: int, workdir: str) -> dict:
    from flask_migrate import upgrade
    from sqlalchemy import delete

    from panel import clock, create_app
    from panel.crypto import encrypt
    from panel.extensions import db
    from panel.models import ReminderDelivery
    from panel.models_alerts import NoticeDelivery, NotifyChannel
    from panel.reminders import channel_send, sweep
    from panel.sage import check_state

    inst = tempfile.mkdtemp(prefix="inst-", dir=workdir)
    app = create_app({"INSTANCE_PATH": inst, "ENV_VARS": ENV, "REDIS_URL": "",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{inst}/bench.sqlite3", "PANEL_METRICS_TOKEN": TOKEN})
    out = {"companies": total}
    with app.app_context():
        clock.freeze(NOW)
        upgrade()
        companies = company_rows(total, total // 20, total // 100, seed=total)
        seed(db, companies, USERS_PER_COMPANY, lambda j: j % 2 == 0)
        url = encrypt("json://127.0.0.1:9/hook/x")
        db.session.execute(NotifyChannel.__table__.insert(), [
            dict(company_id=c["id"], service="json", service_name="JSON", label="ops", url_enc=url,
                 url_masked="json://127.0.0.1/h…k/x", url_digest=f"{c['id']:064d}", created_at=NOW,
                 created_by_name="bench") for c in companies[::100]])
        db.session.commit()

        def email_claim():
            db.session.execute(delete(ReminderDelivery))
            db.session.commit()
            return sweep.find_and_claim(NOW)

        def channel_claim():
            db.session.execute(delete(NoticeDelivery))
            db.session.commit()
            return channel_send.batches(NOW)

        out["email_claim_s"], r = best(email_claim)
        out["email_claimed"] = r.claimed
        out["channel_claim_s"], batches = best(channel_claim)
        out["channel_claimed"] = sum(len(b) for b in batches)
        out["channel_steady_s"], _ = best(lambda: channel_send.batches(NOW))  # all claimed: what every sweep pays
        client = app.test_client()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        out["metrics_s"], resp = best(lambda: client.get("/metrics", headers=headers))
        out["metrics_kb"] = round(len(resp.get_data()) / 1024)
        t = time.perf_counter()
        check_state.add_missing(NOW, limit=total)
        out["check_add_missing_s"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()  # slots start an hour after add_missing: one tick's 15-minute slice is due
        claimed = check_state.claim_due(NOW + timedelta(hours=1, minutes=15), limit=total)
        out["check_claim_slice_s"], out["check_claimed_in_15_min"] = round(time.perf_counter() - t, 3), len(claimed)
        clock.freeze(None)
    for key in ("email_claim_s", "channel_claim_s", "channel_steady_s", "metrics_s"):
        out[key] = round(out[key], 3)
    out["channel_over_email"] = round(out["channel_claim_s"] / out["email_claim_s"], 2)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="10000", help="comma-separated company counts")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="alerts-bench-") as workdir:
        for total in [int(s) for s in args.scales.split(",") if s]:
            print(run(total, workdir), flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
