"""End-to-end in Debian's chromium through Playwright: the acceptance path of the console.

Screenshots of every page at 1280×800 and 390×844 go to ``tests/console/artifacts/`` (ignored by
git). Every request the browser makes must stay on the gateway's own origin.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveGateway
from tests.console.helpers import make_key

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
XSS = "<img src=x onerror=alert(1)>"
VIEWPORTS = {"desktop": (1280, 800), "mobile": (390, 844)}

pytestmark = pytest.mark.slow


@pytest.fixture
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: scripts/test.sh installs it with apt-get")
    shutil.rmtree(ARTIFACTS, ignore_errors=True)  # only this run's screenshots
    ARTIFACTS.mkdir()
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


def png(size: tuple[int, int], alpha: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", size, (40, 90, 200, alpha)).save(buffer, "PNG")
    return buffer.getvalue()


def shoot(page: object, name: str) -> None:
    for label, (width, height) in VIEWPORTS.items():
        page.set_viewport_size({"width": width, "height": height})  # type: ignore[attr-defined]
        page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=False)  # type: ignore[attr-defined]
    page.set_viewport_size({"width": 1280, "height": 800})  # type: ignore[attr-defined]


@pytest.fixture
def admin_secret(gateway: LiveGateway) -> str:
    # Made before the browser starts: sync Playwright keeps an event loop running in this thread.
    return make_key(gateway, "ops", admin=True)


def test_console_end_to_end(gateway: LiveGateway, admin_secret: str, browser: object) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")  # type: ignore[attr-defined]
    page = context.new_page()
    foreign: list[str] = []
    dialogs: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith((gateway.url, "data:", "blob:")) else foreign.append(r.url),
    )
    page.on("console", lambda m: print("console:", m.text))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    url = gateway.url

    # Sign in as admin.
    page.goto(f"{url}/console")
    shoot(page, "login")
    page.get_by_test_id("login-key").fill(admin_secret)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{url}/console/overview")

    # Create a key: its secret is shown once.
    page.get_by_test_id("nav-keys").click()
    page.get_by_test_id("key-name").fill("alice")
    page.get_by_test_id("key-create").click()
    secret_box = page.get_by_test_id("key-secret")
    secret_box.wait_for()
    secret = secret_box.text_content() or ""
    assert secret.startswith("sk-")
    shoot(page, "keys-secret")
    page.reload()
    assert secret not in page.content()
    shoot(page, "keys")
    for name in ("groups", "channels", "prices", "models", "tasks", "usage"):
        page.goto(f"{url}/console/{name}")
        shoot(page, name)

    # Sign out, sign in with the new key.
    page.get_by_test_id("logout").click()
    page.wait_for_url(f"{url}/console/login")
    page.get_by_test_id("login-key").fill(secret)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{url}/console/playground")

    # Generate in the playground (with live previews) and see the image; the prompt is a script.
    page.get_by_test_id("prompt").fill(XSS)
    page.get_by_test_id("size").select_option("1024x1024")
    page.get_by_test_id("generate").click()
    image = page.get_by_test_id("result-image").first
    try:
        image.wait_for(timeout=15_000)
    except playwright_api.TimeoutError:
        shoot(page, "playground-failed")
        raise AssertionError(page.locator("#error").text_content() or "no image and no error") from None
    # The image really loaded (the strict CSP forbids wait_for_function's eval, so poll).
    for _ in range(50):
        if image.evaluate("img => img.complete && img.naturalWidth > 0"):
            break
        page.wait_for_timeout(100)
    assert image.evaluate("img => img.naturalWidth") > 0
    # A chat-image model from the same form.
    page.locator("#model").select_option("demo-chat")
    page.get_by_test_id("prompt").fill("一只在窗台上的猫")
    page.get_by_test_id("generate").click()
    page.get_by_test_id("result-image").nth(1).wait_for()
    # A custom size is checked against the model's rule as it is typed.
    page.get_by_test_id("size").select_option("custom")
    page.locator("#custom-size").fill("1000x1000")
    assert "16" in (page.locator("#size-error").text_content() or "")
    page.locator("#custom-size").fill("1024x1024")
    assert (page.locator("#size-error").text_content() or "") == ""
    page.get_by_test_id("size").select_option("1024x1024")
    # An edit with an uploaded image and mask, on a transparent background.
    page.locator("#model").select_option("demo")
    page.locator('input[name="mode"][value="edit"]').check()
    page.locator('input[name="images"]').set_input_files(
        {"name": "photo.png", "mimeType": "image/png", "buffer": png((320, 320), 255)}
    )
    page.locator('input[name="mask"]').set_input_files(
        {"name": "mask.png", "mimeType": "image/png", "buffer": png((320, 320), 0)}
    )
    page.locator('select[name="background"]').select_option("transparent")
    page.get_by_test_id("prompt").fill("换成明亮的摄影棚")
    page.get_by_test_id("generate").click()
    page.get_by_test_id("result-image").nth(2).wait_for()
    shoot(page, "playground")

    # Find the request in the log; the prompt shows as text.
    page.get_by_test_id("nav-logs").click()
    rows = page.get_by_test_id("log-row")
    for _ in range(10):  # the request log is written in batches every 0.5 s
        if rows.count() == 3:
            break
        page.wait_for_timeout(300)
        page.reload()
    assert rows.count() == 3
    # The log page asks for nothing more once loaded: no polling.
    after_load: list[str] = []
    page.on("request", lambda r: after_load.append(r.url))
    page.wait_for_timeout(1500)
    assert after_load == []
    shoot(page, "logs")
    page.get_by_test_id("log-gallery").click()
    page.get_by_test_id("log-gallery-item").first.wait_for()
    shoot(page, "gallery")
    page.get_by_test_id("log-gallery-item").last.click()  # the oldest: the first generation
    detail = page.get_by_test_id("log-detail")
    detail.wait_for()
    assert XSS in (page.get_by_test_id("detail-prompt").text_content() or "")
    assert page.locator("img[src=x]").count() == 0
    shoot(page, "detail")

    # Switch to 简体中文.
    page.get_by_test_id("lang-switch").click()
    page.wait_for_load_state()
    assert "请求" in page.content()
    page.goto(f"{url}/console/playground")
    assert "试验台" in page.content()
    shoot(page, "playground-zh")

    # The non-admin key cannot open admin pages, even by URL.
    assert page.get_by_test_id("nav-keys").count() == 0
    for name in ("keys", "overview", "channels"):
        response = page.goto(f"{url}/console/{name}")
        assert response is not None and response.status == 403
    assert page.get_by_test_id("key-create").count() == 0

    # Back as admin: the overview and the full log with this run's requests in them.
    page.goto(f"{url}/console/lang/en")
    page.get_by_test_id("logout").click()
    page.get_by_test_id("login-key").fill(admin_secret)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{url}/console/overview")
    assert page.locator("svg rect.bar").count() > 0
    shoot(page, "overview")
    page.goto(f"{url}/console/logs")
    assert page.get_by_test_id("log-row").count() == 3
    shoot(page, "logs-admin")

    assert dialogs == []
    assert foreign == [], foreign
    context.close()
