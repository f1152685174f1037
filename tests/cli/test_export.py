"""``wskit asyncapi`` (and, once ``wskit.export.typescript`` exists, ``wskit types``).

The document's validity against the AsyncAPI specification is the exporter's suite's
business (the official parser); here: the command writes it, takes the settings as ``run``
does, writes ``-o FILE``, and turns what the exporter cannot express into one line.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import APP, one_error_line, wskit


def _document(*args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = wskit("asyncapi", APP, *args, env=env)
    assert done.returncode == 0, done.stderr
    document: dict[str, object] = json.loads(done.stdout)
    return document


def test_asyncapi_writes_the_document_sorted_and_indented() -> None:
    """stdout is the AsyncAPI 3 document: JSON with sorted keys, indented by 2, every routed and
    emitted message in it."""
    done = wskit("asyncapi", APP)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["asyncapi"].startswith("3.")
    assert done.stdout == json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert {"ECHO", "ECHOED", "POST", "NEWS", "PID", "PID_IS"} <= set(document["components"]["messages"])


def test_asyncapi_takes_the_settings_like_run() -> None:
    """The server comes from --port/--path over PORT/WS_PATH, as `wskit run` would serve it."""
    document = _document("--port", "9100", "--path", "/ws", env={"PORT": "9200", "WS_PATH": "/other"})
    assert document["servers"] == {"default": {"host": "127.0.0.1:9100", "protocol": "ws"}}
    channel = next(iter(document["channels"].values()))  # type: ignore[attr-defined]
    assert channel["address"] == "/ws"


def test_asyncapi_server_url_and_title() -> None:
    """--server-url names the public server; --title the document."""
    document = _document("--server-url", "wss://chat.example.com", "--title", "Chat")
    assert document["servers"] == {"default": {"host": "chat.example.com", "protocol": "wss"}}
    assert document["info"]["title"] == "Chat"  # type: ignore[index]


def test_asyncapi_output_file(tmp_path: Path) -> None:
    """-o FILE writes the same document to FILE and nothing to stdout."""
    target = tmp_path / "contract.json"
    done = wskit("asyncapi", APP, "-o", str(target))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert json.loads(target.read_text()) == _document()


def test_asyncapi_schema_it_cannot_express_is_one_line(tmp_path: Path) -> None:
    """A field checked by a Python function: one line naming the message, the field and why; exit 1."""
    (tmp_path / "odd.py").write_text(
        "from typing import Annotated\n"
        "from pydantic import AfterValidator, BaseModel\n"
        "from wskit import Context, Router, message\n"
        "class Post(BaseModel):\n"
        "    text: Annotated[str, AfterValidator(lambda s: s.strip())]\n"
        "router = Router()\n"
        "@router.on(message('POST', Post))\n"
        "async def post(ctx: Context[Post]) -> None: ...\n"
    )
    done = wskit("asyncapi", "odd:router", "-o", str(tmp_path / "out.json"), cwd=tmp_path)
    assert done.returncode == 1
    line = one_error_line(done, "asyncapi")
    assert "'POST'" in line and "Post.text" in line and "Python function" in line, line
    assert not (tmp_path / "out.json").exists()
