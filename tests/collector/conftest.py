from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.collector import pg


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pg.PgCluster]:
    why = pg.available()
    if why:
        pytest.skip(f"PostgreSQL cannot run here: {why}")
    cluster = pg.PgCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    cluster: pg.PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.new_database()


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "enroll.secret"
    path.write_text("s3cret-enroll\n")
    path.chmod(0o600)
    return path


SECRET = "s3cret-enroll"
