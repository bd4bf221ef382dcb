# The gateway's routing and proxying: longest prefix, method filters, strip_path, preserve_host,
# hop-by-hop headers, X-Forwarded-*, request ids, trace context and identity headers.
import json
import re

import pytest
import requests

from gateway_harness import Gateway, Raw, Stub, Upstream, access_token
from gateway_harness import module_processes  # noqa: F401 (fixtures)
from harness import assert_error, bearer, mint, JWT_SECRET


@pytest.fixture(scope="module")
def env(module_processes, tmp_path_factory):
    alpha = module_processes.add(Upstream("alpha"))
    beta = module_processes.add(Upstream("beta"))
    # Answers with hop-by-hop response headers the gateway must not pass on.
    hoppy = module_processes.add(
        Stub(
            "hoppy",
            extra_headers=[
                ("Connection", "X-Hop-Secret"),
                ("X-Hop-Secret", "1"),
                ("Keep-Alive", "timeout=5"),
                ("Proxy-Authenticate", "Basic"),
                ("X-End-To-End", "kept"),
                # Headers the gateway sets itself: its own value replaces the upstream's.
                ("x-ratelimit-limit", "999"),
                ("X-Request-ID", "upstream-chosen-id"),
            ],
        )
    )
    config = f"""
_format_version: "3.0"
services:
  - name: tasks
    url: http://127.0.0.1:{alpha.port}
    routes:
      - name: tasks
        paths: [/api/v1/tasks]
        methods: [GET, POST]
        strip_path: false
  - name: special
    url: http://127.0.0.1:{beta.port}
    routes:
      - name: special
        paths: [/api/v1/tasks/special]
        strip_path: false
  - name: stripped
    url: http://127.0.0.1:{alpha.port}/base
    routes:
      - name: strip
        paths: [/strip]
        strip_path: true
      - name: nostrip
        paths: [/nostrip]
        strip_path: false
  - name: hosts
    url: http://127.0.0.1:{alpha.port}
    routes:
      - name: preserve
        paths: [/preserve]
        preserve_host: true
      - name: rewrite
        paths: [/rewrite]
  - name: secure
    url: http://127.0.0.1:{alpha.port}
    routes:
      - name: secure
        paths: [/secure]
    plugins:
      - name: jwt
  - name: per-consumer
    url: http://127.0.0.1:{alpha.port}
    routes:
      - name: per-consumer
        paths: [/per-consumer]
    plugins:
      - name: jwt
      - name: rate-limiting
        config:
          hour: 2
          limit_by: consumer
  - name: hoppy
    url: http://127.0.0.1:{hoppy.port}
    routes:
      - name: hoppy
        paths: [/hoppy]
      - name: hoppy-limited
        paths: [/hoppy-limited]
        plugins:
          - name: rate-limiting
            config:
              minute: 1000
              limit_by: ip
"""
    gateway = module_processes.add(Gateway(tmp_path_factory.mktemp("gw-routing"), config)).start()
    return {"gateway": gateway, "alpha": alpha, "beta": beta, "hoppy": hoppy}


def echo(response):
    assert response.status_code == 200, response.text
    return response.json()


def test_longest_prefix_wins(env):
    gw = env["gateway"]
    got = echo(requests.get(gw.url("/api/v1/tasks/special/7"), timeout=10))
    assert got["upstream"] == "beta" and got["path"] == "/api/v1/tasks/special/7"
    got = echo(requests.get(gw.url("/api/v1/tasks/special"), timeout=10))
    assert got["upstream"] == "beta"
    got = echo(requests.get(gw.url("/api/v1/tasks/7"), timeout=10))
    assert got["upstream"] == "alpha" and got["path"] == "/api/v1/tasks/7"
    got = echo(requests.get(gw.url("/api/v1/tasks"), timeout=10))
    assert got["upstream"] == "alpha" and got["path"] == "/api/v1/tasks"
    # Prefixes end at a segment boundary: /special-ish is not under /special.
    got = echo(requests.get(gw.url("/api/v1/tasks/specialX"), timeout=10))
    assert got["upstream"] == "alpha" and got["path"] == "/api/v1/tasks/specialX"


