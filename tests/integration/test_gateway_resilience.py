# The gateway when upstreams fail: fast 502/503/504 in the error envelope, retries only for
# idempotent requests that never reached an upstream, passive circuit breaking with a half-open
# probe, and active health checks.
import threading
import time

import pytest
import requests

from gateway_harness import Gateway, Stub, Upstream, closed_port, wait_until
from gateway_harness import module_processes  # noqa: F401 (fixtures)
from harness import assert_error


@pytest.fixture(scope="module")
def env(module_processes, tmp_path_factory):
    alpha = module_processes.add(Upstream("alpha"))
    dropper = module_processes.add(Upstream("dropper"))
    flaky = module_processes.add(Upstream("flaky"))
    loaded = module_processes.add(Upstream("loaded"))
    healthy = module_processes.add(Upstream("healthy-a"))
    sick = module_processes.add(Stub("sick-b", health_status=503))
    config = f"""
_format_version: "3.0"
services:
  - name: dead
    url: http://127.0.0.1:{closed_port()}
    retries: 0
    routes:
      - name: dead
        paths: [/dead]
  - name: dead-post
    url: http://127.0.0.1:{closed_port()}
    routes:
      - name: dead-post
        paths: [/dead-post]
  - name: slow
    url: {alpha.base}
    read_timeout: 500
    routes:
      - name: slow
        paths: [/slow]
  - name: pool
    url: http://pool
    routes:
      - name: pool
        paths: [/pool]
  - name: dropper
    url: {dropper.base}
    routes:
      - name: dropper
        paths: [/dropper]
  - name: flaky
    url: {flaky.base}
    retries: 0
    connect_timeout: 500
    routes:
      - name: flaky
        paths: [/flaky]
  - name: loaded
    url: {loaded.base}
    connect_timeout: 500
    routes:
      - name: loaded
        paths: [/loaded]
  - name: checked
    url: http://checked
    retries: 0
    routes:
      - name: checked
        paths: [/checked]
upstreams:
  - name: pool
    targets:
      - target: 127.0.0.1:{closed_port()}
        weight: 100
      - target: {alpha.authority}
        weight: 100
  - name: checked
    targets:
      - target: {healthy.authority}
        weight: 100
      - target: {sick.authority}
        weight: 100
    healthchecks:
      active:
        http_path: /health
        timeout: 1
        healthy:
          interval: 0.1
          successes: 1
        unhealthy:
          interval: 0.1
          http_failures: 1
          tcp_failures: 1
"""
    gateway = module_processes.add(Gateway(tmp_path_factory.mktemp("gw-resilience"), config)).start()
    return {"gateway": gateway, "alpha": alpha, "dropper": dropper, "flaky": flaky, "loaded": loaded,
            "healthy": healthy, "sick": sick}


def timed(call):
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


def test_dead_upstream_gives_fast_502_then_the_circuit_opens(env):
    gw = env["gateway"]
    for i in range(5):
        response, elapsed = timed(lambda: requests.get(gw.url("/dead/x"), timeout=10))
        error = assert_error(response, 502, "UPSTREAM_UNAVAILABLE")
        assert elapsed < 1.0, (i, elapsed)
        assert "unavailable" in error["message"]
    # Five consecutive failures opened the circuit: answered at once, without trying.
    response, elapsed = timed(lambda: requests.get(gw.url("/dead/x"), timeout=10))
    assert_error(response, 503, "UPSTREAM_UNAVAILABLE")
    assert response.headers["Retry-After"] == "1"
    assert elapsed < 0.2


def test_post_to_a_dead_upstream_is_502_and_not_retried(env):
    gw = env["gateway"]
    response, elapsed = timed(lambda: requests.post(gw.url("/dead-post/x"), json={"a": 1}, timeout=10))
    assert_error(response, 502, "UPSTREAM_UNAVAILABLE")
    assert elapsed < 1.0
    # GET (idempotent, retries 5) on the same dead single target retries the refused connection:
    # failures 2..5 open the circuit, and the next attempt finds no target left: 503.
    response, elapsed = timed(lambda: requests.get(gw.url("/dead-post/x"), timeout=10))
    assert_error(response, 503, "UPSTREAM_UNAVAILABLE")
    assert response.headers["Retry-After"] == "1"
    assert elapsed < 1.0


