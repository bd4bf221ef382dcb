# The test upstream itself (upstream_server.py), so that the gateway tests can rely on it.
import base64
import hashlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import upstream_server

SERVER = Path(__file__).resolve().parent / "upstream_server.py"
NAME = "alpha"


def start_upstream(name, *extra):
    """Starts upstream_server.py on a free port; returns (process, port) once it printed `ready`."""
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--port", "0", "--name", name, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready, _, _ = select.select([process.stdout], [], [], 15)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("ready "):
        process.kill()
        raise RuntimeError(f"upstream did not start: {line!r} {process.stderr.read()}")
    return process, int(line.split()[1])


def stop(process):
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@pytest.fixture(scope="module")
def upstream():
    process, port = start_upstream(NAME)
    yield f"http://127.0.0.1:{port}"
    stop(process)
    assert process.returncode == 0, process.stderr.read()


@pytest.fixture
def port(upstream):
    return int(upstream.rsplit(":", 1)[1])


class Raw:
    """One client socket speaking HTTP/1.1 by hand, with arrival times of each body piece."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.buffer += data

    def read_until(self, marker):
        while marker not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def read_exactly(self, n):
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def at_eof(self, timeout=5):
        """True when the server closed the connection (after any buffered bytes)."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def response(self, head_only=False):
        """(status, headers dict of lower-case name -> value, body, [(time, piece), ...])."""
        head = self.read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split(" ")[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        pieces = []
        if head_only or status in (101, 204, 304):
            return status, headers, b"", pieces
        if headers.get("transfer-encoding") == "chunked":
            while True:
                size = int(self.read_until(b"\r\n"), 16)
                if size == 0:
                    assert self.read_until(b"\r\n") == b""
                    break
                pieces.append((time.monotonic(), self.read_exactly(size)))
                assert self.read_exactly(2) == b"\r\n"
        else:
            pieces.append((time.monotonic(), self.read_exactly(int(headers["content-length"]))))
        return status, headers, b"".join(p for _, p in pieces), pieces


def get(port, path, extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}\r\n".encode()


def test_port_file_and_ready_line(tmp_path):
    port_file = tmp_path / "port"
    process, port = start_upstream("beta", "--port-file", str(port_file))
    try:
        assert int(port_file.read_text()) == port
        response = requests.get(f"http://127.0.0.1:{port}/x", timeout=10)
        assert response.json()["upstream"] == "beta"
        assert response.headers["X-Upstream"] == "beta"
    finally:
        stop(process)
    assert process.returncode == 0


def test_echo_reports_method_path_headers_and_body(upstream):
    response = requests.post(
        upstream + "/some/path?a=1&b=%20x", data="héllo".encode(), headers={"X-Custom": "v"}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    echo = response.json()
    assert echo["upstream"] == NAME
    assert echo["method"] == "POST"
    assert echo["path"] == "/some/path?a=1&b=%20x"
    assert echo["headers"]["x-custom"] == "v"
    assert echo["headers"]["content-length"] == "6"
    assert echo["body"] == "héllo"
    assert echo["body_length"] == 6


def test_echo_any_method(upstream):
    for method in ("GET", "PUT", "PATCH", "DELETE", "OPTIONS"):
        response = requests.request(method, upstream + "/m", timeout=10)
        assert response.status_code == 200
        assert response.json()["method"] == method
    head = requests.head(upstream + "/m", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) > 0


def test_echo_joins_repeated_headers(port):
    raw = Raw(port)
    raw.send(get(port, "/r", "X-Dup: one\r\nX-DUP: two\r\nx-dup: three\r\n"))
    status, _, body, _ = raw.response()
    raw.close()
    assert status == 200
    assert json.loads(body)["headers"]["x-dup"] == "one, two, three"


def test_chunked_request_body_is_decoded(upstream):
    response = requests.post(upstream + "/c", data=iter([b"abc", b"defg"]), timeout=10)
    echo = response.json()
    assert echo["headers"]["transfer-encoding"] == "chunked"
    assert echo["body"] == "abcdefg" and echo["body_length"] == 7


def test_chunked_request_body_with_extensions_and_trailers(port):
    raw = Raw(port)
    raw.send(
        b"POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    status, _, body, _ = raw.response()
    raw.close()
    assert status == 200
    assert json.loads(body)["body"] == "abc0123456789"


def test_expect_100_continue(port):
    raw = Raw(port)
    raw.send(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert raw.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue"
    raw.send(b"body")
    status, _, body, _ = raw.response()
    raw.close()
    assert status == 200 and json.loads(body)["body"] == "body"


@pytest.mark.parametrize("code", [200, 201, 302, 404, 429, 500, 502, 503, 504])
def test_status(upstream, code):
    response = requests.get(upstream + f"/status/{code}", allow_redirects=False, timeout=10)
    assert response.status_code == code
    assert response.json() == {"upstream": NAME, "status": code}


def test_status_204_has_no_body(port):
    raw = Raw(port)
    raw.send(get(port, "/status/204") + get(port, "/after"))
    status, headers, _, _ = raw.response(head_only=True)
    assert status == 204 and "content-length" not in headers
    status, _, body, _ = raw.response()  # the next response starts right after the 204 head
    raw.close()
    assert status == 200 and json.loads(body)["path"] == "/after"


def test_delay_waits_then_echoes(upstream):
    start = time.monotonic()
    response = requests.get(upstream + "/delay/300", timeout=10)
    elapsed = time.monotonic() - start
    assert response.status_code == 200
    assert response.json()["path"] == "/delay/300"
    assert 0.3 <= elapsed < 2.5


def test_delay_longer_than_client_timeout_times_out(upstream):
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(upstream + "/delay/2000", timeout=0.3)


def test_chunked_response_arrives_spaced(port):
    raw = Raw(port)
    start = time.monotonic()
    raw.send(get(port, "/chunked?n=5&ms=150"))
    status, headers, body, pieces = raw.response()
    raw.close()
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert body == b"".join(b"chunk %d\n" % i for i in range(5))
    assert [p for _, p in pieces] == [b"chunk %d\n" % i for i in range(5)]
    # The first chunk comes at once, the others one interval apart (not all at the end).
    assert pieces[0][0] - start < 0.5
    gaps = [b[0] - a[0] for a, b in zip(pieces, pieces[1:])]
    assert all(gap >= 0.05 for gap in gaps), gaps  # 150 ms apart, with slack for a busy machine
    assert pieces[-1][0] - pieces[0][0] >= 0.55


def test_sse_events_arrive_incrementally(upstream):
    start = time.monotonic()
    response = requests.get(upstream + "/sse?n=4&ms=200", stream=True, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    events = []
    for line in response.iter_lines(chunk_size=1):
        if line:
            events.append((time.monotonic() - start, line))
    assert [e for _, e in events] == [b"data: %d" % i for i in range(4)]
    assert events[0][0] < 0.5  # the first event is not held back until the stream ends
    assert events[-1][0] - events[0][0] >= 0.5
    assert all(b[0] - a[0] >= 0.08 for a, b in zip(events, events[1:]))


def test_sse_over_http_1_0_is_close_delimited(port):
    raw = Raw(port)
    raw.send(b"GET /sse?n=2&ms=10 HTTP/1.0\r\n\r\n")
    head = raw.read_until(b"\r\n\r\n").decode()
    assert "Transfer-Encoding" not in head and "Connection: close" in head
    while True:
        try:
            raw._fill()
        except EOFError:
            break
    raw.close()
    assert raw.buffer == b"data: 0\n\ndata: 1\n\n"


def ws_frame(opcode, payload, mask=b"\x37\xfa\x21\x3d", fin=True):
    """A client frame, masked as RFC 6455 §5.3 requires."""
    first = (0x80 if fin else 0) | opcode
    if len(payload) < 126:
        header = struct.pack("!BB", first, 0x80 | len(payload))
    elif len(payload) < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, len(payload))
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, len(payload))
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


def ws_read(raw):
    first, second = raw.read_exactly(2)
    assert second & 0x80 == 0, "server frames are never masked"
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", raw.read_exactly(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", raw.read_exactly(8))
    return bool(first & 0x80), first & 0x0F, raw.read_exactly(length)


def ws_connect(port, key=b"dGhlIHNhbXBsZSBub25jZQ=="):
    raw = Raw(port)
    raw.send(
        get(
            port,
            "/ws",
            "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
            f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n",
        )
    )
    status, headers, _, _ = raw.response()
    return raw, status, headers


def test_websocket_handshake_and_echo(port):
    raw, status, headers = ws_connect(port)
    assert status == 101
    assert headers["upgrade"].lower() == "websocket"
    # The example of RFC 6455 §1.3.
    assert headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

    raw.send(ws_frame(0x1, "hello ✓".encode()))
    assert ws_read(raw) == (True, 0x1, "hello ✓".encode())
    binary = bytes(range(256)) * 3  # 768 bytes: the 16-bit length form
    raw.send(ws_frame(0x2, binary))
    assert ws_read(raw) == (True, 0x2, binary)
    large = os.urandom(70000)  # the 64-bit length form
    raw.send(ws_frame(0x2, large, mask=b"\x01\x02\x03\x04"))
    assert ws_read(raw) == (True, 0x2, large)
    raw.send(ws_frame(0x9, b"ping!"))
    assert ws_read(raw) == (True, 0xA, b"ping!")

    raw.send(ws_frame(0x8, struct.pack("!H", 1000) + b"bye"))
    fin, opcode, payload = ws_read(raw)
    assert (fin, opcode, payload) == (True, 0x8, struct.pack("!H", 1000))
    assert raw.at_eof()
    raw.close()


def test_websocket_unmasked_client_frame_is_a_protocol_error(port):
    raw, status, _ = ws_connect(port, key=base64.b64encode(os.urandom(16)))
    assert status == 101
    raw.send(b"\x81\x02hi")
    assert ws_read(raw) == (True, 0x8, struct.pack("!H", 1002))
    assert raw.at_eof()
    raw.close()


def test_websocket_bad_handshake_is_400(upstream):
    headers = {"Upgrade": "websocket", "Connection": "Upgrade"}  # no key, no version
    response = requests.get(upstream + "/ws", headers=headers, timeout=10)
    assert response.status_code == 400


@pytest.mark.parametrize("size", [0, 1, 250, 251, 65536, 1_000_003])
def test_big(upstream, size):
    response = requests.get(upstream + f"/big?bytes={size}", timeout=30)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == size
    assert response.content == upstream_server.big_content(size)
    assert response.content == bytes(i % 251 for i in range(size))


def test_big_chunked(port):
    raw = Raw(port)
    raw.send(get(port, "/big?bytes=200000&chunked=1"))
    status, headers, body, pieces = raw.response()
    raw.close()
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert len(pieces) > 1
    assert body == upstream_server.big_content(200000)


def test_stats_count_per_path_and_reset(upstream):
    assert requests.post(upstream + "/stats/reset", timeout=10).json()["reset"] is True
    stats = requests.get(upstream + "/stats", timeout=10).json()
    assert stats["total"] == 0 and stats["paths"] == {}
    requests.get(upstream + "/one?q=1", timeout=10)
    requests.get(upstream + "/one?q=2", timeout=10)
    requests.post(upstream + "/two", data="x", timeout=10)
    requests.get(upstream + "/status/500", timeout=10)
    stats = requests.get(upstream + "/stats", timeout=10).json()
    assert stats["total"] == 4
    assert stats["paths"] == {"/one": 2, "/two": 1, "/status/500": 1}
    assert stats["methods"] == {"GET": 3, "POST": 1}
    assert stats["recent"] == [
        ["GET", "/one?q=1"], ["GET", "/one?q=2"], ["POST", "/two"], ["GET", "/status/500"]
    ]
    assert requests.get(upstream + "/stats/reset", timeout=10).status_code == 405


def test_stats_count_connections():
    process, port = start_upstream("gamma")  # its own: no connections left over by other tests
    try:
        first, second = Raw(port), Raw(port)
        for path in ("/a", "/b"):
            first.send(get(port, path))
            assert first.response()[0] == 200
        second.send(get(port, "/stats"))
        stats = json.loads(second.response()[2])
        assert stats["connections_opened"] == 2
        assert stats["connections_open"] == 2
        assert stats["total"] == 2
        first.close()
        deadline = time.monotonic() + 5  # the server notices the close asynchronously
        while True:
            second.send(get(port, "/stats"))
            stats = json.loads(second.response()[2])
            if stats["connections_open"] == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert stats["connections_open"] == 1
        second.close()
    finally:
        stop(process)


def test_drop_closes_without_answering(upstream, port):
    raw = Raw(port)
    raw.send(get(port, "/drop"))
    assert raw.at_eof()
    assert raw.buffer == b""
    raw.close()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(upstream + "/drop", timeout=10)


def test_upload_streams_and_hashes(upstream):
    data = os.urandom(5 * 1024 * 1024 + 17)
    response = requests.put(upstream + "/upload", data=data, timeout=30)
    digest = hashlib.sha256(data).hexdigest()
    assert response.json() == {"upstream": NAME, "length": len(data), "sha256": digest}
    pieces = [data[i : i + 100_000] for i in range(0, len(data), 100_000)]
    response = requests.post(upstream + "/upload", data=iter(pieces), timeout=30)
    assert response.json()["length"] == len(data)
    assert response.json()["sha256"] == digest


def test_keep_alive_two_requests_on_one_socket(port):
    raw = Raw(port)
    raw.send(get(port, "/first"))
    status, headers, body, _ = raw.response()
    assert status == 200 and "connection" not in headers
    assert json.loads(body)["path"] == "/first"
    raw.send(b"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    status, _, body, _ = raw.response()
    assert status == 200 and json.loads(body)["body"] == "abc"
    raw.close()


def test_pipelined_requests_are_answered_in_order(port):
    raw = Raw(port)
    raw.send(get(port, "/delay/100") + get(port, "/p2") + get(port, "/status/404"))
    assert json.loads(raw.response()[2])["path"] == "/delay/100"
    assert json.loads(raw.response()[2])["path"] == "/p2"
    assert raw.response()[0] == 404
    raw.close()


def test_connection_close_is_honoured(port):
    raw = Raw(port)
    raw.send(get(port, "/x", "Connection: close\r\n"))
    status, headers, _, _ = raw.response()
    assert status == 200 and headers["connection"] == "close"
    assert raw.at_eof()
    raw.close()


def test_http_1_0_closes_unless_keep_alive(port):
    raw = Raw(port)
    raw.send(b"GET /old HTTP/1.0\r\n\r\n")
    status, _, _, _ = raw.response()
    assert status == 200 and raw.at_eof()
    raw.close()
    raw = Raw(port)
    raw.send(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, headers, _, _ = raw.response()
    assert headers["connection"] == "keep-alive"
    raw.send(b"GET /again HTTP/1.0\r\n\r\n")
    assert raw.response()[0] == 200
    raw.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET /x HTTP/1.1\r\n\r\n",  # no Host
        b"GET /x HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET /x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    ],
)
def test_malformed_request_is_400_and_closed(port, request_bytes):
    raw = Raw(port)
    try:
        raw.send(request_bytes)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may already have answered and closed (the oversized header)
    status, headers, body, _ = raw.response()
    assert status == 400
    assert headers["connection"] == "close"
    assert json.loads(body)["upstream"] == NAME
    assert raw.at_eof()
    raw.close()


def test_many_idle_keep_alive_connections(port):
    sockets = [Raw(port) for _ in range(200)]
    for raw in sockets:
        raw.send(get(port, "/k"))
    for raw in sockets:
        assert raw.response()[0] == 200
    for raw in sockets:  # all still usable
        raw.send(get(port, "/k2"))
        assert raw.response()[0] == 200
        raw.close()