@pytest.mark.parametrize("path", ["/api/v1/tasksX", "/api/v1/task", "/", "/api/v1", "/nothing/here"])
def test_no_route_is_404_envelope(env, path):
    before = env["alpha"].stats()["total"]
    response = requests.get(env["gateway"].url(path), timeout=10)
    error = assert_error(response, 404, "NOT_FOUND")
    assert error["message"] == "no route matches this request"
    assert env["alpha"].stats()["total"] == before


def test_method_filter_is_405_with_allow(env):
    gw = env["gateway"]
    for method in ("DELETE", "PUT", "PATCH"):
        response = requests.request(method, gw.url("/api/v1/tasks/1"), timeout=10)
        assert_error(response, 405, "METHOD_NOT_ALLOWED")
        assert response.headers["Allow"] == "GET, POST"
    assert echo(requests.post(gw.url("/api/v1/tasks"), json={"a": 1}, timeout=10))["method"] == "POST"
    # The longer prefix has no method filter.
    got = echo(requests.delete(gw.url("/api/v1/tasks/special/1"), timeout=10))
    assert got["upstream"] == "beta" and got["method"] == "DELETE"


def test_strip_path_joins_the_service_path(env):
    gw = env["gateway"]
    assert echo(requests.get(gw.url("/strip/a/b"), timeout=10))["path"] == "/base/a/b"
    assert echo(requests.get(gw.url("/strip"), timeout=10))["path"] == "/base"
    assert echo(requests.get(gw.url("/strip/"), timeout=10))["path"] == "/base/"
    assert echo(requests.get(gw.url("/nostrip/a"), timeout=10))["path"] == "/base/nostrip/a"


def test_query_string_is_kept(env):
    gw = env["gateway"]
    got = echo(requests.get(gw.url("/strip/q?x=1&y=%20z&x=2&empty="), timeout=10))
    assert got["path"] == "/base/q?x=1&y=%20z&x=2&empty="
    got = echo(requests.get(gw.url("/api/v1/tasks?page=2&limit=5"), timeout=10))
    assert got["path"] == "/api/v1/tasks?page=2&limit=5"


def test_dot_segments_are_resolved_before_routing(env):
    gw = env["gateway"]
    raw = Raw(gw.port)
    try:
        raw.send(b"GET /strip/../api/v1/tasks/9 HTTP/1.1\r\nHost: gw\r\n\r\n")
        status, _, body, _ = raw.response()
    finally:
        raw.close()
    assert status == 200
    got = json.loads(body)
    assert got["upstream"] == "alpha" and got["path"] == "/api/v1/tasks/9"


def test_request_body_is_forwarded(env):
    gw = env["gateway"]
    payload = {"title": "héllo", "n": list(range(100))}
    got = echo(requests.post(gw.url("/api/v1/tasks"), json=payload, timeout=10))
    assert json.loads(got["body"]) == payload
    assert got["headers"]["content-length"] == str(got["body_length"])
    assert got["headers"]["content-type"] == "application/json"


def test_preserve_host(env):
    gw, alpha = env["gateway"], env["alpha"]
    got = echo(requests.get(gw.url("/preserve/x"), headers={"Host": "api.example.test"}, timeout=10))
    assert got["headers"]["host"] == "api.example.test"
    got = echo(requests.get(gw.url("/rewrite/x"), headers={"Host": "api.example.test"}, timeout=10))
    assert got["headers"]["host"] == alpha.authority
    assert got["headers"]["x-forwarded-host"] == "api.example.test"


def test_hop_by_hop_request_headers_are_not_forwarded(env):
    gw = env["gateway"]
    raw = Raw(gw.port)
    try:
        raw.send(
            b"GET /rewrite/hop HTTP/1.1\r\nHost: gw.test\r\n"
            b"Connection: keep-alive, Foo\r\nFoo: bar\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
            b"Upgrade: h2c\r\nProxy-Authorization: Basic eHl6\r\nProxy-Connection: keep-alive\r\n"
            b"Trailer: X-T\r\nX-Kept: yes\r\n\r\n"
        )
        status, _, body, _ = raw.response()
    finally:
        raw.close()
    assert status == 200
    headers = json.loads(body)["headers"]
    for name in ("foo", "keep-alive", "te", "upgrade", "proxy-authorization", "proxy-connection",
                 "trailer"):
        assert name not in headers, (name, headers)
    assert "foo" not in headers.get("connection", "").lower()
    assert "upgrade" not in headers.get("connection", "").lower()
    assert headers["x-kept"] == "yes"


