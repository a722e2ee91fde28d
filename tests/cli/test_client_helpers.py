"""The client commands' small pure helpers: URL roots, error messages, file names and extensions."""

from __future__ import annotations

import pytest

from imagegate.cli.client.connection import api_root, error_message
from imagegate.cli.client.saving import image_extension, safe_name
from imagegate.cli.common import CliError
from tests.conftest import image_bytes


@pytest.mark.parametrize(
    ("given", "root"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1"),
        ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1"),
        ("https://gw.example.com/imagegate/v1", "https://gw.example.com/imagegate/v1"),
    ],
)
def test_a_bare_host_means_its_v1(given: str, root: str) -> None:
    assert api_root(given) == root


def test_error_messages_whole_or_unwrapped() -> None:
    envelope = {"error": {"message": "Invalid size", "type": "invalid_request_error"}}
    assert error_message(envelope) == "Invalid size"
    assert error_message(envelope["error"]) == "Invalid size"
    assert error_message({"error": "plain words"}) == "plain words"
    assert error_message("<html>") is None


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", "", ".hidden", "x" * 200])
def test_an_id_that_would_pick_the_directory_is_refused(name: str) -> None:
    with pytest.raises(CliError):
        safe_name(name)


def test_ids_name_files_as_they_are() -> None:
    assert safe_name("req_0123abcd") == "req_0123abcd"
    assert safe_name("task_01J9.x-y") == "task_01J9.x-y"


@pytest.mark.parametrize(("fmt", "extension"), [("PNG", "png"), ("JPEG", "jpeg"), ("WEBP", "webp")])
def test_the_extension_comes_from_the_bytes(fmt: str, extension: str) -> None:
    assert image_extension(image_bytes(fmt=fmt), fallback="gif") == extension


def test_unknown_bytes_take_the_fallback() -> None:
    assert image_extension(b"not an image", "png") == "png"
    assert image_extension(b"not an image") == "bin"
