"""The seed documents' Python scripts run unchanged against imagegate (only URL and key swapped).

The scripts are read at test time from ``../shared/seeds/*.md`` beside the repository
(flattened web pages), so a change to the seeds is picked up without editing this file.
Each script runs as a subprocess in ``tmp_path`` with the interpreter running the tests.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from tests.conftest import ADMIN_KEY, GatewayFactory, LiveGateway, image_bytes, service_missing

# `shared/` lies beside the repository's root (here and in CI alike).
SEEDS_DIR = Path(
    os.environ.get("IMAGEGATE_SEEDS_DIR") or Path(__file__).resolve().parents[2] / "shared" / "seeds"
)
IMAGES_SEED = SEEDS_DIR / "images-api.md"
CHAT_SEED = SEEDS_DIR / "chat-image-api.md"

SEED_BASE_URLS = ("https://api.aiearth.dev/v1/", "https://api.aiearth.dev/v1")
SEED_KEY = "sk-your-api-key"
SEED_IMAGE_URL = re.compile(r"https://filesystem\.site/cdn/[^\s'\"]+")
SEED_CHAT_IMAGE_REF = "https://example.com/source-image.png"
SCRIPT_TIMEOUT_S = 120

pytestmark = pytest.mark.usefixtures("seed_documents")


# --- extracting the scripts ------------------------------------------------------------------


def _is_code_start(line: str) -> bool:
    return line.startswith(("import ", "from "))


def _is_prose(line: str) -> bool:
    """A line of the page around a script: non-empty, at column 0, not starting with ASCII.

    Code at column 0 always starts with an ASCII character (a name, keyword, ``#``, a bracket
    or a quote); the page's headings and sentences ("典型返回", "编辑效果示意") start with CJK.
    """
    return bool(line) and not line[0].isspace() and not line[0].isascii()


def extract_python_blocks(markdown: str) -> list[str]:
    """The scripts that follow each "Python 示例" heading, in page order; each compiles."""
    lines = markdown.splitlines()
    blocks: list[str] = []
    index = 0
    while index < len(lines):
        if lines[index].strip() != "Python 示例":
            index += 1
            continue
        start = index + 1
        while start < len(lines) and not _is_code_start(lines[start]):
            start += 1
        assert start < len(lines), "no script after a 'Python 示例' heading"
        end = start + 1
        while end < len(lines) and not _is_prose(lines[end]):
            end += 1
        code = "\n".join(lines[start:end]).rstrip() + "\n"
        compile(code, f"<seed script at line {start + 1}>", "exec")
        blocks.append(code)
        index = end
    return blocks


def extract_first_curl_body(markdown: str) -> dict[str, Any]:
    """The JSON body (``-d '…'``) of the first curl example of a page."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("-d '{"))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].rstrip().endswith("}'"))
    body = "\n".join(lines[start : end + 1]).strip()
    body = body.removeprefix("-d '").removesuffix("'")
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def swap_endpoint(code: str, gateway: LiveGateway, key: str) -> str:
    """Replace only the base URL and the API key (the trailing slash is kept as written)."""
    assert SEED_KEY in code, "the script no longer uses the placeholder key"
    assert any(url in code for url in SEED_BASE_URLS), "the script no longer uses the seed base URL"
    code = code.replace(SEED_BASE_URLS[0], f"{gateway.url}/v1/")
    code = code.replace(SEED_BASE_URLS[1], f"{gateway.url}/v1")
    return code.replace(SEED_KEY, key)


