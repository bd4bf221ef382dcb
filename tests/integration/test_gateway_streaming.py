# Bodies through the gateway: Server-Sent Events and chunked responses arrive as they are sent,
# big bodies both ways stay intact, and WebSocket upgrades are relayed frame for frame.
import base64
import hashlib
import json
import os
import struct
import time

import pytest
import requests

import upstream_server
from gateway_harness import Gateway, Raw, Upstream, ws_frame, ws_read
from gateway_harness import module_processes  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def env(module_processes, tmp_path_factory):
    up = module_processes.add(Upstream("streamer"))
    config = f"""
_format_version: "3.0"
services:
  - name: stream
    url: {up.base}
    read_timeout: 10000
    routes:
      - name: stream
        paths: [/s]
"""
    gateway = module_processes.add(Gateway(tmp_path_factory.mktemp("gw-stream"), config)).start()
    return {"gateway": gateway, "up": up}


def test_sse_events_arrive_incrementally(env):
    gw = env["gateway"]
    start = time.monotonic()
    response = requests.get(gw.url("/s/sse?n=5&ms=300"), stream=True, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    events = []
    for line in response.iter_lines(chunk_size=1):
        if line:
            events.append((time.monotonic() - start, line))
    assert [e for _, e in events] == [b"data: %d" % i for i in range(5)]
    # The upstream sends the last event 1.2 s after the first: the first must not wait for it.
    assert events[0][0] < 0.6, events
    assert events[-1][0] - events[0][0] >= 1.0, events
    assert all(b[0] - a[0] >= 0.15 for a, b in zip(events, events[1:])), events


def test_chunked_response_is_streamed(env):
    gw = env["gateway"]
    raw = Raw(gw.port)
    try:
        start = time.monotonic()
        raw.send(b"GET /s/chunked?n=5&ms=250 HTTP/1.1\r\nHost: gw\r\n\r\n")
        status, headers, body, pieces = raw.response()
        # The connection stays usable after a chunked response.
        raw.send(b"GET /s/after HTTP/1.1\r\nHost: gw\r\n\r\n")
        status_after, _, body_after, _ = raw.response()
    finally:
        raw.close()
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    assert body == b"".join(b"chunk %d\n" % i for i in range(5))
    assert len(pieces) >= 5
    assert pieces[0][0] - start < 0.6
    assert pieces[-1][0] - pieces[0][0] >= 0.8
    assert status_after == 200 and json.loads(body_after)["path"] == "/after"


@pytest.mark.parametrize("chunked", [0, 1])
def test_big_response_is_intact(env, chunked):
    gw = env["gateway"]
    size = 5 * 1024 * 1024 + 7
    response = requests.get(gw.url(f"/s/big?bytes={size}&chunked={chunked}"), timeout=30)
    assert response.status_code == 200
    if not chunked:
        assert response.headers["Content-Length"] == str(size)
    assert len(response.content) == size
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(
        upstream_server.big_content(size)).digest()


def test_big_response_streams_to_a_slow_reader(env):
    """A client reading slowly still gets every byte (back-pressure, not truncation)."""
    gw = env["gateway"]
    size = 8 * 1024 * 1024
    response = requests.get(gw.url(f"/s/big?bytes={size}"), stream=True, timeout=30)
    digest = hashlib.sha256()
    received = 0
    for i, piece in enumerate(response.iter_content(256 * 1024)):
        if i < 4:
            time.sleep(0.2)
        digest.update(piece)
        received += len(piece)
    assert received == size
    assert digest.digest() == hashlib.sha256(upstream_server.big_content(size)).digest()


def test_big_request_body_is_intact(env):
    """5 MB is far below request-size-limiting's default (128 MB); the gateway streams request
    bodies, so no smaller process-wide body cap may apply to proxied routes."""
    gw = env["gateway"]
    body = os.urandom(5 * 1024 * 1024 + 3)
    response = requests.post(gw.url("/s/upload"), data=body, timeout=30)
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["length"] == len(body)
    assert got["sha256"] == hashlib.sha256(body).hexdigest()


def test_chunked_request_body_is_intact(env):
    gw = env["gateway"]
    pieces = [os.urandom(100_000) for _ in range(10)]
    response = requests.post(gw.url("/s/upload"), data=iter(pieces), timeout=30)
    assert response.status_code == 200, response.text
    got = response.json()
    assert got["length"] == 1_000_000
    assert got["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest()


def ws_handshake(gw, path="/s/ws", key=None):
    key = key or base64.b64encode(os.urandom(16))
    raw = Raw(gw.port)
    raw.send(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nUpgrade: websocket\r\n"
        f"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    status, headers, _, _ = raw.response()
    return raw, status, headers, key


def test_websocket_echo_through_the_gateway(env):
    gw = env["gateway"]
    raw, status, headers, key = ws_handshake(gw, key=b"dGhlIHNhbXBsZSBub25jZQ==")
    try:
        assert status == 101
        assert headers["upgrade"].lower() == "websocket"
        assert "upgrade" in headers["connection"].lower()
        assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert headers["x-upstream"] == "streamer"

        raw.send(ws_frame(0x1, "hello ✓".encode()))
        assert ws_read(raw) == (True, 0x1, "hello ✓".encode())
        binary = bytes(range(256)) * 3
        raw.send(ws_frame(0x2, binary))
        assert ws_read(raw) == (True, 0x2, binary)
        large = os.urandom(200_000)
        raw.send(ws_frame(0x2, large, mask=b"\x01\x02\x03\x04"))
        assert ws_read(raw) == (True, 0x2, large)
        # Fragments keep their FIN bits and opcodes.
        raw.send(ws_frame(0x1, b"part1-", fin=False) + ws_frame(0x0, b"part2"))
        assert ws_read(raw) == (False, 0x1, b"part1-")
        assert ws_read(raw) == (True, 0x0, b"part2")
        raw.send(ws_frame(0x9, b"ping!"))
        assert ws_read(raw) == (True, 0xA, b"ping!")
        # Many small frames in one write.
        raw.send(b"".join(ws_frame(0x1, b"m%d" % i) for i in range(50)))
        for i in range(50):
            assert ws_read(raw) == (True, 0x1, b"m%d" % i)

        raw.send(ws_frame(0x8, struct.pack("!H", 1000) + b"bye"))
        assert ws_read(raw) == (True, 0x8, struct.pack("!H", 1000))
        assert raw.at_eof()
    finally:
        raw.close()


def test_several_websockets_at_once(env):
    gw = env["gateway"]
    sockets = [ws_handshake(gw)[0] for _ in range(5)]
    try:
        for i, raw in enumerate(sockets):
            raw.send(ws_frame(0x1, b"socket %d" % i))
        for i, raw in reversed(list(enumerate(sockets))):
            assert ws_read(raw) == (True, 0x1, b"socket %d" % i)
    finally:
        for raw in sockets:
            raw.close()


def test_websocket_bad_handshake_is_passed_through(env):
    gw = env["gateway"]
    response = requests.get(gw.url("/s/ws"), headers={"Upgrade": "websocket", "Connection": "Upgrade"},
                            timeout=10)
    assert response.status_code == 400
    assert response.headers["X-Upstream"] == "streamer"
