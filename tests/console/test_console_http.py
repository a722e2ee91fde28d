"""The console over plain HTTP: sign-in, sessions, CSRF, admin checks, escaping, pages, exports."""

from __future__ import annotations

import csv
import io

import requests

from tests.conftest import ADMIN_KEY, LiveGateway, image_bytes
from tests.console.helpers import csrf_of, make_key, page_csrf, sign_in

XSS = "<img src=x onerror=alert(1)>"


def generate(
    session: requests.Session, gateway: LiveGateway, prompt: str, **fields: object
) -> requests.Response:
    csrf = page_csrf(session, f"{gateway.url}/console/playground")
    body = {"model": "demo", "prompt": prompt, "size": "1024x1024", "response_format": "url", **fields}
    return session.post(
        f"{gateway.url}/console/api/v1/images/generations", json=body, headers={"X-CSRF-Token": csrf}
    )


def test_root_redirects_to_the_console_and_the_console_to_sign_in(gateway: LiveGateway) -> None:
    answer = requests.get(f"{gateway.url}/", allow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "/console"
    answer = requests.get(f"{gateway.url}/console/logs", allow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login"


def test_sign_in_sets_a_strict_httponly_cookie_that_is_not_the_key(gateway: LiveGateway) -> None:
    secret = make_key(gateway, admin=True)
    session = requests.Session()
    form = session.get(f"{gateway.url}/console/login")
    csp = form.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    answer = session.post(
        f"{gateway.url}/console/login",
        data={"key": secret, "csrf": csrf_of(form.text)},
        allow_redirects=False,
    )
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert secret not in cookie
    assert session.get(f"{gateway.url}/console/keys").status_code == 200


def test_sign_in_without_the_form_token_is_refused(gateway: LiveGateway) -> None:
    secret = make_key(gateway, admin=True)
    answer = requests.post(f"{gateway.url}/console/login", data={"key": secret}, allow_redirects=False)
    assert answer.status_code == 403
    assert "imagegate_session" not in answer.headers.get("set-cookie", "")


def test_wrong_keys_are_refused_and_attempts_are_rate_limited(gateway: LiveGateway) -> None:
    session = requests.Session()
    statuses = []
    for _ in range(12):
        form = session.get(f"{gateway.url}/console/login")
        answer = session.post(
            f"{gateway.url}/console/login", data={"key": "sk-wrong", "csrf": csrf_of(form.text)}
        )
        statuses.append(answer.status_code)
    assert statuses[0] == 401
    assert statuses[-1] == 429


def test_the_configured_admin_key_signs_in_too(gateway: LiveGateway) -> None:
    session = sign_in(gateway, ADMIN_KEY)
    assert session.get(f"{gateway.url}/console/overview").status_code == 200


def test_a_client_key_cannot_open_admin_pages_or_the_admin_api(gateway: LiveGateway) -> None:
    session = sign_in(gateway, make_key(gateway, "client"))
    for page in ("overview", "keys", "groups", "channels", "prices"):
        answer = session.get(f"{gateway.url}/console/{page}")
        assert answer.status_code == 403, page
        assert "nav-keys" not in answer.text
    csrf = page_csrf(session, f"{gateway.url}/console/playground")
    answer = session.post(
        f"{gateway.url}/console/api/admin/keys",
        json={"name": "x", "admin": True},
        headers={"X-CSRF-Token": csrf},
    )
    assert answer.status_code == 403


def test_pass_through_needs_the_csrf_header(gateway: LiveGateway) -> None:
    session = sign_in(gateway, make_key(gateway, "client"))
    body = {"model": "demo", "prompt": "a fox"}
    answer = session.post(f"{gateway.url}/console/api/v1/images/generations", json=body)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "csrf_failed"


def test_playground_request_is_logged_with_its_detail_and_prompts_are_escaped(gateway: LiveGateway) -> None:
    session = sign_in(gateway, make_key(gateway, "client"))
    answer = generate(session, gateway, XSS)
    assert answer.status_code == 200, answer.text
    request_id = answer.headers["x-request-id"]
    url = answer.json()["data"][0]["url"]
    gateway_flush(gateway)
    logs = session.get(f"{gateway.url}/console/logs")
    assert logs.text.count('data-testid="log-row"') == 1
    detail = session.get(f"{gateway.url}/console/logs/{request_id}")
    assert detail.status_code == 200
    assert XSS not in detail.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in detail.text
    path = url.split("127.0.0.1", 1)[1].split("/", 1)[1]
    assert f"/{path}" in detail.text
    gallery = session.get(f"{gateway.url}/console/logs?view=gallery")
    assert gallery.text.count('data-testid="log-gallery-item"') == 1
    assert XSS not in gallery.text


def test_streamed_playground_request_keeps_its_output(gateway: LiveGateway) -> None:
    session = sign_in(gateway, make_key(gateway, "client"))
    answer = generate(session, gateway, "晨雾中的山", stream=True, partial_images=2)
    assert answer.status_code == 200
    assert answer.text.count("image_generation.partial_image") >= 2
    gateway_flush(gateway)
    gallery = session.get(f"{gateway.url}/console/logs?view=gallery")
    assert gallery.text.count('data-testid="log-gallery-item"') == 1
    assert "晨雾中的山" in gallery.text


def test_a_key_sees_only_its_own_requests(gateway: LiveGateway) -> None:
    mine = sign_in(gateway, make_key(gateway, "mine"))
    theirs = sign_in(gateway, make_key(gateway, "theirs"))
    request_id = generate(theirs, gateway, "theirs only").headers["x-request-id"]
    gateway_flush(gateway)
    assert mine.get(f"{gateway.url}/console/logs").text.count('data-testid="log-row"') == 0
    assert mine.get(f"{gateway.url}/console/logs/{request_id}").status_code == 404
    admin = sign_in(gateway, make_key(gateway, "ops", admin=True))
    assert admin.get(f"{gateway.url}/console/logs").text.count('data-testid="log-row"') == 1


def test_logs_and_usage_export_as_csv(gateway: LiveGateway) -> None:
    session = sign_in(gateway, make_key(gateway, "client"))
    generate(session, gateway, "=HYPERLINK(evil)")
    gateway_flush(gateway)
    logs = session.get(f"{gateway.url}/console/logs.csv")
    assert logs.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(logs.text)))
    assert rows[0][0] == "id" and len(rows) == 2 and rows[1][4] == "demo"
    usage = list(csv.reader(io.StringIO(session.get(f"{gateway.url}/console/usage.csv").text)))
    assert usage[0][0] == "day" and usage[1][2] == "demo" and usage[1][3] == "1"


