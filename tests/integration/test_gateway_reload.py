# Configuration reloads: SIGHUP and file changes swap the routes atomically, a bad file is refused
# (counted and logged) while the old configuration keeps serving, and reloads under load lose
# no request.
import threading
import time

import pytest
import requests

from gateway_harness import Gateway, Upstream, wait_until
from gateway_harness import module_processes, processes  # noqa: F401 (fixtures)
from harness import assert_error


@pytest.fixture(scope="module")
def ups(module_processes):
    return {
        "alpha": module_processes.add(Upstream("alpha")),
        "beta": module_processes.add(Upstream("beta")),
    }


def config_a(ups, a_target="alpha"):
    return f"""
_format_version: "3.0"
services:
  - name: svc-a
    url: {ups[a_target].base}
    routes:
      - name: route-a
        paths: [/a]
"""


def config_ab(ups):
    return config_a(ups) + f"""
  - name: svc-b
    url: {ups["beta"].base}
    routes:
      - name: route-b
        paths: [/b]
"""


BROKEN_YAML = '_format_version: "3.0"\nservices:\n  - name: x\n    url: [unclosed\n'


def rejected_records(gw):
    return [r for r in gw.log_records()
            if r.get("message", "").startswith("gateway configuration rejected")]


def upstream_of(gw, path):
    response = requests.get(gw.url(path), timeout=10)
    return response.status_code, response.headers.get("X-Upstream")


def test_sighup_makes_a_new_route_routable(ups, processes, tmp_path):
    gw = processes.add(Gateway(tmp_path, config_a(ups), env={"AETHER_GATEWAY_WATCH_INTERVAL": "0s"})).start()
    assert upstream_of(gw, "/a/1") == (200, "alpha")
    assert_error(requests.get(gw.url("/b/1"), timeout=10), 404, "NOT_FOUND")

    gw.write_config(config_ab(ups))
    time.sleep(0.3)  # with the watcher off, nothing changes until the signal
    assert_error(requests.get(gw.url("/b/1"), timeout=10), 404, "NOT_FOUND")
    gw.reload("ok")
    assert upstream_of(gw, "/b/1") == (200, "beta")
    assert upstream_of(gw, "/a/1") == (200, "alpha")

    # And a route removed by a reload is gone.
    gw.write_config(config_a(ups))
    gw.reload("ok")
    assert_error(requests.get(gw.url("/b/1"), timeout=10), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "broken, expected_log",
    [
        (BROKEN_YAML, "gateway.yaml:"),
        # A path without its leading slash, with the key path named.
        ('_format_version: "3.0"\nservices:\n  - name: x\n    url: http://127.0.0.1:9\n'
         "    routes:\n      - paths: [b]\n",
         "gateway.yaml:6: services[0].routes[0].paths[0]: must start with /"),
        # An in-process module this process does not run.
        ('_format_version: "3.0"\nservices:\n  - name: x\n    module: tasks\n'
         "    routes:\n      - paths: [/b]\n",
         "names module tasks"),
        ('_format_version: "2.1"\nservices: []\n', "_format_version"),
        ("", "gateway.yaml"),
    ],
    ids=["bad-yaml", "bad-path", "unknown-module", "bad-version", "empty"],
)
def test_a_broken_file_is_refused_and_the_old_one_keeps_serving(ups, processes, tmp_path, broken,
                                                               expected_log):
    gw = processes.add(Gateway(tmp_path, config_ab(ups), env={"AETHER_GATEWAY_WATCH_INTERVAL": "0s"})).start()
    ok_before = gw.reloads("ok")
    gw.write_config(broken)
    gw.reload("rejected")
    assert gw.reloads("rejected") == 1
    assert gw.reloads("ok") == ok_before
    assert upstream_of(gw, "/a/1") == (200, "alpha")
    assert upstream_of(gw, "/b/1") == (200, "beta")
    # The counter goes up just before the log line is written.
    wait_until(lambda: rejected_records(gw), timeout=5, message="the rejection logged")
    rejected = rejected_records(gw)
    assert len(rejected) == 1, rejected
    assert rejected[0]["level"] == "error"
    assert expected_log in str(rejected[0].get("errors")), rejected[0]

    # A good file afterwards is taken.
    gw.write_config(config_a(ups, a_target="beta"))
    gw.reload("ok")
    assert upstream_of(gw, "/a/1") == (200, "beta")
    assert_error(requests.get(gw.url("/b/1"), timeout=10), 404, "NOT_FOUND")


