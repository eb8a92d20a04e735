"""Temporary USB exceptions from the dashboard (admin) and the API: the collector stamps who granted it.

Headless Chromium against a real collector process; the command the booth picks up is then handed to the
agent's real exceptions code (plain-file sysfs, as in tests/usb) to see the grant event name the admin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from boothguard.events import Draft
from boothguard.usb.exceptions import allow_from_command
from tests.dashboard.harness import PASSWORDS, Agent, Collector
from tests.dashboard.test_dashboard import booth, login, shot
from tests.usb.test_exceptions import Rig

pw = pytest.importorskip("playwright.sync_api")
expect = pw.expect
HEARTBEAT = Draft("agent.heartbeat", "info", {"interval_seconds": 60, "spool_depth": 0})


def commands(col: Collector, host_id: str) -> list[tuple[Any, ...]]:
    return col.sql("SELECT type, created_by, body FROM commands WHERE host_id = ?", (host_id,))


def picked_up(agent: Agent, *, ack: bool = False) -> list[dict[str, Any]]:
    """The commands in the booth's next answer; with `ack`, acknowledged as done like the agent does."""
    cmds: list[dict[str, Any]] = agent.send(HEARTBEAT)["commands"]
    for c in cmds if ack else ():
        agent.send(
            Draft("agent.command_ack", "info", {"command_id": c["id"], "type": c["type"], "status": "done"})
        )
    return cmds


def test_admin_grants_exception_and_agent_names_the_admin(
    browser: Any, collector: Collector, artifacts: Path, tmp_path: Path
) -> None:
    agent = booth(collector, "host-usb", "booth-12")
    page = login(browser, collector, "boss")
    page.goto(f"{collector.base}/hosts")
    row = page.locator("tr[data-host-id='host-usb']")
    row.locator("a.usb-allow").click()
    expect(page.locator("h1")).to_have_text("USB機器を一時的に許可")
    page.fill("input[name=device]", "0781:5567:4C530001")
    page.fill("input[name=duration]", "1h30m")
    page.fill("input[name=reason]", "ヘッドセットのファームウェア更新")
    shot(page, artifacts, "11-usb-allow-form-ja")
    page.click("#review-usb-allow")
    # the review: nothing is queued yet
    expect(page.locator("h1")).to_have_text("USB一時許可の確認")
    expect(page.locator("#summary-device")).to_have_text("0781:5567:4C530001")
    expect(page.locator("#summary-duration")).to_contain_text("1時間30分")
    expect(page.locator("#summary-reason")).to_have_text("ヘッドセットのファームウェア更新")
    expect(page.locator("#summary-granted-by")).to_have_text("boss")
    shot(page, artifacts, "12-usb-allow-confirm-ja")
    assert commands(collector, "host-usb") == []
    # a granted_by smuggled into the form is ignored: the collector names the logged-in admin
    page.evaluate(
        """() => { const f = document.querySelector("form[action$='/usb-allow']");
                   const i = document.createElement('input'); i.type = 'hidden';
                   i.name = 'granted_by'; i.value = 'mallory'; f.appendChild(i); }"""
    )
    page.click("#confirm-usb-allow")
    expect(page.locator("#usb-allow-sent")).to_contain_text("host-usb")
    expect(page.locator("tr[data-host-id='host-usb']")).to_contain_text("usb_allow")
    shot(page, artifacts, "13-usb-allow-sent-ja")

    (cmd,) = picked_up(agent)
    assert {k: v for k, v in cmd.items() if k != "id"} == {
        "type": "usb_allow",
        "device": "0781:5567:4C530001",
        "for_seconds": 5400,
        "reason": "ヘッドセットのファームウェア更新",
        "granted_by": "boss",
    }
    assert collector.sql("SELECT created_by FROM commands WHERE id = ?", (cmd["id"],)) == [("boss",)]
    detail = collector.sql(
        "SELECT detail FROM audit_log WHERE action = 'command.create' AND actor = ? AND target = ?",
        ("boss", "host-usb"),
    )
    assert len(detail) == 1
    assert '"granted_by": "boss"' in detail[0][0] or '"granted_by":"boss"' in detail[0][0]

    # the agent's own exceptions code, given this command, grants it in the admin's name
    rig = Rig(tmp_path)
    rig.guard.lock_buses()
    rig.insert("1-1", serial="4C530001")
    assert rig.tree.authorized("1-1") == "0"
    assert allow_from_command(rig.exceptions, cmd) is True
    assert rig.tree.authorized("1-1") == "1"
    granted = rig.last("usb.exception.granted")
    assert (granted["granted_by"], granted["source"], granted["for_seconds"]) == ("boss", "collector", 5400)
    assert picked_up(agent, ack=True) == [cmd]  # redelivered until the booth acknowledges it
    assert picked_up(agent) == []
    page.context.close()


