# Fixtures: the backend parameter (SQLite, PostgreSQL), the PostgreSQL cluster, server factories.
import contextlib
import tempfile

import pytest

from harness import Deployment, PostgresCluster

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def pg_cluster():
    # Directly under /tmp: the server runs as `postgres`, which cannot enter pytest's 0700 dirs.
    cluster = PostgresCluster(tempfile.mkdtemp(prefix="aether-itest-pg-"))
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def rabbit_broker():
    # Imported here: only the bus suites need the broker (and Node.js for their consumer).
    from bus_harness import RabbitBroker

    broker = RabbitBroker()
    yield broker
    broker.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(scope="module")
def cluster(backend, request):
    """The PostgreSQL cluster when the backend is postgres, else None."""
    return request.getfixturevalue("pg_cluster") if backend == "postgres" else None


class _Factory:
    def __init__(self, backend, cluster, tmp_path_factory):
        self.backend = backend
        self.cluster = cluster
        self.tmp_path_factory = tmp_path_factory
        self.started = []

    def __call__(self, env=None, start=True, create_admin=True, args=()):
        directory = self.tmp_path_factory.mktemp(f"aether-{self.backend}")
        deployment = Deployment(
            self.backend, directory, self.cluster, env=env, create_admin=create_admin, args=args
        )
        self.started.append(deployment)
        if start:
            deployment.start()
        return deployment

    def close(self):
        for deployment in self.started:
            with contextlib.suppress(Exception):
                deployment.stop()


@pytest.fixture(scope="module")
def module_factory(backend, cluster, tmp_path_factory):
    factory = _Factory(backend, cluster, tmp_path_factory)
    yield factory
    factory.close()


@pytest.fixture
def factory(backend, cluster, tmp_path_factory):
    factory = _Factory(backend, cluster, tmp_path_factory)
    yield factory
    factory.close()