def test_every_page_renders_in_both_languages(gateway: LiveGateway) -> None:
    session = sign_in(gateway, make_key(gateway, "ops", admin=True))
    generate(session, gateway, "a fox")
    gateway_flush(gateway)
    pages = ["overview", "playground", "models", "usage", "logs", "logs?view=gallery", "tasks"]
    pages += ["keys", "groups", "channels", "prices"]
    for lang, word in (("en", "Playground"), ("zh", "试验台")):
        session.get(f"{gateway.url}/console/lang/{lang}")
        for page in pages:
            answer = session.get(f"{gateway.url}/console/{page}")
            assert answer.status_code == 200, (page, answer.text[:500])
            assert word in answer.text, page


def test_language_follows_accept_language_and_the_switch_is_remembered(gateway: LiveGateway) -> None:
    answer = requests.get(f"{gateway.url}/console/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    assert "登录" in answer.text
    session = requests.Session()
    session.get(f"{gateway.url}/console/lang/zh?next=https://evil.example/")
    assert "登录" in session.get(f"{gateway.url}/console/login").text
    redirect = requests.get(f"{gateway.url}/console/lang/zh?next=//evil.example/", allow_redirects=False)
    assert redirect.headers["location"] == "/console"


def test_sign_out_ends_the_session(gateway: LiveGateway) -> None:
    session = sign_in(gateway, make_key(gateway, "client"))
    csrf = page_csrf(session, f"{gateway.url}/console/playground")
    token = session.cookies["imagegate_session"]
    session.post(f"{gateway.url}/console/logout", data={"csrf": csrf})
    again = requests.get(
        f"{gateway.url}/console/playground", cookies={"imagegate_session": token}, allow_redirects=False
    )
    assert again.status_code == 303


def gateway_flush(gateway: LiveGateway) -> None:
    """Wait for the request log's batch writer (every 0.5 s)."""
    import time

    time.sleep(0.8)


def test_an_admin_disables_and_enables_a_channel(gateway: LiveGateway) -> None:
    session = sign_in(gateway, make_key(gateway, "ops", admin=True))
    csrf = page_csrf(session, f"{gateway.url}/console/channels")
    assert session.post(f"{gateway.url}/console/channels/demo/disable", data={}).status_code == 403
    session.post(f"{gateway.url}/console/channels/demo/disable", data={"csrf": csrf})
    client = sign_in(gateway, make_key(gateway, "app"))
    assert generate(client, gateway, "a fox").status_code == 503
    assert 'data-testid="channel-enable"' in session.get(f"{gateway.url}/console/channels").text
    session.post(f"{gateway.url}/console/channels/demo/enable", data={"csrf": csrf})
    assert generate(client, gateway, "a fox").status_code == 200
    plain = sign_in(gateway, make_key(gateway, "other"))
    other_csrf = page_csrf(plain, f"{gateway.url}/console/playground")
    answer = plain.post(f"{gateway.url}/console/channels/demo/disable", data={"csrf": other_csrf})
    assert answer.status_code == 403


def _png_data_url(size: tuple[int, int], alpha: int = 255) -> str:
    import base64

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGBA", size, (30, 120, 200, alpha)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_a_playground_edit_keeps_its_inputs_and_mask_for_the_detail_view(gateway: LiveGateway) -> None:
    session = sign_in(gateway, make_key(gateway, "client"))
    csrf = page_csrf(session, f"{gateway.url}/console/playground")
    body = {
        "model": "demo",
        "prompt": "把背景换成明亮的摄影棚",
        "images": [{"image_url": _png_data_url((256, 256))}],
        "mask": {"image_url": _png_data_url((256, 256), alpha=0)},
        "background": "transparent",
        "output_format": "png",
        "response_format": "url",
    }
    answer = session.post(
        f"{gateway.url}/console/api/v1/images/edits", json=body, headers={"X-CSRF-Token": csrf}
    )
    assert answer.status_code == 200, answer.text
    request_id = answer.headers["x-request-id"]
    gateway_flush(gateway)
    detail = session.get(f"{gateway.url}/console/logs/{request_id}").text
    assert "把背景换成明亮的摄影棚" in detail
    assert detail.count('alt="image"') == 1 and detail.count('alt="mask"') == 1
    stored = {part for part in detail.split('"') if part.startswith("/files/")}
    assert len(stored) == 3  # the image, the mask and the output, all served by this gateway
    assert all(session.get(f"{gateway.url}{path}").status_code == 200 for path in stored)


def test_a_pass_through_answer_carries_the_logged_request_id_once(gateway: LiveGateway) -> None:
    session = sign_in(gateway, make_key(gateway, "client"))
    answer = generate(session, gateway, "one id")
    assert answer.headers["x-request-id"].startswith("req_") and "," not in answer.headers["x-request-id"]
    gateway_flush(gateway)
    assert session.get(f"{gateway.url}/console/logs/{answer.headers['x-request-id']}").status_code == 200


def test_key_names_and_upstream_errors_are_shown_as_text(gateway: LiveGateway) -> None:
    make_key(gateway, "<script>alert('name')</script>")
    admin = sign_in(gateway, make_key(gateway, "ops", admin=True))
    keys = admin.get(f"{gateway.url}/console/keys").text
    assert "<script>alert('name')</script>" not in keys
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in keys


def test_a_chat_image_request_from_the_playground_is_kept(gateway: LiveGateway) -> None:
    session = sign_in(gateway, make_key(gateway, "client"))
    csrf = page_csrf(session, f"{gateway.url}/console/playground")
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "1024x1024 '一只猫'"}]}
    answer = session.post(
        f"{gateway.url}/console/api/v1/chat/completions", json=body, headers={"X-CSRF-Token": csrf}
    )
    assert answer.status_code == 200, answer.text
    assert "![image](" in answer.json()["choices"][0]["message"]["content"]
    gateway_flush(gateway)
    detail = session.get(f"{gateway.url}/console/logs/{answer.headers['x-request-id']}").text
    assert "一只猫" in detail and 'alt="output 1"' in detail


