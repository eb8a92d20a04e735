"""The dashboard in headless Chromium against a real collector process and agents posting real events."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from boothguard.events import Draft
from tests.dashboard.harness import PASSWORDS, Agent, Collector, run_collector

pw = pytest.importorskip("playwright.sync_api")
expect = pw.expect
TIMEOUT = 15_000  # ms, for every wait on the page

STICK = {"vendor_id": "0781", "product_id": "5567"}  # the keys the agent sends


def login(
    browser: Any, col: Collector, user: str, *, locale: str = "ja-JP", password: str | None = None
) -> Any:
    ctx = browser.new_context(
        locale=locale, timezone_id="Asia/Tokyo", viewport={"width": 1440, "height": 900}
    )
    ctx.set_default_timeout(TIMEOUT)
    page = ctx.new_page()
    page.goto(f"{col.base}/")
    assert "/login" in page.url  # not logged in: sent to the login page
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password or PASSWORDS[user])
    page.click("button[type=submit]")
    page.wait_for_load_state()
    return page


def shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def booth(col: Collector, host_id: str, name: str, *, user: str = "operator01") -> Agent:
    agent = Agent(col.base, host_id, name).enroll()
    agent.send(
        Draft("agent.started", "info", {"usb_mode": "enforce", "version": "0.1.0"}),
        Draft("session.started", "info", {"session": "c1"}, user),
        Draft("agent.heartbeat", "info", {"interval_seconds": 60, "spool_depth": 3}),
    )
    return agent


def test_alert_live_ack_filter_timeline_export_lock(
    browser: Any, collector: Collector, artifacts: Path
) -> None:
    agent = booth(collector, "host-aaa", "booth-07")
    page = login(browser, collector, "boss")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    # Japanese from Accept-Language (locale ja-JP), no reload from here on: a marker survives only then.
    expect(page.locator("h1")).to_have_text("アラート受信箱")
    page.evaluate("window.__noReload = 42")
    agent.send(Draft("usb.storage.detected", "high", STICK, "operator01"))
    row = page.locator("tr[data-alert-type='usb.storage.detected']")
    expect(row).to_have_count(1)  # appeared live
    assert page.evaluate("window.__noReload") == 42
    expect(row.locator(".badge")).to_have_text("高")
    agent.send(Draft("usb.storage.detected", "high", STICK, "operator01"))
    expect(row.locator(".repeat")).to_have_text("\u00d72")  # "x2": the repeat is grouped, live
    assert page.evaluate("window.__noReload") == 42
    shot(page, artifacts, "01-alerts-ja")
    # times are shown in the viewer's zone (the browser's: Asia/Tokyo here), from the ISO instant
    stamp = row.locator("time").first
    instant = datetime.fromisoformat(stamp.get_attribute("datetime").replace("Z", "+00:00"))
    expect(stamp).to_have_text(instant.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y/%m/%d %H:%M:%S"))

    row.locator("button.ack").click()
    page.wait_for_load_state()
    row = page.locator("tr[data-alert-type='usb.storage.detected']")
    expect(row.locator(".state")).to_have_text("確認済み")
    expect(row).to_contain_text("確認者: boss")
    alert_id = row.get_attribute("data-alert-id")
    assert ("boss", alert_id) in collector.audit("alert.ack")
    assert collector.sql("SELECT state, acked_by FROM alerts WHERE id = ?", (alert_id,)) == [
        ("acked", "boss")
    ]

    # filters: severity, state, host, type
    page.select_option("select[name=severity]", "critical")
    page.wait_for_url(re.compile(r"severity=critical"))
    expect(page.locator("tr[data-alert-id]")).to_have_count(0)
    expect(page.locator("tr.none")).to_contain_text("該当するアラートはありません")
    page.goto(f"{collector.base}/?state=open")
    expect(page.locator("tr[data-alert-id]")).to_have_count(0)
    page.goto(f"{collector.base}/?state=acked&host=host-aaa&type=usb.*")
    expect(page.locator("tr[data-alert-id]")).to_have_count(1)

    # timeline of the booth, with the Japanese labels of event types
    page.click(f"tr[data-alert-id='{alert_id}'] a")
    page.wait_for_url(re.compile(r"/timeline\?host=host-aaa"))
    expect(page.locator("ol.timeline li")).to_have_count(5)
    expect(page.locator("ol.timeline")).to_contain_text("USBストレージを検出")
    shot(page, artifacts, "02-timeline-ja")
    page.goto(f"{collector.base}/timeline?user=operator01")
    expect(page.locator("ol.timeline li")).to_have_count(3)

    # events: search and the charts (SVG bars drawn on the server)
    page.goto(f"{collector.base}/events?type=usb.*")
    expect(page.locator("table.events tbody tr")).to_have_count(2)
    bars = page.locator("svg.chart").first.locator("rect title")
    assert bars.count() >= 2  # at least the agent and usb categories
    expect(page.locator("svg.chart").nth(1)).to_contain_text("高")
    page.goto(f"{collector.base}/events")
    shot(page, artifacts, "03-events-ja")

    # incident export: CSV and JSON contents, and the printable page
    csv_text = page.request.get(f"{collector.base}/export?host=host-aaa&format=csv").text()
    comments = [line for line in csv_text.lstrip("\ufeff").splitlines() if line.startswith("#")]
    assert any("chain host=host-aaa seq=1-5 checked=5 ok=true problems=none" in c for c in comments), comments
    rows = list(
        csv.DictReader(
            io.StringIO(
                "\n".join(line for line in csv_text.lstrip("\ufeff").splitlines() if not line.startswith("#"))
            )
        )
    )
    assert [r["seq"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert rows[3]["type"] == "usb.storage.detected"
    assert rows[3]["user"] == "operator01"
    assert json.loads(rows[3]["data"]) == {"product_id": "5567", "vendor_id": "0781"}
    exported = page.request.get(f"{collector.base}/export?host=host-aaa&format=json").json()
    assert exported["chain_verification"]["ok"] is True
    assert exported["chain_verification"]["hosts"][0]["events_checked"] == 5
    assert len(exported["events"]) == 5
    assert exported["summary"]["by_type"]["usb.storage.detected"] == 2
    assert exported["alerts"][0]["count"] == 2
    assert exported["alerts"][0]["acked_by"] == "boss"
    page.goto(f"{collector.base}/timeline?host=host-aaa")
    page.click("#export-html")
    expect(page.locator("#chain-result")).to_contain_text("検証成功")
    expect(page.locator("h1")).to_contain_text("漏えい等報告")
    shot(page, artifacts, "04-export-ja")
    assert len(collector.audit("incident.export")) == 3

    # remote lock: confirmation page, then the command rides on the booth's next upload
    page.goto(f"{collector.base}/hosts")
    host_row = page.locator("tr[data-host-id='host-aaa']")
    expect(host_row).to_contain_text("オンライン")
    expect(host_row).to_contain_text("強制")  # USB mode enforce
    expect(host_row).to_contain_text("稼働中")  # watcher
    shot(page, artifacts, "05-hosts-ja")
    host_row.locator("a.lock").click()
    expect(page.locator("h1")).to_have_text("ブースを遠隔ロック")
    page.fill("input[name=reason]", "画面撮影の疑い")
    shot(page, artifacts, "06-lock-confirm-ja")
    page.click("#confirm-lock")
    expect(page.locator("#lock-sent")).to_contain_text("host-aaa")
    expect(page.locator("tr[data-host-id='host-aaa']")).to_contain_text("配信待ち")
    answer = agent.send(Draft("agent.heartbeat", "info", {"interval_seconds": 60, "spool_depth": 0}))
    assert [(c["type"], c.get("reason")) for c in answer["commands"]] == [("lock", "画面撮影の疑い")]
    cid = answer["commands"][0]["id"]
    assert collector.sql("SELECT created_by FROM commands WHERE id = ?", (cid,)) == [("boss",)]
    assert ("boss", "host-aaa") in collector.audit("command.create")

    # switch to English; the choice sticks (cookie)
    page.click("a[href^='/lang/en']")
    expect(page.locator("h1")).to_have_text("Booths")
    page.goto(f"{collector.base}/")
    expect(page.locator("h1")).to_have_text("Alerts inbox")
    shot(page, artifacts, "07-alerts-en")

    # nothing was fetched from anywhere but the collector
    assert requests
    assert all(u.startswith(collector.base) for u in requests), requests
    page.context.close()


def test_security_headers_and_cookies(browser: Any, collector: Collector) -> None:
    page = login(browser, collector, "vic", locale="en-US")
    response = page.goto(f"{collector.base}/hosts")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    cookie = next(c for c in page.context.cookies() if c["name"] == "bg_session")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    assert not cookie["secure"]
    expect(page.locator("h1")).to_have_text("Booths")  # English from Accept-Language
    assert page.locator("script:not([src])").count() == 0  # no inline script
    assert page.request.get(f"{collector.base}/static/app.js").headers["x-content-type-options"] == "nosniff"
    # logging out ends the session on the collector, not just in the browser
    token = cookie["value"]
    page.click("header form[action='/logout'] button")
    expect(page.locator("h1")).to_have_text("Sign in")
    assert ("vic", "vic") in collector.audit("session.logout")
    page.context.add_cookies([{"name": "bg_session", "value": token, "url": collector.base}])
    page.goto(f"{collector.base}/hosts")
    assert "/login" in page.url
    page.context.close()


def test_wrong_password_refused_then_throttled(browser: Any, collector: Collector, artifacts: Path) -> None:
    page = login(browser, collector, "tom", password="wrong-password")
    expect(page.locator("#login-error")).to_have_text("ユーザー名またはパスワードが正しくありません。")
    assert not [c for c in page.context.cookies() if c["name"] == "bg_session"]
    shot(page, artifacts, "08-login-wrong-ja")
    for _ in range(4):
        page.fill("input[name=username]", "tom")
        page.fill("input[name=password]", "still-wrong")
        page.click("button[type=submit]")
        page.wait_for_load_state()
    # the right password no longer helps: the account is throttled
    page.fill("input[name=username]", "tom")
    page.fill("input[name=password]", PASSWORDS["tom"])
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("ログイン失敗が多すぎます")
    assert not [c for c in page.context.cookies() if c["name"] == "bg_session"]
    assert len([a for a in collector.audit("login.failed") if a[0] == "tom"]) == 5
    assert ("tom", "tom") in collector.audit("login.throttled")
    page.context.close()


def test_expired_session_goes_back_to_login(browser: Any, collector: Collector) -> None:
    page = login(browser, collector, "ana")
    expect(page.locator("h1")).to_have_text("アラート受信箱")
    # the session's expiry passes (as stored by the collector)
    collector.sql("UPDATE api_sessions SET expires_at = ? WHERE user = 'ana'", (time.time() - 1,))
    page.goto(f"{collector.base}/hosts")
    assert "/login" in page.url
    assert "expired=1" in page.url
    expect(page.locator("#expired")).to_contain_text("有効期限が切れました")
    assert (
        page.request.get(f"{collector.base}/alerts/rows", headers={"X-Requested-With": "fetch"}).status == 401
    )
    page.context.close()


def test_forged_csrf_token_refused(browser: Any, collector: Collector, artifacts: Path) -> None:
    agent = booth(collector, "host-csrf", "booth-csrf")
    agent.send(Draft("screen.lock_failed", "critical", {"session": "c1"}, "operator02"))
    page = login(browser, collector, "ana")
    row = page.locator("tr[data-alert-type='screen.lock_failed']")
    expect(row).to_have_count(1)
    alert_id = row.get_attribute("data-alert-id")
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.value = 'forged-token')")
    row.locator("button.ack").click()
    expect(page.locator("#error-message")).to_contain_text("CSRF")
    assert page.locator("#error-message").get_attribute("data-status") == "403"
    shot(page, artifacts, "09-csrf-refused-ja")
    assert collector.sql("SELECT state FROM alerts WHERE id = ?", (alert_id,)) == [("open",)]
    assert ("ana", f"/alerts/{alert_id}/ack") in collector.audit("dashboard.csrf_refused")
    # a request without the token at all is refused the same way
    r = page.request.post(f"{collector.base}/alerts/{alert_id}/ack", form={"next": "/"})
    assert r.status == 403
    # a cross-site origin is refused even with the right token
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    r = page.request.post(
        f"{collector.base}/alerts/{alert_id}/ack",
        form={"csrf": token},
        headers={"Origin": "http://evil.example"},
    )
    assert r.status == 403
    assert collector.sql("SELECT state FROM alerts WHERE id = ?", (alert_id,)) == [("open",)]
    # with the page's own token the analyst resolves it
    page.goto(f"{collector.base}/")
    page.locator(f"tr[data-alert-id='{alert_id}'] button.resolve").click()
    expect(page.locator(f"tr[data-alert-id='{alert_id}'] .state")).to_have_text("解決済み")
    assert ("ana", alert_id) in collector.audit("alert.resolve")
    page.context.close()


def test_viewer_cannot_lock_or_ack(browser: Any, collector: Collector) -> None:
    agent = booth(collector, "host-view", "booth-view")
    agent.send(Draft("screenshot.detected", "high", {"app": "scrot"}, "operator03"))
    page = login(browser, collector, "vic")
    row = page.locator("tr[data-alert-type='screenshot.detected']")
    expect(row).to_have_count(1)
    assert row.locator("button").count() == 0  # no ack/resolve for a viewer
    alert_id = row.get_attribute("data-alert-id")
    page.goto(f"{collector.base}/hosts")
    assert page.locator("a.lock").count() == 0
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert token
    before = collector.sql("SELECT COUNT(*) FROM commands")[0][0]
    r = page.request.post(f"{collector.base}/hosts/host-view/lock", form={"csrf": token, "confirm": "yes"})
    assert r.status == 403
    assert "管理者" in r.text()
    r = page.request.post(f"{collector.base}/alerts/{alert_id}/ack", form={"csrf": token})
    assert r.status == 403
    assert page.goto(f"{collector.base}/hosts/host-view/lock").status == 403
    assert page.goto(f"{collector.base}/export?host=host-view&format=json").status == 403
    assert collector.sql("SELECT COUNT(*) FROM commands")[0][0] == before
    assert collector.sql("SELECT state FROM alerts WHERE id = ?", (alert_id,)) == [("open",)]
    answer = agent.send(Draft("agent.heartbeat", "info", {"interval_seconds": 60}))
    assert answer["commands"] == []
    page.context.close()


def test_export_reports_a_tampered_record(browser: Any, collector: Collector, artifacts: Path) -> None:
    agent = booth(collector, "host-tamper", "booth-tamper", user="operator04")
    agent.send(
        Draft("clipboard.copy", "medium", {"pii": {"phone_jp": 2}, "length": 40}, "operator04"),
        Draft("screen.locked", "info", {}, "operator04"),
    )
    page = login(browser, collector, "ana")
    clean = page.request.get(f"{collector.base}/export?host=host-tamper&format=json").json()
    assert clean["chain_verification"]["ok"] is True
    # someone with database access rewrites the copy's counts and deletes the lock record
    (raw,) = collector.sql("SELECT raw FROM events WHERE host_id = 'host-tamper' AND seq = 4")[0]
    collector.sql(
        "UPDATE events SET raw = ? WHERE host_id = 'host-tamper' AND seq = 4",
        (json.dumps({**json.loads(raw), "data": {"pii": {"phone_jp": 0}, "length": 40}}),),
    )
    collector.sql("DELETE FROM events WHERE host_id = 'host-tamper' AND seq = 3")
    exported = page.request.get(f"{collector.base}/export?host=host-tamper&format=json").json()
    chain = exported["chain_verification"]
    assert chain["ok"] is False
    problems = {(p["kind"], p["from_seq"], p["to_seq"]) for p in chain["hosts"][0]["problems"]}
    assert ("bad_hash", 4, 4) in problems
    assert ("gap", 3, 3) in problems
    csv_text = page.request.get(f"{collector.base}/export?host=host-tamper&format=csv").text()
    assert "ok=false" in csv_text
    assert "bad_hash:4-4" in csv_text
    page.goto(f"{collector.base}/export?host=host-tamper&format=html")
    expect(page.locator("#chain-result")).to_contain_text("問題あり")
    shot(page, artifacts, "10-export-tampered-ja")
    page.context.close()


def test_secure_cookie_over_tls(browser: Any, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"],
        capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a test certificate: {made.stderr.decode()[:200]}")
    with run_collector(tmp_path / "tls", tls=(cert, key), users=("vic",)) as col:
        ctx = browser.new_context(locale="en-US", ignore_https_errors=True)
        ctx.set_default_timeout(TIMEOUT)
        page = ctx.new_page()
        page.goto(f"{col.base}/login")
        page.fill("input[name=username]", "vic")
        page.fill("input[name=password]", PASSWORDS["vic"])
        page.click("button[type=submit]")
        expect(page.locator("h1")).to_have_text("Alerts inbox")
        cookie = next(c for c in ctx.cookies() if c["name"] == "bg_session")
        assert cookie["secure"]
        assert cookie["httpOnly"]
        assert cookie["sameSite"] == "Strict"
        response = page.goto(f"{col.base}/")
        assert "max-age" in response.headers["strict-transport-security"]
        ctx.close()


def test_japanese_titles_and_japanese_event_data_read_as_text(browser: Any, collector: Collector) -> None:
    """A shipped rule's title in the Japanese UI; Japanese in event data as text (not \\uXXXX) on the
    events page, the timeline and the printed incident record."""
    agent = booth(collector, "host-jjj", "booth-ja")
    note = "お客様の電話番号をメモ帳へ"
    agent.send(
        Draft("clipboard.copy", "high", {"pii": {"phone": 1}, "app": "メモ帳", "note": note}, "操作員01")
    )
    page = login(browser, collector, "boss")
    row = page.locator("tr[data-alert-type='clipboard.copy']", has_text="booth-ja")
    expect(row).to_contain_text("booth-ja で 操作員01 が個人情報をコピー (phone:1)")
    checks = (
        ("/events?type=clipboard.*", "table.events"),
        ("/timeline?host=host-jjj", "ol.timeline"),
        ("/export?host=host-jjj&format=html", "body"),
    )
    for path, where in checks:
        page.goto(collector.base + path)
        expect(page.locator(where)).to_contain_text(note)
        assert "\\u" not in page.locator(where).inner_text(), path
    page.goto(f"{collector.base}/lang/en?next=/")
    page.goto(f"{collector.base}/")
    row = page.locator("tr[data-alert-type='clipboard.copy']", has_text="booth-ja")
    expect(row).to_contain_text("Personal data copied on booth-ja by 操作員01 (phone:1)")
    page.context.close()


def test_policy_pages_publish_refuse_in_japanese_and_show_who_is_behind(
    browser: Any, collector: Collector, artifacts: Path
) -> None:
    import httpx

    booth(collector, "host-ppp", "floor9-01")
    agent2 = booth(collector, "host-ppq", "floor9-02")
    api = httpx.Client(base_url=collector.base, auth=("boss", PASSWORDS["boss"]), timeout=10)
    assert api.put("/v1/groups/floor9", json={"name_pattern": "floor9-*", "priority": 5}).status_code < 300
    page = login(browser, collector, "boss")
    page.click("nav a[href='/policy']")
    group = page.locator("tr[data-group='floor9']")
    expect(group).to_contain_text("ポリシー未設定")
    group.locator("a.edit").click()
    expect(page.locator("h1")).to_have_text("グループ floor9 のポリシー")
    # refused on the collector, each problem with its key, in Japanese; nothing published
    page.fill(
        "textarea[name=body]",
        '{"usb": {"mode": "bogus", "colour": 1}, "ship": {"collector_url": "http://evil"}}',
    )
    page.click("#publish-policy")
    problems = page.locator("#policy-problems")
    expect(problems).to_contain_text("ship")
    expect(problems).to_contain_text("ポリシーで指定できないセクションです")
    page.fill("textarea[name=body]", '{"usb": {"mode": "bogus", "colour": 1}}')
    page.click("#publish-policy")
    expect(problems).to_contain_text("usb.mode")
    expect(problems).to_contain_text("値が不正です")
    expect(problems).to_contain_text("usb.colour")
    expect(problems).to_contain_text("不明なキーです")
    page.fill("textarea[name=body]", "{not json")
    page.click("#publish-policy")
    expect(problems).to_contain_text("JSON として読めません")
    page.fill("textarea[name=body]", '{"usb": {"mode": "audit"}, "local_override": ["usb.rules", "usb.mod"]}')
    page.click("#publish-policy")
    expect(problems).to_contain_text("local_override.1")
    expect(problems).to_contain_text("ポリシーで指定できるキーではありません: usb.mod")
    assert api.get("/v1/groups/floor9/policy").json()["version"] is None
    shot(page, artifacts, "08-policy-refused-ja")
    # a valid one is published; both booths are behind until one reports it applied
    page.fill("textarea[name=body]", '{"usb": {"mode": "audit"}}')
    page.click("#publish-policy")
    expect(page.locator("#policy-published")).to_contain_text("floor9 v1")
    expect(page.locator("tr[data-group='floor9'] .version")).to_contain_text("v1")
    expect(page.locator("#behind-count")).to_contain_text("未適用 2 台")
    current = api.get("/v1/groups/floor9/policy").json()
    assert current["body"] == {"usb": {"mode": "audit"}}
    agent2.send(
        Draft("agent.policy_applied", "info", {"version": 1, "hash": current["hash"], "group": "floor9"})
    )
    page.reload()
    expect(page.locator("tr[data-host-id='host-ppq'] .state")).to_contain_text("最新")
    expect(page.locator("tr[data-host-id='host-ppp'] .state")).to_contain_text("未適用")
    expect(page.locator("#behind-count")).to_contain_text("未適用 1 台")
    page.goto(f"{collector.base}/hosts")
    expect(page.locator("tr[data-host-id='host-ppp'] .policy")).to_contain_text("未適用")
    shot(page, artifacts, "09-policy-ja")
    assert any(target == "floor9" for _, target in collector.audit("policy.publish"))
    page.context.close()
    # a viewer sees the page but cannot edit or publish
    viewer = login(browser, collector, "vic")
    viewer.goto(f"{collector.base}/policy")
    expect(viewer.locator("tr[data-group='floor9']")).to_contain_text("v1")
    expect(viewer.locator("a.edit")).to_have_count(0)
    assert viewer.request.get(f"{collector.base}/policy/floor9").status == 403
    viewer.context.close()
