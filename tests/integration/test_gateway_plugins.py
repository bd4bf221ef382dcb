# The gateway's plugins: cors, ip-restriction, request-size-limiting, correlation-id, prometheus;
# and configuration errors that stop the process at start with the key path named.
import re
import subprocess

import pytest
import requests

from gateway_harness import Gateway, Upstream, aether_binary
from gateway_harness import module_processes  # noqa: F401 (fixtures)
from harness import assert_error

APP = "https://app.example.com"


@pytest.fixture(scope="module")
def env(module_processes, tmp_path_factory):
    up = module_processes.add(Upstream("alpha"))
    config = f"""
_format_version: "3.0"
plugins:
  - name: prometheus
services:
  - name: web
    url: {up.base}
    routes:
      - name: web
        paths: [/web]
    plugins:
      - name: cors
        config:
          origins: ["{APP}", "http://localhost:3000"]
          methods: [GET, POST, PUT]
          exposed_headers: [X-Upstream, X-Request-ID]
          credentials: true
          max_age: 600
  - name: open
    url: {up.base}
    routes:
      - name: open
        paths: [/open]
    plugins:
      - name: cors
        config:
          origins: ["*"]
          headers: [Content-Type, Authorization]
  - name: denied
    url: {up.base}
    routes:
      - name: denied
        paths: [/denied]
    plugins:
      - name: ip-restriction
        config:
          deny: [127.0.0.1]
  - name: allowlisted
    url: {up.base}
    routes:
      - name: allowlisted
        paths: [/allowlisted]
    plugins:
      - name: ip-restriction
        config:
          allow: [10.0.0.0/8, "2001:db8::/32"]
  - name: lan
    url: {up.base}
    routes:
      - name: lan
        paths: [/lan]
    plugins:
      - name: ip-restriction
        config:
          allow: [127.0.0.0/8]
  - name: small
    url: {up.base}
    routes:
      - name: small
        paths: [/small]
    plugins:
      - name: request-size-limiting
        config:
          allowed_payload_size: 1
          size_unit: kilobytes
  - name: corr
    url: {up.base}
    routes:
      - name: corr
        paths: [/corr]
    plugins:
      - name: correlation-id
        config:
          header_name: X-Correlation-ID
          echo_downstream: true
"""
    gateway = module_processes.add(Gateway(tmp_path_factory.mktemp("gw-plugins"), config)).start()
    return {"gateway": gateway, "up": up}


def test_cors_preflight_is_answered_by_the_gateway(env):
    gw, up = env["gateway"], env["up"]
    up.reset()
    response = requests.options(
        gw.url("/web/items"),
        headers={
            "Origin": APP,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "X-Custom, Content-Type",
        },
        timeout=10,
    )
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert response.headers["Access-Control-Allow-Origin"] == APP
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Access-Control-Allow-Methods"] == "GET,POST,PUT"
    assert response.headers["Access-Control-Allow-Headers"] == "X-Custom, Content-Type"
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert "Origin" in response.headers["Vary"]
    assert up.stats()["total"] == 0


def test_cors_preflight_from_another_origin_gets_no_grant(env):
    gw, up = env["gateway"], env["up"]
    up.reset()
    response = requests.options(
        gw.url("/web/items"),
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "PUT"},
        timeout=10,
    )
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert up.stats()["total"] == 0


def test_cors_actual_request_headers(env):
    gw = env["gateway"]
    response = requests.get(gw.url("/web/items"), headers={"Origin": "http://localhost:3000"}, timeout=10)
    assert response.status_code == 200
    assert response.json()["upstream"] == "alpha"
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Access-Control-Expose-Headers"] == "X-Upstream,X-Request-ID"
    assert "Origin" in response.headers["Vary"]

    plain = requests.get(gw.url("/web/items"), timeout=10)
    assert plain.status_code == 200
    assert "Access-Control-Allow-Origin" not in plain.headers
    evil = requests.get(gw.url("/web/items"), headers={"Origin": "https://evil.example"}, timeout=10)
    assert evil.status_code == 200
    assert "Access-Control-Allow-Origin" not in evil.headers