def test_page_views_do_not_spend_the_keys_rate_limit(gateway: LiveGateway) -> None:
    session = sign_in(gateway, make_key(gateway, "slow", rpm=2))
    for page in ("playground", "models", "usage", "logs", "logs?view=gallery"):
        assert session.get(f"{gateway.url}/console/{page}", allow_redirects=False).status_code == 200, page
    assert generate(session, gateway, "still allowed").status_code == 200


def test_the_session_cookie_is_secure_behind_https(gateway: LiveGateway) -> None:
    secret = make_key(gateway, "client")
    session = requests.Session()
    form = session.get(f"{gateway.url}/console/login")
    answer = session.post(
        f"{gateway.url}/console/login",
        data={"key": secret, "csrf": csrf_of(form.text)},
        headers={"X-Forwarded-Proto": "https"},
        allow_redirects=False,
    )
    assert answer.status_code == 303 and "Secure" in answer.headers["set-cookie"]


def test_requests_from_any_client_reach_the_gallery_and_detail(gateway: LiveGateway) -> None:
    secret = make_key(gateway, "sdk")
    client = gateway.client(api_key=secret)
    raw = client.images.with_raw_response.generate(model="demo", prompt="SDK 生成的海报", size="1024x1024")
    request_id = raw.headers["x-request-id"]
    streamed = client.images.generate(model="demo", prompt="streamed one", stream=True, partial_images=1)
    assert [event.type for event in streamed][-1] == "image_generation.completed"
    gateway_flush(gateway)
    session = sign_in(gateway, secret)
    detail = session.get(f"{gateway.url}/console/logs/{request_id}").text
    assert "SDK 生成的海报" in detail and 'alt="output 1"' in detail
    gallery = session.get(f"{gateway.url}/console/logs?view=gallery").text
    assert gallery.count('data-testid="log-gallery-item"') == 2
    assert "streamed one" in gallery


