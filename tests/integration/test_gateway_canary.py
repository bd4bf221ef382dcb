# Canary and shadow traffic: weighted targets (changed by editing the file) and mirroring to a
# shadow upstream that never delays the client, with mismatches counted per route.
import collections
import threading
import time

import pytest
import requests

from gateway_harness import Gateway, Stub, Upstream, closed_port, wait_until
from gateway_harness import module_processes, processes  # noqa: F401 (fixtures)


def canary_config(stable, canary, stable_weight, canary_weight):
    return f"""
_format_version: "3.0"
services:
  - name: orders
    url: http://orders-upstream/v1
    routes:
      - name: orders
        paths: [/orders]
upstreams:
  - name: orders-upstream
    targets:
      - target: {stable.authority}
        weight: {stable_weight}
      - target: {canary.authority}
        weight: {canary_weight}
"""


def spread(gw, total, threads=4):
    """GETs `total` requests over a few keep-alive connections; counts X-Upstream."""
    counts = collections.Counter()
    errors = []
    lock = threading.Lock()

    def worker(n):
        local = collections.Counter()
        with requests.Session() as session:
            for i in range(n):
                response = session.get(gw.url(f"/orders/{i}"), timeout=10)
                if response.status_code != 200:
                    errors.append((response.status_code, response.text[:200]))
                    continue
                local[response.headers["X-Upstream"]] += 1
        with lock:
            counts.update(local)

    per = total // threads
    workers = [threading.Thread(target=worker, args=(per,)) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)
    assert errors == []
    assert sum(counts.values()) == per * threads
    return counts


def test_canary_weights_and_a_reload_by_file_change(processes, tmp_path):
    stable = processes.add(Upstream("stable"))
    canary = processes.add(Upstream("canary"))
    gw = processes.add(
        Gateway(tmp_path, canary_config(stable, canary, 90, 10),
                env={"AETHER_GATEWAY_WATCH_INTERVAL": "200ms"})
    ).start()

    response = requests.get(gw.url("/orders/1?x=y"), timeout=10)
    assert response.json()["path"] == "/v1/1?x=y"

    counts = spread(gw, 5000)
    share = counts["canary"] / 5000
    assert 0.08 <= share <= 0.12, counts
    assert counts["stable"] + counts["canary"] == 5000

    # 50/50 by editing the file (no signal): the watcher reloads it.
    before = gw.reloads("ok")
    gw.write_config(canary_config(stable, canary, 50, 50))
    wait_until(lambda: gw.reloads("ok") >= before + 1, timeout=5, message="a reload by file change")
    counts = spread(gw, 1000)
    assert 0.45 <= counts["canary"] / 1000 <= 0.55, counts

    # Rolled back: weight 0 drains the canary completely.
    before = gw.reloads("ok")
    gw.write_config(canary_config(stable, canary, 100, 0))
    wait_until(lambda: gw.reloads("ok") >= before + 1, timeout=5, message="a reload by file change")
    counts = spread(gw, 400)
    assert counts == {"stable": 400}


# ---------------------------------------------------------------------------------------------
# Mirror


@pytest.fixture(scope="module")
def mirror_env(module_processes, tmp_path_factory):
    primary = module_processes.add(Upstream("alpha"))
    shadow_same = module_processes.add(Upstream("alpha"))  # same name: identical bodies
    shadow_other = module_processes.add(Upstream("beta"))
    failing = module_processes.add(Stub("failing", status=500))
    slow = module_processes.add(Stub("slow", status=200, delay=1.5))
    recorder = module_processes.add(Stub("recorder", status=200))
    config = f"""
_format_version: "3.0"
services:
  - name: m-match
    url: {primary.base}
    mirror:
      url: {shadow_same.base}
    routes:
      - name: m-match
        paths: [/mm]
  - name: m-mismatch
    url: {primary.base}
    mirror:
      url: {failing.base}
      compare: status
    routes:
      - name: m-mismatch
        paths: [/mx]
  - name: m-slow
    url: {primary.base}
    mirror:
      url: {slow.base}
      timeout: 5000
    routes:
      - name: m-slow
        paths: [/ms]
  - name: m-timeout
    url: {primary.base}
    mirror:
      url: {slow.base}
      timeout: 300
    routes:
      - name: m-timeout
        paths: [/mt]
  - name: m-body-same
    url: {primary.base}
    mirror:
      url: {shadow_same.base}
      compare: body
    routes:
      - name: m-body-same
        paths: [/mbs]
  - name: m-body-diff
    url: {primary.base}
    mirror:
      url: {shadow_other.base}
      compare: body
    routes:
      - name: m-body-diff
        paths: [/mbd]
  - name: m-dead
    url: {primary.base}
    mirror:
      url: http://127.0.0.1:{closed_port()}
    routes:
      - name: m-dead
        paths: [/md]
  - name: m-record
    url: {primary.base}
    mirror:
      url: {recorder.base}
    routes:
      - name: m-record
        paths: [/mr]
"""
    gateway = module_processes.add(Gateway(tmp_path_factory.mktemp("gw-mirror"), config)).start()
    return {"gateway": gateway, "primary": primary, "shadow_same": shadow_same,
            "shadow_other": shadow_other, "failing": failing, "slow": slow, "recorder": recorder}


