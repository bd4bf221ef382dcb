# The original plan's Kong file (testdata/kong-original.yaml) runs as it is, with only its upstream
# URLs pointed at a test upstream: jwt on task-manager, 60/min and 30/min rate limits.
import math
import time

import pytest
import requests

from gateway_harness import KONG_ORIGINAL, Gateway, Upstream, access_token, wait_for_window
from gateway_harness import module_processes  # noqa: F401 (fixtures)
from harness import assert_error, bearer


@pytest.fixture(scope="module")
def env(module_processes, tmp_path_factory):
    upstream = module_processes.add(Upstream("legacy"))
    original = KONG_ORIGINAL.read_text()
    rewritten = original.replace("http://task-manager:8000", upstream.base).replace(
        "http://ai-gateway:8000", upstream.base + "/ai"
    )
    changed = [(a, b) for a, b in zip(original.splitlines(), rewritten.splitlines()) if a != b]
    assert len(original.splitlines()) == len(rewritten.splitlines())
    assert changed == [
        ("    url: http://task-manager:8000", f"    url: {upstream.base}"),
        ("    url: http://ai-gateway:8000", f"    url: {upstream.base}/ai"),
    ]
    gateway = module_processes.add(Gateway(tmp_path_factory.mktemp("gw-kong"), rewritten)).start()
    return {"gateway": gateway, "upstream": upstream}


def token(sub):
    return access_token(
        sub=sub, roles=["user"], permissions=["tasks:read", "tasks:write"], iss="aether-security"
    )


def window_end(now, length=60):
    return (math.floor(now / length) + 1) * length


def test_task_manager_requires_a_token(env):
    gw, upstream = env["gateway"], env["upstream"]
    upstream.reset()
    error = assert_error(requests.get(gw.url("/api/v1/tasks"), timeout=10), 401, "UNAUTHORIZED")
    assert error["message"] == "missing bearer token"
    assert_error(requests.get(gw.url("/api/v1/tasks"), headers=bearer("not.a.token"), timeout=10), 401,
                 "UNAUTHORIZED")
    assert upstream.stats()["total"] == 0

    response = requests.get(gw.url("/api/v1/tasks/42?x=1"), headers=bearer(token("usr_kong_a")), timeout=10)
    assert response.status_code == 200, response.text
    got = response.json()
    # strip_path (Kong's default true) with a service without a path.
    assert got["path"] == "/42?x=1"
    assert got["headers"]["x-user-id"] == "usr_kong_a"


def test_task_manager_methods(env):
    gw = env["gateway"]
    headers = bearer(token("usr_kong_methods"))
    for method in ("GET", "POST", "PUT", "DELETE"):
        response = requests.request(method, gw.url("/api/v1/tasks/1"), headers=headers, timeout=10)
        assert response.status_code == 200, (method, response.text)
        assert response.json()["method"] == method
    response = requests.patch(gw.url("/api/v1/tasks/1"), headers=headers, timeout=10)
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"] == "GET, POST, PUT, DELETE"


def test_task_manager_allows_60_per_minute_per_consumer(env):
    gw = env["gateway"]
    wait_for_window(60, margin=8)
    headers = bearer(token("usr_kong_limit"))
    with requests.Session() as session:
        for i in range(1, 61):
            response = session.get(gw.url(f"/api/v1/tasks/{i}"), headers=headers, timeout=10)
            assert response.status_code == 200, (i, response.text)
            assert response.headers["X-RateLimit-Limit"] == "60"
            assert response.headers["X-RateLimit-Remaining"] == str(60 - i)
            assert int(response.headers["X-RateLimit-Reset"]) == window_end(time.time())
        now = time.time()
        response = session.get(gw.url("/api/v1/tasks/61"), headers=headers, timeout=10)
        error = assert_error(response, 429, "RATE_LIMIT_EXCEEDED")
        retry_after = int(response.headers["Retry-After"])
        assert error["retry_after"] == retry_after
        assert 1 <= retry_after <= 60
        assert abs(retry_after - (window_end(now) - now)) <= 2
        assert response.headers["X-RateLimit-Limit"] == "60"
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert int(response.headers["X-RateLimit-Reset"]) == window_end(now)

        # Another consumer (limit_by consumer = the token's subject) has its own budget.
        other = session.get(gw.url("/api/v1/tasks/1"), headers=bearer(token("usr_kong_other")), timeout=10)
        assert other.status_code == 200
        assert other.headers["X-RateLimit-Remaining"] == "59"


def test_ai_gateway_allows_30_per_minute_without_jwt(env):
    gw, upstream = env["gateway"], env["upstream"]
    wait_for_window(60, margin=5)
    with requests.Session() as session:
        for i in range(1, 31):
            response = session.post(gw.url("/api/v1/ai/complete"), json={"i": i}, timeout=10)
            assert response.status_code == 200, (i, response.text)
            assert response.json()["path"] == "/ai/complete"
            assert response.headers["X-RateLimit-Limit"] == "30"
            assert response.headers["X-RateLimit-Remaining"] == str(30 - i)
        upstream.reset()
        response = session.post(gw.url("/api/v1/ai/complete"), json={"i": 31}, timeout=10)
        error = assert_error(response, 429, "RATE_LIMIT_EXCEEDED")
        assert error["retry_after"] == int(response.headers["Retry-After"])
        assert upstream.stats()["total"] == 0  # a rejected request never reaches the upstream
