"""Raw picows (a Cython WebSocket server) on uvloop with orjson."""

from __future__ import annotations

import orjson
from _common import HOST, parse_port, raise_fd_limit
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

topics: dict[str, set[WSTransport]] = {}


class Listener(WSListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.joined: list[str] = []

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if kind is not WSMsgType.TEXT and kind is not WSMsgType.BINARY:
            return
        data = orjson.loads(frame.get_payload_as_memoryview())
        kind_name = data["type"]
        if kind_name == "ECHO":
            reply = {"type": "ECHO_OK", "meta": {"correlationId": data["meta"]["correlationId"]}}
            reply["payload"] = data["payload"]
            transport.send(WSMsgType.TEXT, orjson.dumps(reply))
        elif kind_name == "PING":
            transport.send(WSMsgType.TEXT, orjson.dumps({"type": "PONG", "payload": data["payload"]}))
        elif kind_name == "SUB":
            topic = data["payload"]["topic"]
            topics.setdefault(topic, set()).add(transport)
            self.joined.append(topic)
            reply = {"type": "SUBBED", "meta": {"correlationId": data["meta"]["correlationId"]}}
            reply["payload"] = data["payload"]
            transport.send(WSMsgType.TEXT, orjson.dumps(reply))
        elif kind_name == "PUB":
            out = orjson.dumps({"type": "TICK", "payload": data["payload"]})
            for sub in topics.get(data["payload"]["topic"], ()):
                sub.send(WSMsgType.TEXT, out)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for topic in self.joined:
            topics.get(topic, set()).discard(transport)


def listener_factory(_request: WSUpgradeRequest) -> Listener:
    return Listener()


async def main() -> None:
    server = await ws_create_server(listener_factory, HOST, parse_port(), backlog=1024)
    await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    raise_fd_limit()
    uvloop.run(main())