def test_an_sdk_multipart_edit_reaches_the_gallery_and_a_base64_answer_keeps_no_detail(
    gateway: LiveGateway,
) -> None:
    secret = make_key(gateway, "sdk-edits")
    client = gateway.client(api_key=secret)
    edit = client.images.with_raw_response.edit(
        model="demo", image=image_bytes((256, 256)), prompt="把天空涂成蓝色", response_format="url"
    )
    b64 = client.images.with_raw_response.generate(
        model="demo", prompt="only base64", response_format="b64_json"
    )
    gateway_flush(gateway)
    session = sign_in(gateway, secret)
    detail = session.get(f"{gateway.url}/console/logs/{edit.headers['x-request-id']}").text
    assert "把天空涂成蓝色" in detail and 'alt="output 1"' in detail
    gallery = session.get(f"{gateway.url}/console/logs?view=gallery").text
    assert gallery.count('data-testid="log-gallery-item"') == 1
    assert "only base64" not in gallery
    assert b64.headers["x-request-id"] in session.get(f"{gateway.url}/console/logs").text


def test_the_tasks_page_lists_the_keys_async_tasks(gateway: LiveGateway) -> None:
    secret = make_key(gateway, "tasks")
    submitted = requests.post(
        f"{gateway.url}/v1/images/generations/async",
        headers={"Authorization": f"Bearer {secret}", "Prefer": "wait=30"},
        json={"model": "demo", "prompt": "a task", "size": "1024x1024"},
        timeout=60,
    ).json()
    session = sign_in(gateway, secret)
    assert submitted["id"] in session.get(f"{gateway.url}/console/tasks").text
