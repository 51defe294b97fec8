"""SQLite writers on the suggestion path take turns across threads and processes (store.db.write_gate)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from contextlib import nullcontext
from pathlib import Path

from sqlalchemy import create_engine

from store.db import make_engine, write_gate
from tests.support.waiting import wait_until

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from store.db import make_engine, write_gate
    engine, folder = make_engine(sys.argv[1]), Path(sys.argv[2])
    with write_gate(engine):
        (folder / "held").touch()
        while not (folder / "release").exists():
            time.sleep(0.01)
""")


def test_a_writer_in_another_process_holds_the_gate_until_it_is_done(tmp_path):
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url, str(tmp_path)], cwd=Path(__file__).parents[2])
    try:
        wait_until((tmp_path / "held").exists, 30, "the other process never took the gate", every=0.01)
        entered = threading.Event()

        def writer():
            with write_gate(make_engine(url)):
                entered.set()

        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        assert not entered.wait(0.5), "entered the gate while another process held it"
        (tmp_path / "release").touch()
        assert entered.wait(30), "never entered after the other process let go"
        thread.join(5)
        assert holder.wait(30) == 0
    finally:
        holder.kill()


def test_threads_of_one_process_take_turns(tmp_path):
    engine, inside, overlaps = make_engine(f"sqlite:///{tmp_path / 'catalog.db'}"), [0], []

    def writer():
        for _ in range(50):
            with write_gate(engine):
                inside[0] += 1
                overlaps.append(inside[0])
                time.sleep(0.0005)
                inside[0] -= 1

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(overlaps) == 400 and max(overlaps) == 1


def test_no_gate_where_the_database_locks_rows():
    assert isinstance(write_gate(create_engine("postgresql+psycopg://x@127.0.0.1/none")), nullcontext)
    assert isinstance(write_gate(create_engine("sqlite://")), nullcontext)
