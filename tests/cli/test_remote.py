"""``wskit send``, ``request`` and ``listen`` against ``wskit run`` serving tests/cli/app.py."""

from __future__ import annotations

import json
import signal

from tests.cli.conftest import Running, one_error_line, wskit


def test_request_prints_the_answer_frame(server: str) -> None:
    """request prints the RPC's answer, the whole frame, as one line of JSON; exit 0."""
    done = wskit("request", server, "ECHO", '{"text": "héllo"}')
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer == {"type": "ECHOED", "meta": {"correlationId": "cli-1"}, "payload": {"text": "héllo"}}
    assert done.stdout.count("\n") == 1


def test_request_without_payload(server: str) -> None:
    """A message declared without a payload is requested with the JSON argument left out."""
    done = wskit("request", server, "PID")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["type"] == "PID_IS"


def test_request_progress_goes_to_stderr(server: str) -> None:
    """Progress frames are reported on stderr; stdout holds only the answer."""
    done = wskit("request", server, "WAIT", '{"ms": 10}')
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ['progress: {"stage": "waiting"}']
    assert json.loads(done.stdout)["payload"] == {"ms": 10}


def test_request_rpc_error_is_code_and_message_on_stderr(server: str) -> None:
    """An RPC_ERROR answer: CODE: message (and details) on one line of stderr, exit 1."""
    done = wskit("request", server, "MISSING", '{"text": "x"}')
    assert done.returncode == 1
    assert one_error_line(done, "request") == 'wskit request: error: NOT_FOUND: no such thing {"text": "x"}'
    assert done.stdout == ""


def test_request_timeout(server: str) -> None:
    """No answer within --timeout: one line saying so, exit 1 (and the request is cancelled)."""
    done = wskit("request", server, "WAIT", '{"ms": 5000}', "--timeout", "0.3")
    assert done.returncode == 1
    line = done.stderr.splitlines()[-1]
    assert line == "wskit request: error: no answer to WAIT within 0.3 s (--timeout); request cancelled"


def test_request_meta_is_sent(server: str) -> None:
    """--meta keys travel in the frame's meta: a correlationId given there is the one answered."""
    done = wskit("request", server, "ECHO", '{"text": "x"}', "--meta", '{"correlationId": "mine"}')
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["meta"] == {"correlationId": "mine"}


def test_send_is_confirmed(server: str) -> None:
    """send exits 0 once the server has handled the message, printing nothing."""
    done = wskit("send", server, "POST", '{"topic": "feed:x", "text": "hi"}')
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_send_refused_type(server: str) -> None:
    """A type the server does not handle is answered UNIMPLEMENTED: one line, exit 1."""
    done = wskit("send", server, "NOPE", "{}")
    assert done.returncode == 1
    assert one_error_line(done, "send").startswith("wskit send: error: the server refused NOPE: UNIMPLEMENTED: ")


def test_send_invalid_payload(server: str) -> None:
    """A payload the schema refuses: INVALID_ARGUMENT with the issues, on one line, exit 1."""
    done = wskit("send", server, "POST", '{"topic": 1}')
    assert done.returncode == 1
    line = one_error_line(done, "send")
    assert "INVALID_ARGUMENT" in line and '"topic"' in line and '"text"' in line


def test_listen_prints_publications_then_stops_at_count(server: str) -> None:
    """listen --subscribe prints each delivery as a JSON line and ends after --count, exit 0."""
    with Running("listen", server, "--subscribe", "feed:a", "--count", "2") as listener:
        listener.wait_for("^listening on ")
        assert "subscribed to feed:a" in listener.err
        for text in ("one", "two"):
            assert wskit("send", server, "POST", json.dumps({"topic": "feed:a", "text": text})).returncode == 0
        assert listener.wait() == 0
    frames = [json.loads(line) for line in listener.out]
    assert [f["payload"]["text"] for f in frames] == ["one", "two"]
    assert frames[0] == {"type": "NEWS", "meta": {"topic": "feed:a"}, "payload": {"text": "one"}}


def test_listen_duration_ends_it(server: str) -> None:
    """--duration: the listener ends by itself, exit 0, having printed nothing on a quiet socket."""
    done = wskit("listen", server, "--duration", "0.3")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_listen_ctrl_c_ends_cleanly(server: str) -> None:
    """SIGINT (Ctrl-C) ends a listener with exit 0 and no traceback."""
    with Running("listen", server) as listener:
        listener.wait_for("^listening on ")
        assert listener.stop(signal.SIGINT) == 0
    assert not any("Traceback" in line for line in listener.err), listener.err


def test_listen_refused_subscription(server: str) -> None:
    """A topic the router does not let clients subscribe to: PERMISSION_DENIED, one line, exit 1."""
    done = wskit("listen", server, "--subscribe", "secret:x")
    assert done.returncode == 1
    assert one_error_line(done, "listen").startswith(
        "wskit listen: error: cannot subscribe to 'secret:x': PERMISSION_DENIED: "
    )