def test_read_timeout_is_504(env):
    gw, alpha = env["gateway"], env["alpha"]
    alpha.reset()
    response, elapsed = timed(lambda: requests.get(gw.url("/slow/delay/3000"), timeout=10))
    error = assert_error(response, 504, "UPSTREAM_UNAVAILABLE")
    assert "in time" in error["message"]
    assert 0.45 <= elapsed < 1.5, elapsed
    response, elapsed = timed(lambda: requests.post(gw.url("/slow/delay/3000"), data=b"x", timeout=10))
    assert_error(response, 504, "UPSTREAM_UNAVAILABLE")
    assert 0.45 <= elapsed < 1.5, elapsed
    # A timed-out request reached the upstream: never retried.
    assert alpha.stats()["paths"] == {"/delay/3000": 2}
    # A quick answer on the same service is fine.
    assert requests.get(gw.url("/slow/delay/10"), timeout=10).status_code == 200


def test_get_is_retried_on_another_target_when_one_refuses(env):
    gw, alpha = env["gateway"], env["alpha"]
    alpha.reset()
    with requests.Session() as session:
        for i in range(20):
            response, elapsed = timed(lambda: session.get(gw.url(f"/pool/r{i}"), timeout=10))
            assert response.status_code == 200, (i, response.text)
            assert response.headers["X-Upstream"] == "alpha"
            assert elapsed < 1.0
    stats = alpha.stats()
    assert stats["total"] == 20
    assert all(count == 1 for count in stats["paths"].values()), stats["paths"]


def drop_counts(dropper):
    stats = dropper.stats()
    return stats["paths"].get("/drop", 0), stats["methods"]


@pytest.mark.parametrize("warm", [False, True])
def test_post_is_never_retried_after_it_was_sent(env, warm):
    gw, dropper = env["gateway"], env["dropper"]
    dropper.reset()
    with requests.Session() as session:
        if warm:  # a pooled keep-alive connection to the upstream exists
            assert session.get(gw.url("/dropper/warm"), timeout=10).status_code == 200
        response, elapsed = timed(lambda: session.post(gw.url("/dropper/drop"), json={"n": 1}, timeout=10))
    assert_error(response, 502, "UPSTREAM_UNAVAILABLE")
    assert elapsed < 1.0
    drops, methods = drop_counts(dropper)
    assert drops == 1
    assert methods.get("POST") == 1


@pytest.mark.parametrize("warm", [False, True])
def test_get_is_not_retried_once_bytes_reached_the_upstream(env, warm):
    gw, dropper = env["gateway"], env["dropper"]
    dropper.reset()
    with requests.Session() as session:
        if warm:
            assert session.get(gw.url("/dropper/warm"), timeout=10).status_code == 200
        response = session.get(gw.url("/dropper/drop"), timeout=10)
    assert_error(response, 502, "UPSTREAM_UNAVAILABLE")
    drops, _ = drop_counts(dropper)
    assert drops == 1, f"the upstream received GET /drop {drops} times"


