# Hostile tokens and hostile HTTP: each attack is refused, and the server keeps serving others.
import base64
import hashlib
import hmac
import json
import socket
import time

import pytest
import requests

from harness import (
    JWT_SECRET,
    assert_error,
    bearer,
    mint,
    new_user,
    old_claims,
)


@pytest.fixture(scope="module")
def dep(module_factory):
    return module_factory(
        env={
            "AETHER_HTTP_BODY_TIMEOUT": "1s",
            "AETHER_HTTP_HEADER_TIMEOUT": "2s",
        }
    )


@pytest.fixture(scope="module")
def victim(dep):
    return new_user(dep)


def b64(data):
    if isinstance(data, dict):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hs(header, payload, key=JWT_SECRET, digest=hashlib.sha256):
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = hmac.new(key.encode() if isinstance(key, str) else key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def refused(dep, token):
    """The token must not authenticate /me nor validate."""
    assert_error(requests.get(dep.api("/me"), headers=bearer(token), timeout=30), 401, "UNAUTHORIZED")
    response = requests.post(dep.api("/validate"), json={"token": token}, timeout=30)
    assert response.status_code == 200 and response.json() == {"valid": False}, response.text


def test_baseline_minted_token_is_accepted(dep, victim):
    # The attacks below differ from this token in one respect each.
    token = hs({"alg": "HS256", "typ": "JWT"}, old_claims(victim.id, victim.email))
    assert requests.get(dep.api("/me"), headers=bearer(token), timeout=30).status_code == 200


def test_alg_none_token(dep, victim):
    claims = old_claims(victim.id, victim.email, roles=["admin"])
    for alg in ("none", "None", "NONE"):
        refused(dep, f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}.")
        refused(dep, f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(claims)}.{b64(b'x')}")


def test_hs256_token_resigned_as_hs512(dep, victim):
    token = hs({"alg": "HS512", "typ": "JWT"}, old_claims(victim.id, victim.email), digest=hashlib.sha512)
    refused(dep, token)
    refused(dep, mint(old_claims(victim.id, victim.email), algorithm="HS512"))
    refused(dep, mint(old_claims(victim.id, victim.email), algorithm="HS384"))


def test_bad_signature(dep, victim):
    refused(dep, hs({"alg": "HS256", "typ": "JWT"}, old_claims(victim.id, victim.email),
                    key="wrong-secret-wrong-secret-wrong-secret!!"))
    header, payload, signature = victim.access.split(".")
    flipped = bytearray(unb64(signature))
    flipped[0] ^= 1
    refused(dep, f"{header}.{payload}.{b64(bytes(flipped))}")
    refused(dep, f"{header}.{payload}.")


def test_expired_token(dep, victim):
    claims = old_claims(victim.id, victim.email)
    claims["iat"] -= 7200
    claims["exp"] = int(time.time()) - 120  # beyond any clock-skew leeway
    refused(dep, mint(claims))


def test_token_without_exp_or_sub(dep, victim):
    claims = old_claims(victim.id, victim.email)
    del claims["exp"]
    refused(dep, mint(claims))
    claims = old_claims(victim.id, victim.email)
    del claims["sub"]
    refused(dep, mint(claims))


def test_nbf_in_the_future(dep, victim):
    claims = old_claims(victim.id, victim.email, nbf=int(time.time()) + 3600)
    refused(dep, mint(claims))


def test_tampered_claims_keep_old_signature(dep, victim):
    header, payload, signature = victim.access.split(".")
    claims = json.loads(unb64(payload))
    claims["roles"] = ["admin"]
    claims["permissions"] = claims.get("permissions", []) + ["users:admin", "audit:read"]
    refused(dep, f"{header}.{b64(claims)}.{signature}")
    claims = json.loads(unb64(payload))
    claims["exp"] += 3600
    refused(dep, f"{header}.{b64(claims)}.{signature}")


def test_refresh_token_used_as_access_token(dep, victim):
    refused(dep, victim.refresh)
    refused(dep, mint(old_claims(victim.id, victim.email, token_type="refresh")))
    response = requests.get(dep.api("/users"), headers=bearer(victim.refresh), timeout=30)
    assert_error(response, 401, "UNAUTHORIZED")


def test_key_confusion_and_crit_header(dep, victim):
    refused(dep, hs({"alg": "HS256", "typ": "JWT", "crit": ["exp"]}, old_claims(victim.id, victim.email)))
    refused(dep, hs({"typ": "JWT"}, old_claims(victim.id, victim.email)))


def test_token_in_query_string(dep, victim):
    for name in ("access_token", "token", "jwt", "api_key"):
        response = requests.get(dep.api("/me"), params={name: victim.access}, timeout=30)
        assert_error(response, 401, "UNAUTHORIZED")
        assert victim.access not in response.text


def test_oversized_body_is_413_in_the_envelope(dep):
    body = b'{"email":"a@example.com","password":"' + b"a" * (1024 * 1024 + 10) + b'","name":"n"}'
    try:
        response = requests.post(dep.api("/register"), data=body,
                                 headers={"Content-Type": "application/json"}, timeout=30)
    except requests.ConnectionError:
        # The server may answer before reading the whole body; read the answer from a raw socket.
        response = None
    if response is not None:
        assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    else:
        status, text = raw_exchange(
            dep,
            b"POST /api/v1/auth/register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body),
        )
        assert status == 413, text
        assert '"PAYLOAD_TOO_LARGE"' in text
    assert requests.get(dep.url("/health"), timeout=10).status_code == 200


def test_oversized_declared_length_is_413(dep):
    status, text = raw_exchange(
        dep,
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1073741824\r\n\r\n{",
    )
    assert status == 413, text
    envelope = json.loads(text.split("\r\n\r\n", 1)[1])
    assert envelope["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_malformed_json_is_400(dep):
    for body in (b"{", b'{"email":}', b"\x00\x01", b'{"email":"a"', b"{}}"):
        response = requests.post(dep.api("/login"), data=body,
                                 headers={"Content-Type": "application/json"}, timeout=30)
        assert_error(response, 400, "VALIDATION_ERROR")


def test_deeply_nested_json_is_400(dep):
    for depth in (100, 10000, 100000):
        body = '{"email":' + "[" * depth + "]" * depth + ',"password":"x"}'
        response = requests.post(dep.api("/login"), data=body,
                                 headers={"Content-Type": "application/json"}, timeout=30)
        assert_error(response, 400, "VALIDATION_ERROR")
        body = '{"a":' * depth + "1" + "}" * depth
        response = requests.post(dep.api("/register"), data=body,
                                 headers={"Content-Type": "application/json"}, timeout=30)
        assert_error(response, 400, "VALIDATION_ERROR")
    assert requests.get(dep.url("/health"), timeout=10).status_code == 200


def connect(dep, timeout=10):
    sock = socket.create_connection(("127.0.0.1", dep.server.port), timeout=timeout)
    return sock


def read_all(sock, limit=10 * 1024 * 1024):
    chunks = []
    total = 0
    while total < limit:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def parse_status(data):
    if not data.startswith(b"HTTP/1.1 "):
        return None
    return int(data[9:12])


def raw_exchange(dep, request_bytes, timeout=10):
    with connect(dep, timeout) as sock:
        try:
            sock.sendall(request_bytes)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = read_all(sock)
    return parse_status(data), data.decode(errors="replace")


def test_ten_thousand_headers_is_431_or_closed(dep):
    headers = b"".join(b"X-Flood-%d: v\r\n" % i for i in range(10000))
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
    status, text = raw_exchange(dep, request)
    # Either an answer of 431 in the envelope, or the connection was closed without one.
    assert status in (431, None), text[:300]
    if status == 431:
        body = json.loads(text.split("\r\n\r\n", 1)[1])
        assert body["error"]["code"] and body["error"]["request_id"]
    assert requests.get(dep.url("/health"), timeout=10).status_code == 200


def test_one_huge_header_is_431(dep):
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n"
    status, text = raw_exchange(dep, request)
    assert status in (431, None), text[:300]


def test_body_that_never_finishes_times_out_and_others_are_served(dep):
    sock = connect(dep, timeout=15)
    try:
        sock.sendall(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"email":"'
        )
        # Meanwhile the server answers others.
        started = time.monotonic()
        assert requests.get(dep.url("/health"), timeout=5).status_code == 200
        data = read_all(sock)
        waited = time.monotonic() - started
    finally:
        sock.close()
    status = parse_status(data)
    assert status in (408, None), data[:300]
    if status == 408:
        assert b'"request_id"' in data
    assert waited < 12, f"the stalled body was held for {waited:.1f}s with body_timeout=1s"


def test_slowloris_headers_time_out(dep):
    sock = connect(dep, timeout=20)
    closed = False
    started = time.monotonic()
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        # One header line every half second: never finishing the header block.
        for i in range(40):
            try:
                sock.sendall(b"X-Slow-%d: v\r\n" % i)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            assert requests.get(dep.url("/health"), timeout=5).status_code == 200
            sock.settimeout(0.5)
            try:
                if sock.recv(65536) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed = True
                break
    finally:
        sock.close()
    assert closed, "the server kept a never-ending header block open for 20 s (header_timeout=2s)"
    assert time.monotonic() - started < 15


def test_garbage_request_line_is_400_or_closed(dep):
    status, text = raw_exchange(dep, b"\x16\x03\x01\x02\x00 garbage\r\n\r\n")
    assert status in (400, None), text[:300]
    assert requests.get(dep.url("/health"), timeout=10).status_code == 200
