# What a hostile or broken client must not be able to do through the gateway: open the circuit
# of a healthy upstream with bad uploads, pass identity headers to a service, or trickle a body
# forever; and module errors still pass through the route's plugins.
import socket
import time

import pytest
import requests

from gateway_harness import Gateway, Upstream
from gateway_harness import module_processes  # noqa: F401 (fixtures)
from harness import assert_error


@pytest.fixture(scope="module")
def env(module_processes, tmp_path_factory):
    up = module_processes.add(Upstream("hardening"))
    config = f"""
_format_version: "3.0"
services:
  - name: open
    url: http://127.0.0.1:{up.port}
    routes:
      - name: open
        paths: [/]
"""
    gw = module_processes.add(
        Gateway(tmp_path_factory.mktemp("gw-hardening"), config,
                env={"AETHER_HTTP_BODY_TIMEOUT": "1s"})
    ).start()
    return {"gateway": gw, "up": up}


def raw(gw, data, timeout=10):
    with socket.create_connection(("127.0.0.1", gw.port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"}" in chunks[-1]:
                break
        return b"".join(chunks).decode(errors="replace")


def test_bad_uploads_do_not_open_the_circuit_of_a_healthy_upstream(env):
    gw = env["gateway"]
    for _ in range(8):
        # A chunked body whose size line is garbage: the client's fault, answered 400.
        text = raw(gw, b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       + b"1" * 20000 + b"\r\n" + b"zz\r\n")
        status = int(text.split(" ", 2)[1]) if text.startswith("HTTP/1.1") else None
        assert status == 400, text[:300]
        assert "VALIDATION_ERROR" in text
    # Everyone else is still served.
    response = requests.get(gw.url("/echo/after"), timeout=10)
    assert response.status_code == 200, response.text


def test_client_identity_headers_never_reach_a_service(env):
    gw = env["gateway"]
    response = requests.get(gw.url("/echo/identity"),
                            headers={"X-User-ID": "admin", "X-User-Roles": "admin",
                                     "x-user-permissions": "everything"}, timeout=10)
    assert response.status_code == 200, response.text
    received = response.json()["headers"]
    assert not any(name.startswith("x-user-") for name in received), received


def test_a_trickled_upload_is_cut_off_by_the_body_timeout(env):
    gw = env["gateway"]
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        started = time.monotonic()
        answer = b""
        # One byte every 300 ms: each within the timeout, together far beyond it.
        for _ in range(20):
            try:
                s.sendall(b"1\r\nx\r\n")
            except OSError:
                break
            s.settimeout(0.3)
            try:
                data = s.recv(65536)
                if not data:
                    break
                answer += data
                break
            except socket.timeout:
                continue
        elapsed = time.monotonic() - started
    # 1 s of body_timeout from the head, not 20 × 300 ms of trickle.
    assert elapsed < 4.0, elapsed
    # The server gives up on the connection (Beast closes a socket whose deadline passed), so
    # the client sees it closed, never a success for a body that did not arrive in time.
    assert not answer.startswith(b"HTTP/1.1 2"), answer[:300]
