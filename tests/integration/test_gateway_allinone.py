# All-in-one mode: `--target=all` without a gateway file puts the built-in edge in front of the
# in-process modules (jwt on everything but the public auth endpoints); probes stay served.
import json

import pytest
import requests

from gateway_harness import Gateway, Upstream, access_token, metric_value, wait_for_window, wait_until
from gateway_harness import module_processes  # noqa: F401 (fixtures)
from harness import PASSWORD, assert_error, bearer, unique_email


@pytest.fixture(scope="module")
def aio(module_processes, tmp_path_factory):
    return module_processes.add(
        Gateway(tmp_path_factory.mktemp("gw-all"), None, target="all")
    ).start()


def request_records(gw, request_id):
    return [r for r in gw.log_records() if r.get("message") == "request" and r.get("request_id") == request_id]


def test_register_login_and_me_through_the_edge(aio):
    email = unique_email("edge")
    response = requests.post(aio.url("/api/v1/auth/register"),
                             json={"email": email, "password": PASSWORD, "name": "Edge User"}, timeout=30)
    assert response.status_code == 201, response.text
    user_id = response.json()["user_id"]
    assert response.json()["email"] == email

    response = requests.post(aio.url("/api/v1/auth/login"), json={"email": email, "password": PASSWORD},
                             timeout=30)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "Bearer" and tokens["user"]["id"] == user_id

    # No token: refused by the edge's jwt plugin (route "security"), before the module runs.
    response = requests.get(aio.url("/api/v1/auth/me"), timeout=10)
    error = assert_error(response, 401, "UNAUTHORIZED")
    assert error["message"] == "missing bearer token"
    # The access log line may be written just after the response went out.
    records = wait_until(lambda: request_records(aio, error["request_id"]), timeout=5,
                         message="the access log line")
    assert [r["route"] for r in records] == ["security"], records

    response = requests.get(aio.url("/api/v1/auth/me"), headers=bearer(tokens["access_token"]), timeout=10)
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["user_id"] == user_id and me["email"] == email

    # A refresh token is not an access token, at the edge as in the module.
    response = requests.get(aio.url("/api/v1/auth/me"), headers=bearer(tokens["refresh_token"]), timeout=10)
    assert_error(response, 401, "UNAUTHORIZED")

    # The public refresh endpoint needs no bearer token.
    response = requests.post(aio.url("/api/v1/auth/refresh"),
                             json={"refresh_token": tokens["refresh_token"]}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]


def test_edge_refuses_a_forged_token_and_spoofed_identity(aio):
    forged = access_token(sub="usr_forged")
    forged = forged[:-2] + ("AA" if not forged.endswith("AA") else "BB")
    response = requests.get(aio.url("/api/v1/auth/me"), headers={**bearer(forged), "X-User-ID": "usr_admin"},
                            timeout=10)
    assert_error(response, 401, "UNAUTHORIZED")


def test_validate_is_public_at_the_edge(aio):
    response = requests.post(aio.url("/api/v1/auth/validate"), json={"token": "garbage"}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["valid"] is False


def test_probes_are_still_served(aio):
    response = requests.get(aio.url("/health"), timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"
    response = requests.get(aio.url("/ready"), timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    response = requests.get(aio.url("/metrics"), timeout=10)
    assert response.status_code == 200
    assert "gateway_config_reloads_total" in response.text
    assert 'gateway_config_reloads_total{result="ok"} 1' in response.text


def test_unknown_paths_get_the_gateway_404(aio):
    response = requests.get(aio.url("/api/v1/nothing"), timeout=10)
    error = assert_error(response, 404, "NOT_FOUND")
    assert error["message"] == "no route matches this request"
    response = requests.get(aio.url("/api/v1/authx/me"), timeout=10)
    assert_error(response, 404, "NOT_FOUND")
    assert json.loads(response.text)["error"]["request_id"] == response.headers["X-Request-ID"]


def test_a_gateway_file_in_all_in_one_mode_mixes_modules_and_proxies(module_processes, tmp_path):
    up = module_processes.add(Upstream("alpha"))
    config = f"""
_format_version: "3.0"
plugins:
  - name: prometheus
services:
  - name: auth
    module: security
    routes:
      - name: auth-public
        paths: [/api/v1/auth/register, /api/v1/auth/login, /api/v1/auth/validate]
        plugins:
          - name: rate-limiting
            config:
              minute: 5
              limit_by: ip
      - name: auth
        paths: [/api/v1/auth]
        plugins:
          - name: jwt
  - name: legacy
    url: {up.base}/old
    routes:
      - name: legacy
        paths: [/legacy]
"""
    gw = module_processes.add(Gateway(tmp_path, config, target="all")).start()
    wait_for_window(60, margin=5)
    # In-process: module services keep the full path (strip_path defaults to false for them).
    email = unique_email("mixed")
    response = requests.post(gw.url("/api/v1/auth/register"),
                             json={"email": email, "password": PASSWORD, "name": "Mixed"}, timeout=30)
    assert response.status_code == 201, response.text
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "4"
    response = requests.post(gw.url("/api/v1/auth/login"), json={"email": email, "password": PASSWORD},
                             timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["X-RateLimit-Remaining"] == "3"
    token = response.json()["access_token"]
    assert_error(requests.get(gw.url("/api/v1/auth/me"), timeout=10), 401, "UNAUTHORIZED")
    me = requests.get(gw.url("/api/v1/auth/me"), headers=bearer(token), timeout=10)
    assert me.status_code == 200, me.text
    assert me.json()["email"] == email

    # Proxied next to it.
    response = requests.get(gw.url("/legacy/items?x=1"), timeout=10)
    assert response.status_code == 200
    assert response.json()["path"] == "/old/items?x=1"

    # The same plugin chain as for proxied services: the rate limit applies to the module route.
    for remaining in (2, 1, 0):
        response = requests.post(gw.url("/api/v1/auth/validate"), json={"token": "x"}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.headers["X-RateLimit-Remaining"] == str(remaining)
    assert_error(requests.post(gw.url("/api/v1/auth/validate"), json={"token": "x"}, timeout=10), 429,
                 "RATE_LIMIT_EXCEEDED")
    metrics = gw.metrics()
    assert metric_value(metrics, "gateway_requests_total", service="auth", route="auth", status="200") == 1
    assert metric_value(metrics, "gateway_requests_total", service="auth", route="auth-public",
                        status="201") == 1
    assert metric_value(metrics, "gateway_requests_total", service="auth", route="auth-public",
                        status="200") == 4
    assert metric_value(metrics, "gateway_requests_total", service="legacy", route="legacy",
                        status="200") == 1