def test_hop_by_hop_response_headers_are_not_forwarded(env):
    response = requests.get(env["gateway"].url("/hoppy/x"), timeout=10)
    assert response.status_code == 200
    assert response.headers["X-Upstream"] == "hoppy"
    assert response.headers["X-End-To-End"] == "kept"
    assert "Keep-Alive" not in response.headers
    assert "Proxy-Authenticate" not in response.headers
    # Named by the upstream's Connection header, so hop-by-hop too (RFC 9110 §7.6.1).
    assert "X-Hop-Secret" not in response.headers, response.headers
    assert "x-hop-secret" not in response.headers.get("Connection", "").lower()


def test_gateway_headers_replace_the_upstreams_own(env):
    sent_id = "client-request-0001"
    for path, limited in (("/hoppy/x", False), ("/hoppy-limited/x", True)):
        response = requests.get(
            env["gateway"].url(path), headers={"X-Request-ID": sent_id}, timeout=10
        )
        assert response.status_code == 200
        raw = response.raw.headers
        # Once each, with the gateway's value: the request's id, not the upstream's.
        assert raw.getlist("X-Request-ID") == [sent_id], raw
        assert response.headers["X-End-To-End"] == "kept"
        if limited:
            assert raw.getlist("X-RateLimit-Limit") == ["1000"], raw
            assert int(response.headers["X-RateLimit-Remaining"]) < 1000
            assert int(response.headers["X-RateLimit-Reset"]) >= 0
        else:
            assert raw.getlist("X-RateLimit-Limit") == ["999"], raw


def test_rate_limit_by_consumer_counts_each_verified_subject(env):
    url = env["gateway"].url("/per-consumer/x")

    def status(sub, **claims):
        token = access_token(sub=sub, **claims)
        return requests.get(url, headers=bearer(token), timeout=10).status_code

    # One address, two subjects: each has its own budget of two.
    assert [status("usr_limit_alice") for _ in range(3)] == [200, 200, 429]
    assert status("usr_limit_bob") == 200
    # Another token of the same subject counts against the same budget.
    assert status("usr_limit_alice", jti="another-token") == 429
    assert status("usr_limit_bob", jti="another-token") == 200
    assert status("usr_limit_bob") == 429


def test_x_forwarded_headers(env):
    gw = env["gateway"]
    got = echo(requests.get(gw.url("/rewrite/f"), timeout=10))
    assert got["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert got["headers"]["x-forwarded-proto"] == "http"
    assert got["headers"]["x-forwarded-host"] == f"127.0.0.1:{gw.port}"

    # A client-sent X-Forwarded-For is kept and the peer appended; Proto is the gateway's own.
    got = echo(
        requests.get(
            gw.url("/rewrite/f"),
            headers={"X-Forwarded-For": "203.0.113.7, 198.51.100.1", "X-Forwarded-Proto": "https"},
            timeout=10,
        )
    )
    assert got["headers"]["x-forwarded-for"] == "203.0.113.7, 198.51.100.1, 127.0.0.1"
    assert got["headers"]["x-forwarded-proto"] == "http"


def test_x_forwarded_for_joins_repeated_headers(env):
    gw = env["gateway"]
    raw = Raw(gw.port)
    try:
        raw.send(
            b"GET /rewrite/f HTTP/1.1\r\nHost: gw\r\nX-Forwarded-For: 203.0.113.7\r\n"
            b"X-Forwarded-For: 198.51.100.1\r\n\r\n"
        )
        status, _, body, _ = raw.response()
    finally:
        raw.close()
    assert status == 200
    assert json.loads(body)["headers"]["x-forwarded-for"] == "203.0.113.7, 198.51.100.1, 127.0.0.1"


def test_request_id_is_forwarded_and_echoed(env):
    gw = env["gateway"]
    response = requests.get(gw.url("/rewrite/r"), headers={"X-Request-ID": "client-req_1.a:b"}, timeout=10)
    got = echo(response)
    assert got["headers"]["x-request-id"] == "client-req_1.a:b"
    assert response.headers["X-Request-ID"] == "client-req_1.a:b"

    # None sent (or an invalid one): the gateway's id goes upstream and back to the client.
    for headers in ({}, {"X-Request-ID": "not valid!"}):
        response = requests.get(gw.url("/rewrite/r"), headers=headers, timeout=10)
        got = echo(response)
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
        assert got["headers"]["x-request-id"] == response.headers["X-Request-ID"]


def test_traceparent_carries_the_client_trace(env):
    gw = env["gateway"]
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    got = echo(requests.get(gw.url("/rewrite/t"), headers={"traceparent": f"00-{trace_id}-{parent}-01"},
                            timeout=10))
    match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})", got["headers"]["traceparent"])
    assert match, got["headers"]["traceparent"]
    assert match.group(1) == trace_id
    assert match.group(2) != parent  # the gateway's own span is the upstream's parent

    got = echo(requests.get(gw.url("/rewrite/t"), timeout=10))
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", got["headers"]["traceparent"])