def test_a_missing_file_is_refused(ups, processes, tmp_path):
    gw = processes.add(Gateway(tmp_path, config_ab(ups), env={"AETHER_GATEWAY_WATCH_INTERVAL": "0s"})).start()
    gw.config_path.unlink()
    gw.reload("rejected")
    assert upstream_of(gw, "/b/1") == (200, "beta")


def test_file_changes_are_picked_up_and_a_broken_change_is_refused_once(ups, processes, tmp_path):
    gw = processes.add(
        Gateway(tmp_path, config_a(ups), env={"AETHER_GATEWAY_WATCH_INTERVAL": "100ms"})
    ).start()
    assert gw.reloads("ok") == 1
    gw.write_config(config_ab(ups))
    wait_until(lambda: upstream_of(gw, "/b/1") == (200, "beta"), timeout=5, message="the new route")
    assert gw.reloads("ok") == 2

    gw.write_config(BROKEN_YAML)
    wait_until(lambda: gw.reloads("rejected") == 1, timeout=5, message="the broken file refused")
    time.sleep(0.6)  # several polls: the same broken file is not reloaded (and logged) again
    assert gw.reloads("rejected") == 1
    assert upstream_of(gw, "/b/1") == (200, "beta")

    gw.write_config(config_a(ups, a_target="beta"))
    wait_until(lambda: upstream_of(gw, "/a/1") == (200, "beta"), timeout=5, message="the fixed file")
    assert gw.reloads("ok") == 3


def test_reload_under_load_loses_no_request(ups, processes, tmp_path):
    gw = processes.add(Gateway(tmp_path, config_ab(ups), env={"AETHER_GATEWAY_WATCH_INTERVAL": "0s"})).start()
    stop = threading.Event()
    statuses = []
    seen = set()
    failures = []
    lock = threading.Lock()

    def hammer(path):
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    response = session.get(gw.url(path), timeout=10)
                    with lock:
                        statuses.append(response.status_code)
                        seen.add(response.headers.get("X-Upstream"))
                except requests.RequestException as error:
                    with lock:
                        failures.append(repr(error))

    def post_hammer():
        with requests.Session() as session:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    response = session.post(gw.url("/a/post"), json={"i": i}, timeout=10)
                    with lock:
                        statuses.append(response.status_code)
                        if response.status_code == 200 and response.json()["body"] != f'{{"i": {i}}}':
                            failures.append(("body", i, response.json()["body"]))
                except requests.RequestException as error:
                    with lock:
                        failures.append(repr(error))

    threads = [threading.Thread(target=hammer, args=(p,)) for p in ("/a/x", "/a/y", "/b/z")]
    threads.append(threading.Thread(target=post_hammer))
    for thread in threads:
        thread.start()
    try:
        for i in range(10):
            # svc-a alternates between the two upstreams; route-b stays.
            target = "beta" if i % 2 == 0 else "alpha"
            text = config_a(ups, a_target=target) + f"""
  - name: svc-b
    url: {ups["beta"].base}
    routes:
      - name: route-b
        paths: [/b]
"""
            gw.write_config(text)
            gw.reload("ok")
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    assert failures == []
    assert len(statuses) > 200
    assert set(statuses) == {200}
    assert seen == {"alpha", "beta"}
    assert gw.reloads("ok") == 11
    assert gw.reloads("rejected") == 0
