"""Sign-in throttling: parallel guesses cannot beat the count, an attacker is slowed, the owner is never locked out."""
from __future__ import annotations

from datetime import timedelta

import requests
from support import PASSWORD, csrf_from, forms_of, run_together

from panel import clock

ATTACKER, OWNER = "10.0.0.66", "10.0.0.7"


def post_login(client, email, password, address=ATTACKER):
    env = {"REMOTE_ADDR": address}
    token = csrf_from(client.get("/login", environ_overrides=env).text)
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_overrides=env)


def burst(live_server, passwords: list[str]) -> list[int]:
    """Sign-in attempts at admin@example.com released together from one address; their status codes."""
    base = live_server.url
    queue = []
    for password in passwords:
        http = requests.Session()
        fields = forms_of(http.get(f"{base}/login").text)[0]["fields"]
        queue.append((http, dict(fields, email="admin@example.com", password=password)))

    def attempt():
        http, data = queue.pop()
        return http.post(f"{base}/login", data=data, allow_redirects=False).status_code

    codes, errors = run_together(live_server.app, len(passwords), attempt)
    assert not errors, errors
    return codes


def test_parallel_wrong_passwords_are_checked_at_most_the_limit(live_server):
    clock.freeze(clock.now())  # the 1 s delay after the fifth cannot run out while the burst is in flight
    codes = burst(live_server, [f"wrong guess {i}" for i in range(24)])
    assert sorted(codes) == [401] * 5 + [429] * 19  # limit 5: never 9, 11 or 5-by-luck
    # Once the guesses are used up, the right password from that address waits too.
    assert burst(live_server, [PASSWORD]) == [429]


def test_right_password_in_a_parallel_burst_frees_no_extra_guesses(live_server):
    clock.freeze(clock.now())
    passwords = [f"wrong guess {i}" for i in range(24)]
    passwords[7] = PASSWORD  # sent eighth, as in the report
    codes = burst(live_server, passwords)
    assert codes.count(401) <= 5 and codes.count(401) + codes.count(302) <= 6, sorted(codes)


def test_attacker_cannot_lock_the_owner_out(client):
    for i in range(30):
        post_login(client, "admin@example.com", f"guess {i}")
    assert post_login(client, "admin@example.com", PASSWORD).status_code == 429  # the attacker's address waits
    owner = post_login(client.application.test_client(), "admin@example.com", PASSWORD, address=OWNER)
    assert owner.status_code == 302 and owner.headers["Location"] == "/settings/sage"


def test_delays_double_after_five_failures_for_one_account_and_address(client):
    start = clock.now()
    clock.freeze(start)
    for i in range(5):
        assert post_login(client, "admin@example.com", f"guess {i}").status_code == 401
    refused = post_login(client, "admin@example.com", PASSWORD)
    assert refused.status_code == 429 and "Try again in 1 second." in refused.text
    for n, delay in enumerate([1, 2, 4, 8, 16, 32, 64]):
        start += timedelta(seconds=delay)
        clock.freeze(start)
        assert post_login(client, "admin@example.com", "still guessing").status_code == 401, n
        nxt = post_login(client, "admin@example.com", "too soon")
        assert nxt.status_code == 429
    assert "Try again in 3 minutes." in post_login(client, "admin@example.com", "x").text  # 128 s
    # Another account from the same address is not slowed (only the address budget applies).
    assert post_login(client, "ben@example.com", PASSWORD).status_code == 302


def test_delay_is_capped_at_the_lock_minutes(client):
    at = clock.now()
    clock.freeze(at)
    for i in range(5):
        assert post_login(client, "admin@example.com", f"guess {i}").status_code == 401
    for k in range(12):  # wait out each delay exactly: 1 s, 2 s, … 512 s, then the 15-minute cap
        at += timedelta(seconds=min(900, 2 ** k))
        clock.freeze(at)
        assert post_login(client, "admin@example.com", f"guess {k}").status_code == 401, k
    refused = post_login(client, "admin@example.com", "again")
    assert refused.status_code == 429 and "Try again in 15 minutes." in refused.text


def test_an_address_is_locked_after_twenty_failures_across_accounts(app):
    client = app.test_client()
    start = clock.now()
    clock.freeze(start)
    people = ["admin@example.com", "ben@example.com", "chloe@example.com", "olga@other.example", "oscar@other.example"]
    for i in range(20):  # four wrong guesses at each of five accounts: no account+address delay, only the address
        assert post_login(client, people[i % 5], "nope").status_code == 401
    locked = post_login(client, "admin@example.com", PASSWORD)
    assert locked.status_code == 429 and "Try again in 15 minutes." in locked.text
    # Another address is not affected, and the lock ends with its window.
    assert post_login(app.test_client(), "admin@example.com", PASSWORD, address=OWNER).status_code == 302
    clock.freeze(start + timedelta(minutes=15, seconds=1))
    assert post_login(app.test_client(), "admin@example.com", PASSWORD).status_code == 302


def test_successful_sign_ins_do_not_use_up_the_address(app):
    clock.freeze(clock.now())
    for _ in range(25):  # an office behind one address signing in all day
        assert post_login(app.test_client(), "ben@example.com", PASSWORD).status_code == 302


def test_a_success_is_not_counted_as_a_failure(client):
    clock.freeze(clock.now())
    for i in range(4):
        assert post_login(client, "admin@example.com", f"typo {i}").status_code == 401
    assert post_login(client, "admin@example.com", PASSWORD).status_code == 302
    other = client.application.test_client()
    assert post_login(other, "admin@example.com", "fifth typo").status_code == 401
    assert post_login(other, "admin@example.com", "sixth, too soon").status_code == 429


def test_unknown_accounts_are_throttled_too(client):
    clock.freeze(clock.now())
    for i in range(5):
        assert post_login(client, "nobody@example.com", "nope").status_code == 401
    assert post_login(client, "nobody@example.com", "nope").status_code == 429