def test_jwt_replaces_client_identity_headers(env):
    gw, alpha = env["gateway"], env["alpha"]
    spoofed = {"X-User-ID": "usr_attacker", "X-User-Roles": "admin", "X-User-Email": "evil@example.com",
               "x-user-permissions": "*"}
    token = access_token(sub="usr_verified", roles=["user"], permissions=["tasks:read"])
    got = echo(requests.get(gw.url("/secure/me?x=1"), headers={**spoofed, **bearer(token)}, timeout=10))
    headers = got["headers"]
    assert headers["x-user-id"] == "usr_verified"
    assert headers["x-user-roles"] == "user"
    assert "tasks:read" in headers["x-user-permissions"].split(",")
    assert "*" not in headers["x-user-permissions"].split(",")
    assert "x-user-email" not in headers
    assert got["path"] == "/me?x=1"

    before = alpha.stats()["total"]
    assert_error(requests.get(gw.url("/secure/me"), headers=spoofed, timeout=10), 401, "UNAUTHORIZED")
    refresh = access_token(sub="usr_verified", type="refresh")
    assert_error(requests.get(gw.url("/secure/me"), headers=bearer(refresh), timeout=10), 401,
                 "UNAUTHORIZED")
    expired = access_token(sub="usr_verified", exp=1_000_000_000)
    assert_error(requests.get(gw.url("/secure/me"), headers=bearer(expired), timeout=10), 401,
                 "UNAUTHORIZED")
    forged = mint({"sub": "usr_verified", "type": "access", "exp": 4_000_000_000},
                  "another-secret-of-at-least-32-bytes!!")
    assert_error(requests.get(gw.url("/secure/me"), headers=bearer(forged), timeout=10), 401,
                 "UNAUTHORIZED")
    # Validly signed, but its subject would split the forwarded X-User-ID header in two.
    splitting = access_token(sub="usr_verified\r\nX-User-Roles: admin")
    assert_error(requests.get(gw.url("/secure/me"), headers=bearer(splitting), timeout=10), 401,
                 "UNAUTHORIZED")
    assert alpha.stats()["total"] == before
    assert JWT_SECRET  # the token above was minted with the platform secret


def test_jwt_forwards_each_tokens_own_identity(env):
    # The gateway remembers the identity lines per verified token: with many tokens presented in
    # turn, each request still carries its own token's user, roles and permissions.
    gw = env["gateway"]
    users = [(f"usr_{i:02d}", ["user"] if i % 2 else ["admin", "user"], [f"notes:read:{i}"])
             for i in range(24)]
    tokens = [access_token(sub=sub, roles=roles, permissions=permissions)
              for sub, roles, permissions in users]
    with requests.Session() as session:
        for _ in range(2):
            for (sub, roles, permissions), token in zip(users, tokens):
                got = echo(session.get(gw.url("/secure/me"), headers=bearer(token), timeout=10))
                assert got["headers"]["x-user-id"] == sub
                assert got["headers"]["x-user-roles"] == ",".join(roles)
                assert got["headers"]["x-user-permissions"] == ",".join(permissions)


def test_keep_alive_connection_serves_many_requests(env):
    gw, alpha = env["gateway"], env["alpha"]
    alpha.reset()
    with requests.Session() as session:
        for i in range(50):
            assert echo(session.get(gw.url(f"/rewrite/k{i}"), timeout=10))["path"] == f"/k{i}"
    stats = alpha.stats()
    assert stats["total"] == 50
    # Pooled upstream connections: far fewer connections than requests.
    assert stats["connections_opened"] <= 4, stats
