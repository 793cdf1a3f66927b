"""An aggregator database made before an index existed gets it at the next start."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from phe_trace.aggregator.storage import VERSION_TABLE, create_engine_for, shares


def test_an_index_added_later_is_created_on_an_existing_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    engine = create_engine_for(url)
    (index,) = [i for i in shares.indexes if i.name == "ix_aggregator_day_metric_status_report"]
    with engine.begin() as conn:  # the database as an earlier version left it
        conn.execute(sa.text(f"DROP INDEX {index.name}"))
        conn.execute(sa.text(f"DROP TABLE {VERSION_TABLE}"))  # made before migrations
    engine.dispose()
    assert index.name not in {
        i["name"] for i in sa.inspect(sa.create_engine(url)).get_indexes(shares.name)
    }

    engine = create_engine_for(url)
    names = {i["name"] for i in sa.inspect(engine).get_indexes(shares.name)}
    engine.dispose()
    assert index.name in names
