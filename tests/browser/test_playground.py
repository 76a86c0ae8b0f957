"""Playground in headless Chromium against the real app (gunicorn + gevent) and a scripted
OpenAI-compatible upstream process (`fake_chat.py`): an answer streams in and renders as
markdown without running the model's HTML, a second one is stopped midway (the upstream sees
the cut), and compare mode streams two models side by side with one table of figures."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN_PASSWORD, ADMIN_USER, BIN, ROOT, _free_port, _stop, _wait_http

pytestmark = pytest.mark.browser
FAKE = Path(__file__).with_name("fake_chat.py")
XSS = "<img src=x onerror=\"window.__xss=1\"> <script>window.__xss=2</script> [x](javascript:window.__xss=3)"


@pytest.fixture(scope="module")
def fake_chat(tmp_path_factory):
    port = _free_port()
    log = (tmp_path_factory.mktemp("fakechat") / "fake.log").open("w")
    proc = subprocess.Popen([sys.executable, str(FAKE), "--port", str(port)], stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/v1/models", proc)
        yield url
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="module")
def playground_gateway(tmp_path_factory, fake_chat):
    """The gateway with two providers on the fake: fast-alpha (+ slow-gamma) and fast-beta."""
    tmp = tmp_path_factory.mktemp("pg-gateway")
    env = {**os.environ, "GATEWAY_INSTANCE_PATH": str(tmp), "GATEWAY_DATABASE_URL": f"sqlite:///{tmp}/gw.db",
           "GATEWAY_ADMIN_USER": ADMIN_USER, "GATEWAY_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "GATEWAY_ENV": "development", "GATEWAY_HEALTH_INTERVAL": "0", "NO_PROXY": "127.0.0.1"}
    flask = [str(BIN / "flask"), "--app", "wsgi"]
    subprocess.run([*flask, "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    admin_key = subprocess.run([*flask, "create-key", "--name", "setup", "--scopes", "admin"], cwd=ROOT,
                               env=env, check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    port = _free_port()
    log = (tmp / "gunicorn.log").open("w")
    proc = subprocess.Popen([str(BIN / "gunicorn"), "-k", "gevent", "-w", "1", "-b", f"127.0.0.1:{port}",
                             "wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/login", proc)
        api = requests.Session()
        api.headers["Authorization"] = f"Bearer {admin_key}"
        for name, models in (("Fake One", ("fast-alpha", "slow-gamma")), ("Fake Two", ("fast-beta",))):
            r = api.post(f"{url}/api/admin/providers", json={"name": name, "type": "openai-compatible",
                                                             "api_base": f"{fake_chat}/v1", "api_key": "sk-fake-1"})
            assert r.status_code == 201, r.text
            provider_id = r.json()["id"]
            for mid in models:
                r = api.post(f"{url}/api/admin/models", json={
                    "provider_id": provider_id, "model_id": mid, "supports_tools": True,
                    "supports_vision": mid == "fast-alpha", "context_window": 128000,
                    "input_price_per_mtok": "0.15", "output_price_per_mtok": "0.60"})
                assert r.status_code == 201, r.text
        yield url
    finally:
        _stop(proc)
        log.close()


def login(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", ADMIN_USER)
    page.fill("#password", ADMIN_PASSWORD)
    page.click("button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/login"))


def last_answer(page: Page):
    return page.locator(".pg-msg-assistant").last


def test_playground_streams_stops_and_compares(page: Page, playground_gateway: str, fake_chat: str, screens):
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    login(page, playground_gateway)
    page.goto(f"{playground_gateway}/playground")
    expect(page.locator("#pg-model optgroup[label='Fake One'] option")).to_have_count(2)
    expect(page.locator("#pg-model optgroup[label='Fake Two'] option")).to_have_count(1)
    page.select_option("#pg-model", "fast-alpha")
    expect(page.locator("#pg-model-info")).to_contain_text("vision")
    expect(page.locator("#pg-model-info")).to_contain_text("128k context")

    # 1. an answer streams in and is rendered as sanitised markdown
    page.fill("#pg-input", f"Hello {XSS}")
    page.click("#pg-send")
    answer = last_answer(page)
    expect(answer.locator(".pg-figures")).to_contain_text("first token", timeout=20000)
    expect(answer.locator(".pg-md strong")).to_have_text("fast-alpha")
    expect(answer.locator(".pg-md pre code")).to_contain_text("print('hello from fast-alpha')")
    expect(answer.locator(".pg-md table")).to_be_visible()
    expect(answer).to_contain_text("<script>window.__xss=2</script>")  # shown as text
    expect(answer.locator(".pg-figures")).to_contain_text("Fake One / fast-alpha")
    assert page.evaluate("window.__xss") is None
    assert answer.locator("img, script, iframe").count() == 0
    assert answer.locator("a[href^='javascript']").count() == 0
    expect(page.locator("#pg-conversations")).to_contain_text("Hello", timeout=10000)
    assert re.search(r"\?c=\d+$", page.url)
    page.screenshot(path=str(screens / "playground-answer.png"))

    # 1b. edit the first turn: later turns are dropped and a new answer streams; regenerate
    page.locator(".pg-msg-user").first.hover()
    page.locator(".pg-msg-user").first.get_by_role("button", name="Edit").click()
    page.locator(".pg-edit").fill("Edited question")
    page.get_by_role("button", name="Save & send").click()
    expect(last_answer(page).locator(".pg-figures")).to_contain_text("first token", timeout=20000)
    expect(last_answer(page)).to_contain_text("says: Edited question")
    expect(page.locator(".pg-msg")).to_have_count(2)
    answer_id = last_answer(page).locator(".pg-figures").inner_text()
    last_answer(page).hover()
    last_answer(page).get_by_role("button", name="Regenerate").click()
    expect(last_answer(page).locator(".pg-figures")).not_to_have_text(answer_id, timeout=20000)
    expect(page.locator(".pg-msg")).to_have_count(2)

    # 2. a second answer is stopped midway: no more tokens, and the upstream stream is cut
    before = requests.get(f"{fake_chat}/_stats", timeout=5).json()
    page.select_option("#pg-model", "slow-gamma")
    page.fill("#pg-input", "Count slowly")
    page.click("#pg-send")
    streaming = page.locator(".pg-msg-assistant.is-streaming")
    expect(streaming).to_contain_text("word3", timeout=20000)
    first = len(streaming.inner_text())
    expect(streaming).to_contain_text("word8", timeout=20000)
    assert len(streaming.inner_text()) > first  # tokens arrive one after another
    page.screenshot(path=str(screens / "playground-streaming.png"))
    page.click("#pg-stop")
    stopped = last_answer(page)
    expect(stopped.locator(".pg-figures")).to_contain_text("stopped", timeout=10000)
    text = stopped.inner_text()
    assert "word299" not in text
    time.sleep(1.0)
    assert last_answer(page).inner_text() == text
    deadline = time.monotonic() + 10
    stats = before
    while time.monotonic() < deadline:
        stats = requests.get(f"{fake_chat}/_stats", timeout=5).json()
        if stats["cut"] > before["cut"] and stats["open"] == 0:
            break
        time.sleep(0.2)
    assert stats["cut"] == before["cut"] + 1 and stats["open"] == 0, stats
    expect(page.locator("#pg-send")).to_be_visible()
    page.screenshot(path=str(screens / "playground-stopped.png"))

    # 3. compare mode: two models stream side by side, one table of figures
    page.goto(f"{playground_gateway}/playground/compare")
    page.select_option("#pg-cmp-model-0", "fast-alpha")
    page.select_option("#pg-cmp-model-1", "fast-beta")
    page.fill("#pg-input", "Compare *this*")
    page.click("#pg-send")
    expect(page.locator(".pg-compare-col.is-done")).to_have_count(2, timeout=30000)
    rows = page.locator("#pg-compare-table tbody tr")
    expect(rows).to_have_count(2)
    for i, (model, deployment) in enumerate((("fast-alpha", "Fake One / fast-alpha"),
                                             ("fast-beta", "Fake Two / fast-beta"))):
        cells = rows.nth(i).locator("td")
        expect(cells.nth(0)).to_have_text(model)
        expect(cells.nth(1)).to_have_text(deployment)
        expect(cells.nth(6)).to_contain_text("$0.0000")
        expect(cells.nth(8)).to_have_text("ok")
        assert re.fullmatch(r"\d+ / \d+", cells.nth(4).inner_text())
    expect(page.locator(".pg-compare-col").nth(1).locator(".pg-md em")).to_have_text("this")
    page.screenshot(path=str(screens / "playground-compare.png"), full_page=True)
    assert not errors, errors