def test_circuit_opens_and_a_half_open_probe_closes_it(env):
    gw, flaky = env["gateway"], env["flaky"]
    assert requests.get(gw.url("/flaky/warm"), timeout=10).status_code == 200
    flaky.kill()
    for i in range(5):
        response, elapsed = timed(lambda: requests.get(gw.url("/flaky/x"), timeout=10))
        assert_error(response, 502, "UPSTREAM_UNAVAILABLE")
        assert elapsed < 1.0, (i, elapsed)
    opened = time.monotonic()
    response, elapsed = timed(lambda: requests.get(gw.url("/flaky/x"), timeout=10))
    assert_error(response, 503, "UPSTREAM_UNAVAILABLE")
    assert elapsed < 0.2

    flaky.start()  # the same port again
    assert flaky.stats()["total"] == 0
    # While the circuit is open nothing reaches the upstream, even though it is back.
    for _ in range(5):
        assert_error(requests.get(gw.url("/flaky/x"), timeout=10), 503, "UPSTREAM_UNAVAILABLE")
    assert flaky.stats()["total"] == 0

    def recovered():
        return requests.get(gw.url("/flaky/back"), timeout=10).status_code == 200

    wait_until(recovered, timeout=6, interval=0.05, message="the circuit to close")
    assert time.monotonic() - opened >= 1.5  # not before the open interval (2 s) ran out
    for i in range(10):
        assert requests.get(gw.url(f"/flaky/after{i}"), timeout=10).status_code == 200
    assert flaky.stats()["paths"].get("/x", 0) == 0


def test_upstream_killed_under_load_fails_fast_and_recovers(env):
    gw, loaded = env["gateway"], env["loaded"]
    results = []  # (status, elapsed, phase)
    phase = {"value": "before"}
    stop = threading.Event()
    failures = []

    def hammer():
        with requests.Session() as session:
            while not stop.is_set():
                started_in = phase["value"]
                try:
                    response, elapsed = timed(lambda: session.get(gw.url("/loaded/x"), timeout=10))
                    # A request counts for a phase only when it started and ended in it.
                    ended_in = phase["value"]
                    results.append((response.status_code, elapsed,
                                    started_in if started_in == ended_in else "between"))
                except requests.RequestException as error:
                    failures.append(repr(error))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        phase["value"] = "down"
        loaded.kill()
        time.sleep(1.0)
        loaded.start()
        phase["value"] = "back"
        wait_until(lambda: any(s == 200 and p == "back" for s, _, p in results[-20:]), timeout=6,
                   message="traffic to return")
        phase["value"] = "recovered"
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert failures == []
    assert {s for s, _, p in results if p == "before"} == {200}
    down = [(s, e) for s, e, p in results if p == "down"]
    assert down, "no request while the upstream was down"
    assert {s for s, _ in down} <= {200, 502, 503}
    assert any(s in (502, 503) for s, _ in down)
    assert max(e for s, e in down if s != 200) < 1.0
    assert max((e for s, e, p in results if p == "between" and s != 200), default=0) < 1.0
    recovered = [s for s, _, p in results if p == "recovered"]
    assert recovered and set(recovered) == {200}


def test_active_health_check_takes_a_failing_target_out(env):
    gw, healthy, sick = env["gateway"], env["healthy"], env["sick"]
    # The probe runs every 100 ms; one failed probe marks the target unhealthy.
    wait_until(lambda: sick.health_probes >= 3, timeout=5, message="health probes")
    healthy.reset()
    with sick.lock:
        sick.requests.clear()
    with requests.Session() as session:
        for i in range(60):
            response = session.get(gw.url(f"/checked/{i}"), timeout=10)
            assert response.status_code == 200, response.text
            assert response.headers["X-Upstream"] == "healthy-a"
    assert sick.count() == 0
    served = {path: n for path, n in healthy.stats()["paths"].items() if path != "/health"}
    assert served == {f"/{i}": 1 for i in range(60)}

    # Healthy again: it gets its share back (equal weights).
    sick.health_status = 200
    probes = sick.health_probes
    wait_until(lambda: sick.health_probes >= probes + 3, timeout=5, message="health probes")
    seen = {"healthy-a": 0, "sick-b": 0}
    with requests.Session() as session:
        for i in range(60):
            response = session.get(gw.url(f"/checked/{i}"), timeout=10)
            assert response.status_code == 200
            seen[response.headers["X-Upstream"]] += 1
    assert seen["sick-b"] >= 20 and seen["healthy-a"] >= 20, seen