def run_script(code: str, tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / name
    script.write_text(code, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONIOENCODING": "utf-8",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=SCRIPT_TIMEOUT_S,
        env=env,
    )
    assert result.returncode == 0, (
        f"{name} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def open_saved_image(path: Path) -> Image.Image:
    assert path.is_file(), f"{path.name} was not saved"
    image = Image.open(path)
    image.load()
    return image


def assert_images_response_log(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"{path.name} was not written"
    body: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(body.get("created"), int)
    assert isinstance(body.get("data"), list) and body["data"]
    return body


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_documents() -> Path:
    """The seeds folder; skips without it, fails under CI=true (CI checks ``shared/`` out beside us)."""
    if not SEEDS_DIR.is_dir():
        service_missing(f"seed documents not found in {SEEDS_DIR}")
    return SEEDS_DIR


@pytest.fixture
def seed_gateway(make_gateway: GatewayFactory) -> LiveGateway:
    """A gateway serving the seeds' model names, with the demo provider as the upstream."""
    return make_gateway(
        channels=[{"name": "demo-gpt", "provider": "demo", "models": ["gpt-image-2"]}],
        models={
            "gpt-image-2": {"sizes": "custom"},
            "gpt-image-2-chat": {"kind": "chat-image", "image_model": "gpt-image-2"},
        },
    )


@pytest.fixture
def seed_key(seed_gateway: LiveGateway) -> str:
    return seed_gateway.create_key("seeds")


@pytest.fixture
def hosted_webp_url(seed_gateway: LiveGateway) -> str:
    """A WebP image hosted by the gateway itself (stands in for the seeds' image hosts)."""
    response = requests.post(
        f"{seed_gateway.url}/v1/images/generations",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json={
            "model": "gpt-image-2",
            "prompt": "a bottle of body lotion on a table",
            "size": "1024x1024",
            "output_format": "webp",
            "response_format": "url",
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    url: str = response.json()["data"][0]["url"]
    assert url.startswith(seed_gateway.url), url
    fetched = requests.get(url, timeout=30)
    assert fetched.status_code == 200
    assert Image.open(io.BytesIO(fetched.content)).format == "WEBP"
    return url


# --- the extractor itself --------------------------------------------------------------------


def test_extractor_finds_every_seed_script() -> None:
    images = extract_python_blocks(IMAGES_SEED.read_text(encoding="utf-8"))
    chat = extract_python_blocks(CHAT_SEED.read_text(encoding="utf-8"))
    assert len(images) == 2
    assert len(chat) == 1
    assert "/images/generations" in images[0] and "generated_image.webp" in images[0]
    assert "/images/edits" in images[1] and "edited_image_" in images[1]
    assert "client.chat.completions.create" in chat[0]
    for code in (*images, *chat):
        assert "典型返回" not in code and "编辑效果示意" not in code


# --- images seed -----------------------------------------------------------------------------


def test_images_seed_generation_script(seed_gateway: LiveGateway, seed_key: str, tmp_path: Path) -> None:
    code = extract_python_blocks(IMAGES_SEED.read_text(encoding="utf-8"))[0]
    result = run_script(swap_endpoint(code, seed_gateway, seed_key), tmp_path, "seed_generate.py")

    assert "请求成功!" in result.stdout, result.stdout
    body = assert_images_response_log(tmp_path / "response_create.txt")
    assert body["data"][0]["url"].startswith(seed_gateway.url)
    image = open_saved_image(tmp_path / "generated_image.webp")
    assert image.size == (1024, 1536)


def test_images_seed_edit_script(
    seed_gateway: LiveGateway, seed_key: str, hosted_webp_url: str, tmp_path: Path
) -> None:
    code = extract_python_blocks(IMAGES_SEED.read_text(encoding="utf-8"))[1]
    assert SEED_IMAGE_URL.search(code), "the edit script no longer downloads its input image"
    code = SEED_IMAGE_URL.sub(hosted_webp_url, swap_endpoint(code, seed_gateway, seed_key))
    result = run_script(code, tmp_path, "seed_edit.py")

    assert "编辑成功!" in result.stdout, result.stdout
    body = assert_images_response_log(tmp_path / "response_edit.txt")
    assert len(body["data"]) == 1
    image = open_saved_image(tmp_path / "edited_image_1.png")
    assert image.format == "PNG"
    assert image.size == (1024, 1024)
    assert has_alpha(image), f"background=transparent but the PNG has mode {image.mode}"


# --- chat-image seed -------------------------------------------------------------------------

MARKDOWN_IMAGE = re.compile(r"!\[image\]\((http[^)\s]+)\)")


def _printed_json(stdout: str) -> dict[str, Any]:
    """The script prints ``json.dumps(response, indent=2)`` and then the content: decode the first."""
    start = stdout.index("{")
    parsed, _ = json.JSONDecoder().raw_decode(stdout[start:])
    assert isinstance(parsed, dict)
    return parsed


def test_chat_seed_script(
    seed_gateway: LiveGateway, seed_key: str, hosted_webp_url: str, tmp_path: Path
) -> None:
    code = extract_python_blocks(CHAT_SEED.read_text(encoding="utf-8"))[0]
    assert SEED_CHAT_IMAGE_REF in code
    code = swap_endpoint(code, seed_gateway, seed_key).replace(SEED_CHAT_IMAGE_REF, hosted_webp_url)
    result = run_script(code, tmp_path, "seed_chat.py")

    response = _printed_json(result.stdout)
    assert response["object"] == "chat.completion"
    content = response["choices"][0]["message"]["content"]
    match = MARKDOWN_IMAGE.search(content)
    assert match, content
    fetched = requests.get(match.group(1), timeout=30)
    assert fetched.status_code == 200
    assert Image.open(io.BytesIO(fetched.content)).size == (3840, 2160)


def test_chat_seed_curl_body(seed_gateway: LiveGateway, seed_key: str) -> None:
    body = extract_first_curl_body(CHAT_SEED.read_text(encoding="utf-8"))
    assert body["model"] == "gpt-image-2-chat"
    png = base64.b64encode(image_bytes((256, 256))).decode()
    for part in body["messages"][-1]["content"]:
        if part["type"] == "image_url":
            assert part["image_url"]["url"] == SEED_CHAT_IMAGE_REF
            part["image_url"]["url"] = f"data:image/png;base64,{png}"

    response = requests.post(
        f"{seed_gateway.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {seed_key}", "Content-Type": "application/json"},
        json=body,
        timeout=SCRIPT_TIMEOUT_S,
    )
    assert response.status_code == 200, response.text
    content = response.json()["choices"][0]["message"]["content"]
    assert MARKDOWN_IMAGE.search(content), content