def test_cors_any_origin_without_credentials(env):
    gw = env["gateway"]
    response = requests.options(
        gw.url("/open/x"),
        headers={"Origin": "https://anyone.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "X-Other"},
        timeout=10,
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type,Authorization"
    actual = requests.get(gw.url("/open/x"), headers={"Origin": "https://anyone.example"}, timeout=10)
    assert actual.headers["Access-Control-Allow-Origin"] == "*"


def test_ip_restriction(env):
    gw, up = env["gateway"], env["up"]
    up.reset()
    for path in ("/denied/x", "/allowlisted/x"):
        response = requests.get(gw.url(path), timeout=10)
        error = assert_error(response, 403, "FORBIDDEN")
        assert error["message"] == "Your IP address is not allowed"
        response = requests.post(gw.url(path), data=b"x" * 10, timeout=10)
        assert_error(response, 403, "FORBIDDEN")
    assert up.stats()["total"] == 0
    response = requests.get(gw.url("/lan/x"), timeout=10)
    assert response.status_code == 200 and response.json()["path"] == "/x"


def test_request_size_limiting(env):
    gw, up = env["gateway"], env["up"]
    up.reset()
    response = requests.post(gw.url("/small/echo"), data=b"a" * 2048, timeout=10)
    error = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert "1024" in error["message"]
    assert_error(requests.post(gw.url("/small/echo"), data=b"a" * 1025, timeout=10), 413,
                 "PAYLOAD_TOO_LARGE")
    assert up.stats()["total"] == 0
    exact = requests.post(gw.url("/small/echo"), data=b"a" * 1024, timeout=10)
    assert exact.status_code == 200
    assert exact.json()["body_length"] == 1024
    assert up.stats()["total"] == 1


def test_correlation_id_with_custom_header(env):
    gw = env["gateway"]
    response = requests.get(gw.url("/corr/x"), timeout=10)
    assert response.status_code == 200
    sent = response.json()["headers"]["x-correlation-id"]
    assert sent == response.headers["X-Correlation-ID"]
    assert sent == response.headers["X-Request-ID"]

    response = requests.get(gw.url("/corr/x"), headers={"X-Correlation-ID": "corr-123"}, timeout=10)
    assert response.json()["headers"]["x-correlation-id"] == "corr-123"
    assert response.headers["X-Correlation-ID"] == "corr-123"
    assert response.headers["X-Request-ID"] != "corr-123"

    # Without the plugin the header is neither added upstream nor echoed.
    response = requests.get(gw.url("/lan/x"), timeout=10)
    assert "x-correlation-id" not in response.json()["headers"]
    assert "X-Correlation-ID" not in response.headers


def test_prometheus_counts_requests_by_service_route_status(env):
    gw = env["gateway"]
    before = gw.metrics()
    for _ in range(7):
        assert requests.get(gw.url("/lan/p"), timeout=10).status_code == 200
    for _ in range(3):
        assert requests.get(gw.url("/denied/p"), timeout=10).status_code == 403
    after = gw.metrics()

    def delta(**labels):
        key = ("gateway_requests_total", frozenset(labels.items()))
        return after.get(key, 0) - before.get(key, 0)

    assert delta(service="lan", route="lan", status="200") == 7
    assert delta(service="denied", route="denied", status="403") == 3
    assert delta(service="lan", route="lan", status="403") == 0


def run_to_exit(tmp_path, text, timeout=20):
    config = tmp_path / "gateway.yaml"
    config.write_text(text)
    gateway = Gateway(tmp_path / "gw", None)
    env = dict(gateway.env, AETHER_GATEWAY_CONFIG=str(config))
    return config, subprocess.run(
        [str(aether_binary()), "serve", "--target=gateway", "--listen", "127.0.0.1:0",
         "--data-dir", str(gateway.data_dir)],
        env=env, capture_output=True, text=True, timeout=timeout,
    )


def test_cors_any_origin_with_credentials_refuses_to_start(tmp_path):
    text = """_format_version: "3.0"
services:
  - name: web
    url: http://127.0.0.1:9
    routes:
      - paths: [/web]
    plugins:
      - name: cors
        config:
          origins: ["*"]
          credentials: true
"""
    config, out = run_to_exit(tmp_path, text)
    assert out.returncode != 0
    output = out.stdout + out.stderr
    assert f"{config}:11: services[0].plugins[0].config.credentials: must not be true" in output, output


def test_path_without_slash_refuses_to_start(tmp_path):
    text = """_format_version: "3.0"
services:
  - name: a
    url: http://127.0.0.1:9
    routes:
      - paths: [/a]
  - name: b
    url: http://127.0.0.1:9
    routes:
      - paths: [api/v1/b]
"""
    config, out = run_to_exit(tmp_path, text)
    assert out.returncode != 0
    output = out.stdout + out.stderr
    assert re.search(re.escape(f"{config}:10: services[1].routes[0].paths[0]: must start with /"), output), output