def test_bad_input_refused_with_errors(browser: Any, collector: Collector, artifacts: Path) -> None:
    agent = booth(collector, "host-usb-bad", "booth-13")
    page = login(browser, collector, "boss", locale="en-US")
    page.goto(f"{collector.base}/hosts/host-usb-bad/usb-allow")
    expect(page.locator("h1")).to_have_text("Allow a USB device temporarily")
    page.fill("input[name=device]", "sandisk stick")
    page.fill("input[name=duration]", "soon")
    page.click("#review-usb-allow")
    expect(page.locator("#usb-allow-errors")).to_be_visible()
    expect(page.locator("#err-device")).to_have_text(
        "\u201csandisk stick\u201d is not a device: use a port like 1-2"
        " or vendor:product[:serial] like 0781:5567."
    )
    expect(page.locator("#err-duration")).to_contain_text("Cannot read the duration \u201csoon\u201d")
    expect(page.locator("#err-reason")).to_have_text("A reason is required.")
    expect(page.locator("input[name=device]")).to_have_value("sandisk stick")  # kept for correcting
    shot(page, artifacts, "14-usb-allow-errors-en")
    page.fill("input[name=device]", "1-2")
    page.fill("input[name=duration]", "8d")
    page.fill("input[name=reason]", "firmware")
    page.click("#review-usb-allow")
    expect(page.locator("#err-duration")).to_have_text("The duration must be between 1 second and 7 days.")
    assert page.locator("#err-device").count() == 0

    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    url = f"{collector.base}/hosts/host-usb-bad/usb-allow"
    ok = {"csrf": token, "device": "1-2", "duration": "30m", "reason": "firmware", "confirm": "yes"}
    # each field refused on the final step too (hidden fields can be edited), with the status and text
    for field, value, text in (
        ("device", "", "Enter a device."),
        ("device", "1-2\x07", "is not a device"),
        ("duration", "0s", "between 1 second and 7 days"),
        ("duration", "9" * 400, "Cannot read the duration"),
        ("reason", "x" * 201, "at most 200 characters"),
        ("reason", " \t ", "A reason is required."),
    ):
        r = page.request.post(url, form={**ok, field: value}, headers={"Accept-Language": "en"})
        assert r.status == 400, (field, value)
        assert text in r.text(), (field, value)
    # Japanese too
    page.goto(f"{collector.base}/lang/ja?next=/hosts")
    r = page.request.post(url, form={**ok, "duration": "soon", "reason": ""})
    assert r.status == 400
    assert "期間「soon」を読み取れません" in r.text()
    assert "理由は必須です。" in r.text()
    assert commands(collector, "host-usb-bad") == []
    assert picked_up(agent) == []
    # an unknown booth is not found, not queued
    r = page.request.post(f"{collector.base}/hosts/no-such-booth/usb-allow", form=ok)
    assert r.status == 404
    page.context.close()


@pytest.mark.parametrize("user", ["vic", "ana"])
def test_viewer_and_analyst_cannot_grant(browser: Any, collector: Collector, user: str) -> None:
    agent = booth(collector, f"host-usb-{user}", f"booth-{user}")
    page = login(browser, collector, user)
    page.goto(f"{collector.base}/hosts")
    expect(page.locator(f"tr[data-host-id='host-usb-{user}']")).to_have_count(1)
    assert page.locator("a.usb-allow").count() == 0
    assert page.goto(f"{collector.base}/hosts/host-usb-{user}/usb-allow").status == 403
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert token
    form = {"csrf": token, "device": "1-2", "duration": "30m", "reason": "x", "confirm": "yes"}
    r = page.request.post(f"{collector.base}/hosts/host-usb-{user}/usb-allow", form=form)
    assert r.status == 403
    assert "管理者" in r.text()
    # nor through the API
    cmd = {"type": "usb_allow", "device": "1-2", "for_seconds": 60, "reason": "x"}
    r2 = httpx.post(
        f"{collector.base}/v1/hosts/host-usb-{user}/commands",
        json=cmd,
        auth=(user, PASSWORDS[user]),
        timeout=10,
    )
    assert r2.status_code == 403
    assert commands(collector, f"host-usb-{user}") == []
    assert picked_up(agent) == []
    page.context.close()


