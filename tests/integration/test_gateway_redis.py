# Shared rate limits: two gateway processes counting in one real Redis admit exactly the limit
# together; with Redis gone they fall back to local counters and say so in their metrics.
import collections
import tempfile
import threading
import time

import pytest
import requests

from gateway_harness import Gateway, Redis, Upstream, wait_for_window, wait_until
from gateway_harness import module_processes  # noqa: F401 (fixtures)
from harness import assert_error


@pytest.fixture(scope="module")
def env(module_processes, tmp_path_factory):
    redis = module_processes.add(Redis(tempfile.mkdtemp(prefix="aether-gw-redis-")))
    up = module_processes.add(Upstream("alpha"))
    config = f"""
_format_version: "3.0"
services:
  - name: shared
    url: {up.base}
    routes:
      - name: shared
        paths: [/shared]
    plugins:
      - name: rate-limiting
        config:
          minute: 100
          policy: redis
          limit_by: ip
  - name: fallback
    url: {up.base}
    routes:
      - name: fallback
        paths: [/fallback]
    plugins:
      - name: rate-limiting
        config:
          minute: 3
          policy: redis
          limit_by: ip
"""
    env = {"AETHER_CACHE_REDIS_URL": redis.url}
    first = module_processes.add(Gateway(tmp_path_factory.mktemp("gw-redis-1"), config, env=env)).start()
    second = module_processes.add(Gateway(tmp_path_factory.mktemp("gw-redis-2"), config, env=env)).start()
    return {"redis": redis, "up": up, "gateways": [first, second]}


def test_two_gateways_sharing_redis_admit_exactly_the_limit(env):
    gateways, up = env["gateways"], env["up"]
    up.reset()
    wait_for_window(60, margin=10)
    results = []
    errors = []
    lock = threading.Lock()
    barrier = threading.Barrier(30)

    def worker(index):
        local = []
        with requests.Session() as session:
            barrier.wait()
            for i in range(10):
                gw = gateways[(index + i) % 2]
                try:
                    response = session.get(gw.url(f"/shared/{index}-{i}"), timeout=15)
                    local.append((response.status_code, response.headers.get("X-RateLimit-Remaining"),
                                  response))
                except requests.RequestException as error:
                    errors.append(repr(error))
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    statuses = collections.Counter(status for status, _, _ in results)
    assert statuses == {200: 100, 429: 200}, statuses
    # Each admitted request saw its own place in the shared count.
    remaining = sorted(int(r) for status, r, _ in results if status == 200)
    assert remaining == list(range(100))
    for status, _, response in results:
        assert response.headers["X-RateLimit-Limit"] == "100"
        if status == 429:
            assert_error(response, 429, "RATE_LIMIT_EXCEEDED")
            assert response.headers["X-RateLimit-Remaining"] == "0"
    assert up.stats()["total"] == 100


def test_redis_outage_falls_back_to_local_limits(env):
    gateways, redis = env["gateways"], env["redis"]
    first = gateways[0]
    assert first.metric("gateway_rate_limit_redis_degraded") == 0
    redis.kill()
    try:
        wait_for_window(60, margin=5)
        for i in range(1, 4):
            start = time.monotonic()
            response = requests.get(first.url(f"/fallback/{i}"), timeout=15)
            assert response.status_code == 200, (i, response.text)
            assert time.monotonic() - start < 1.0
            assert response.headers["X-RateLimit-Remaining"] == str(3 - i)
        response = requests.get(first.url("/fallback/4"), timeout=15)
        assert_error(response, 429, "RATE_LIMIT_EXCEEDED")
        assert first.metric("gateway_rate_limit_redis_degraded") == 1
        def outage_records():
            return [r for r in first.log_records() if "Redis unreachable" in r.get("message", "")]

        wait_until(outage_records, timeout=5, message="the outage logged")
        records = outage_records()
        assert len(records) == 1, records
        assert records[0]["level"] == "error"
        # The other replica has not needed Redis since: it has not noticed.
        assert gateways[1].metric("gateway_rate_limit_redis_degraded") == 0
    finally:
        redis.start()

    # Redis back (same port): shared counting resumes and the gauge returns to 0.
    def recovered():
        requests.get(first.url("/shared/after"), timeout=15)
        return first.metric("gateway_rate_limit_redis_degraded") == 0

    wait_until(recovered, timeout=10, interval=0.2, message="the gateway to use Redis again")
