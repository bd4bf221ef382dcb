# Probes, metrics, OpenAPI, request IDs, the error envelope on 404/405, and CORS.
import json
import re
import subprocess

import pytest
import requests

from harness import DEFAULT_TARGET, assert_error, new_user

ALLOWED = "https://app.example.com"
# The service label and /health name: the target, or "aether" for the all-in-one process.
SERVICE = "aether" if DEFAULT_TARGET == "all" else DEFAULT_TARGET


@pytest.fixture(scope="module")
def dep(module_factory):
    return module_factory(env={"AETHER_HTTP_CORS_ALLOWED_ORIGINS": f"{ALLOWED},https://admin.example.com"})


def test_health(dep):
    response = requests.get(dep.url("/health"), timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "service": SERVICE}


def test_ready(dep):
    response = requests.get(dep.url("/ready"), timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_metrics_use_route_templates_and_pass_promtool(dep):
    user = new_user(dep)
    # Raw paths with ids must be folded into their template.
    for key_id in ("ak_aaaa", "ak_bbbb", "ak_cccc"):
        requests.delete(dep.api(f"/api-keys/{key_id}"), headers=user.headers(), timeout=10)
    requests.get(dep.url("/no/such/path/123"), timeout=10)
    response = requests.get(dep.url("/metrics"), timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    samples = [line for line in text.splitlines() if line.startswith("http_requests_total{")]
    assert samples, text[:2000]
    routes = set()
    for line in samples:
        series, value = line.rsplit(" ", 1)
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', series))
        assert set(labels) >= {"service", "method", "route", "status"}, line
        assert labels["service"] == SERVICE
        routes.add(labels["route"])
        float(value)
    assert "/api/v1/auth/api-keys/{id}" in routes, routes
    assert "/api/v1/auth/login" in routes and "/api/v1/auth/register" in routes
    assert not any("ak_aaaa" in r or "/123" in r for r in routes), routes
    assert "http_request_duration_seconds_bucket" in text
    assert 'le="+Inf"' in text
    check = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr


def test_openapi_lists_the_routes(dep):
    response = requests.get(dep.url("/openapi.json"), timeout=10)
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    expected = {
        "/api/v1/auth/register": "post",
        "/api/v1/auth/login": "post",
        "/api/v1/auth/refresh": "post",
        "/api/v1/auth/validate": "post",
        "/api/v1/auth/me": "get",
        "/api/v1/auth/logout": "post",
        "/api/v1/auth/api-keys": "get",
        "/api/v1/auth/api-keys/{id}": "delete",
        "/api/v1/auth/users": "get",
        "/api/v1/auth/users/{id}/roles": "put",
        "/api/v1/auth/audit": "get",
        "/api/v1/auth/.well-known/jwks.json": "get",
    }
    for path, method in expected.items():
        assert path in paths, (path, sorted(paths))
        assert method in paths[path], (path, paths[path])
    assert "post" in paths["/api/v1/auth/api-keys"]


def test_request_id_valid_is_echoed(dep):
    rid = "client-req_42.abc:1"
    response = requests.get(dep.url("/health"), headers={"X-Request-ID": rid}, timeout=10)
    assert response.headers["X-Request-ID"] == rid
    error = requests.get(dep.url("/nope"), headers={"X-Request-ID": rid}, timeout=10)
    assert assert_error(error, 404, "NOT_FOUND")["request_id"] == rid


@pytest.mark.parametrize("rid", ["has space", "x" * 200, "<script>", "a\tb", "ü-nicode"])
def test_request_id_invalid_is_replaced(dep, rid):
    response = requests.get(dep.url("/nope"), headers={"X-Request-ID": rid.encode()}, timeout=10)
    echoed = response.headers["X-Request-ID"]
    assert echoed and echoed != rid
    assert re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", echoed), echoed
    assert assert_error(response, 404)["request_id"] == echoed


def test_request_id_generated_when_absent(dep):
    first = requests.get(dep.url("/health"), timeout=10).headers["X-Request-ID"]
    second = requests.get(dep.url("/health"), timeout=10).headers["X-Request-ID"]
    assert first and second and first != second


def test_unknown_path_is_404_envelope(dep):
    # Authenticated, so that behind the gateway's jwt plugin the module itself answers.
    user = new_user(dep)
    response = requests.get(dep.url("/api/v1/auth/nothing"), headers=user.headers(), timeout=10)
    assert_error(response, 404, "NOT_FOUND")
    assert_error(requests.post(dep.url("/"), timeout=10), 404, "NOT_FOUND")


def test_wrong_method_is_405_with_allow(dep):
    response = requests.get(dep.api("/login"), timeout=10)
    error = assert_error(response, 405)
    assert error["code"]
    assert [m.strip() for m in response.headers["Allow"].split(",")] == ["POST"]
    user = new_user(dep)
    response = requests.patch(dep.api("/api-keys"), headers=user.headers(), timeout=10)
    assert_error(response, 405)
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed >= {"GET", "POST"}, allowed


def test_cors_allowed_origin_is_echoed(dep):
    response = requests.get(dep.url("/health"), headers={"Origin": ALLOWED}, timeout=10)
    assert response.headers.get("Access-Control-Allow-Origin") == ALLOWED
    assert "Origin" in response.headers.get("Vary", "")
    # Errors carry CORS too, or browsers hide them from the app.
    response = requests.get(dep.api("/me"), headers={"Origin": ALLOWED}, timeout=10)
    assert response.status_code == 401
    assert response.headers.get("Access-Control-Allow-Origin") == ALLOWED


def test_cors_unknown_origin_gets_no_acao(dep):
    response = requests.get(dep.url("/health"), headers={"Origin": "https://evil.example.com"}, timeout=10)
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_cors_preflight(dep):
    response = requests.options(
        dep.api("/login"),
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization",
        },
        timeout=10,
    )
    assert response.status_code == 204, response.text
    assert response.headers.get("Access-Control-Allow-Origin") == ALLOWED
    methods = {m.strip() for m in response.headers.get("Access-Control-Allow-Methods", "").split(",")}
    assert "POST" in methods
    allowed_headers = response.headers.get("Access-Control-Allow-Headers", "").lower()
    assert "authorization" in allowed_headers and "content-type" in allowed_headers
    evil = requests.options(
        dep.api("/login"),
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert "Access-Control-Allow-Origin" not in evil.headers


def test_error_bodies_leak_no_internals(dep):
    response = requests.post(dep.api("/login"), data=b'{"email": [', timeout=10)
    text = json.dumps(response.json())
    for needle in ("boost", "std::", ".cpp", "sqlite", "postgres", "SELECT"):
        assert needle not in text, text