def test_forged_csrf_refused(browser: Any, collector: Collector, artifacts: Path) -> None:
    agent = booth(collector, "host-usb-csrf", "booth-14")
    page = login(browser, collector, "boss")
    page.goto(f"{collector.base}/hosts/host-usb-csrf/usb-allow")
    page.fill("input[name=device]", "1-2")
    page.fill("input[name=duration]", "30m")
    page.fill("input[name=reason]", "firmware")
    page.click("#review-usb-allow")
    expect(page.locator("#confirm-usb-allow")).to_be_visible()
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.value = 'forged-token')")
    page.click("#confirm-usb-allow")
    expect(page.locator("#error-message")).to_contain_text("CSRF")
    assert page.locator("#error-message").get_attribute("data-status") == "403"
    shot(page, artifacts, "15-usb-allow-csrf-ja")
    assert ("boss", "/hosts/host-usb-csrf/usb-allow") in collector.audit("dashboard.csrf_refused")
    # no token at all, and a foreign origin with the right token: refused the same way
    form = {"device": "1-2", "duration": "30m", "reason": "firmware", "confirm": "yes"}
    url = f"{collector.base}/hosts/host-usb-csrf/usb-allow"
    assert page.request.post(url, form=form).status == 403
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    r = page.request.post(url, form={**form, "csrf": token}, headers={"Origin": "http://evil.example"})
    assert r.status == 403
    assert commands(collector, "host-usb-csrf") == []
    assert picked_up(agent) == []
    page.context.close()


def test_api_stamps_granted_by_and_checks_the_command(collector: Collector) -> None:
    agent = booth(collector, "host-usb-api", "booth-15")
    url = f"{collector.base}/v1/hosts/host-usb-api/commands"
    admin = ("boss", PASSWORDS["boss"])
    cmd = {"type": "usb_allow", "device": "0781:5567", "for_seconds": 3600, "reason": "vendor visit"}
    r = httpx.post(url, json={**cmd, "granted_by": "mallory"}, auth=admin, timeout=10)
    assert r.status_code == 201, r.text
    assert r.json()["granted_by"] == "boss"
    (got,) = picked_up(agent, ack=True)
    assert {k: v for k, v in got.items() if k != "id"} == {**cmd, "granted_by": "boss"}
    assert "usb_allow_granted_by_replaced" in collector.log()
    # without any granted_by, the same
    r = httpx.post(url, json=cmd, auth=admin, timeout=10)
    assert r.status_code == 201
    assert picked_up(agent, ack=True)[0]["granted_by"] == "boss"
    # a command the agent would refuse is refused now, with the reason
    for bad, text in (
        ({**cmd, "for_seconds": "3600"}, "for_seconds must be a number"),
        ({**cmd, "for_seconds": 30 * 86400}, "between 1 s and 7 days"),
        ({**cmd, "device": "sandisk"}, "bad device"),
        ({k: v for k, v in cmd.items() if k != "reason"}, "a reason is required"),
    ):
        r = httpx.post(url, json=bad, auth=admin, timeout=10)
        assert r.status_code == 400, bad
        assert text in r.json()["error"], r.json()
    assert picked_up(agent) == []
    # other commands are left as they were
    r = httpx.post(url, json={"type": "lock", "granted_by": "x"}, auth=admin, timeout=10)
    assert r.status_code == 201
    assert picked_up(agent)[0].get("granted_by") == "x"


def test_every_refusal_has_both_languages() -> None:
    """Each refusal the checker can give has a Japanese and an English text taking its parameters."""
    from boothguard.collector import usb_allow
    from boothguard.collector.web import i18n

    problems: list[usb_allow.Problem] = []
    for form in (("", "", ""), ("usb stick", "soon", "x" * 201), ("1-2", "8d", "ok")):
        refused = usb_allow.check_form(*form)
        assert isinstance(refused, list), form
        problems += refused
    codes = {p.code for p in problems}
    assert codes == {
        "device_empty", "device_bad", "duration_empty", "duration_bad", "duration_range", "reason_empty",
        "reason_long",
    }  # fmt: skip
    for lang in i18n.LANGS:
        for p in problems:
            key = f"usb_allow.err.{p.code}"
            assert key in i18n.catalog(lang), key
            assert "{" not in i18n.Translator(lang)(key, **p.params), key
    assert usb_allow.parts(5400) == [("h", 1), ("m", 30)]
    assert usb_allow.check_form(" 0781:5567 ", "90", "a\nb") == usb_allow.UsbAllow("0781:5567", 90, "a b")