def mirror_count(gw, route, result):
    return gw.metric("gateway_mirror_requests_total", route=route, result=result)


def wait_mirror(gw, route, result, expected, timeout=8):
    wait_until(lambda: mirror_count(gw, route, result) >= expected, timeout,
               message=f"mirror {route}/{result} to reach {expected}")
    time.sleep(0.1)  # nothing more may arrive
    assert mirror_count(gw, route, result) == expected


def test_mirror_match_is_counted(mirror_env):
    gw, primary, shadow = mirror_env["gateway"], mirror_env["primary"], mirror_env["shadow_same"]
    primary.reset()
    shadow.reset()
    for _ in range(20):
        response = requests.get(gw.url("/mm/status/200"), timeout=10)
        assert response.status_code == 200
        assert response.headers["X-Upstream"] == "alpha"
    wait_mirror(gw, "m-match", "match", 20)
    assert mirror_count(gw, "m-match", "status_mismatch") == 0
    assert shadow.stats()["paths"] == {"/status/200": 20}
    assert primary.stats()["paths"] == {"/status/200": 20}


def test_mirror_status_mismatch_is_counted_and_the_client_gets_the_primary(mirror_env):
    gw, failing = mirror_env["gateway"], mirror_env["failing"]
    for i in range(10):
        response = requests.get(gw.url(f"/mx/items/{i}"), timeout=10)
        assert response.status_code == 200
        assert response.headers["X-Upstream"] == "alpha"
        assert response.json()["path"] == f"/items/{i}"
    wait_mirror(gw, "m-mismatch", "status_mismatch", 10)
    assert mirror_count(gw, "m-mismatch", "match") == 0
    assert sorted(path for _, path, _, _ in failing.requests) == sorted(f"/items/{i}" for i in range(10))


def test_slow_shadow_never_delays_the_client(mirror_env):
    gw, slow = mirror_env["gateway"], mirror_env["slow"]
    start = time.monotonic()
    for _ in range(3):
        response = requests.get(gw.url("/ms/slow-x"), timeout=10)
        assert response.status_code == 200
        assert response.headers["X-Upstream"] == "alpha"
    elapsed = time.monotonic() - start
    assert elapsed < 0.6, elapsed  # the shadow takes 1.5 s for each
    assert mirror_count(gw, "m-slow", "match") == 0  # still waiting for the shadow
    wait_mirror(gw, "m-slow", "match", 3)
    assert [path for _, path, _, _ in slow.requests if path == "/slow-x"] == ["/slow-x"] * 3


def test_shadow_slower_than_its_timeout_is_an_error(mirror_env):
    gw = mirror_env["gateway"]
    start = time.monotonic()
    response = requests.get(gw.url("/mt/x"), timeout=10)
    assert response.status_code == 200
    assert time.monotonic() - start < 0.6
    wait_mirror(gw, "m-timeout", "error", 1)
    assert mirror_count(gw, "m-timeout", "match") == 0


def test_mirror_body_comparison(mirror_env):
    gw = mirror_env["gateway"]
    for _ in range(4):
        assert requests.get(gw.url("/mbs/status/200"), timeout=10).status_code == 200
        assert requests.get(gw.url("/mbd/status/200"), timeout=10).status_code == 200
    wait_mirror(gw, "m-body-same", "match", 4)
    wait_mirror(gw, "m-body-diff", "body_mismatch", 4)
    assert mirror_count(gw, "m-body-same", "body_mismatch") == 0
    assert mirror_count(gw, "m-body-diff", "match") == 0


def test_unreachable_shadow_is_an_error_not_a_client_failure(mirror_env):
    gw = mirror_env["gateway"]
    for _ in range(3):
        response = requests.get(gw.url("/md/x"), timeout=10)
        assert response.status_code == 200
        assert response.headers["X-Upstream"] == "alpha"
    wait_mirror(gw, "m-dead", "error", 3)


def test_mirror_copies_method_path_headers_and_body(mirror_env):
    gw, recorder = mirror_env["gateway"], mirror_env["recorder"]
    body = b'{"order": 42, "note": "h\xc3\xa9"}'
    response = requests.post(gw.url("/mr/orders?src=web"), data=body,
                             headers={"Content-Type": "application/json", "X-Custom": "c1",
                                      "X-Request-ID": "mirror-req-1"},
                             timeout=10)
    assert response.status_code == 200
    assert response.json()["body"] == body.decode()
    wait_until(lambda: recorder.count() >= 1, timeout=5, message="the shadow copy")
    method, path, headers, received = recorder.requests[0]
    assert (method, path, received) == ("POST", "/orders?src=web", body)
    assert headers["x-custom"] == "c1"
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"] == "mirror-req-1"
    assert headers["host"] == recorder.authority
    wait_mirror(gw, "m-record", "match", 1)
