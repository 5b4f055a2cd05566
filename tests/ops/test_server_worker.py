"""The production server's accept path (cdp/server_worker.py): a worker takes a new
connection only if it holds no more than any other; a busier one leaves it queued for the
others for a moment, then takes it if nobody did. Real sockets on 127.0.0.1, a real
BalancedLoop stepped by the test, and a table of workers where "the other worker" is a
slot the test fills in, so what each step accepted is exact."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from cdp import server_worker
from cdp.server_worker import (
    BalancedListener,
    BalancedLoop,
    Held,
    Workers,
    connections_per_worker,
)
from tests.served import served

ME, OTHER = 0, 1


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


@pytest.fixture
def loop() -> Iterator[BalancedLoop]:
    loop = BalancedLoop()
    yield loop
    loop.run_until_complete(asyncio.sleep(0.01))  # let the last set-ups finish
    loop.close()


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


@pytest.fixture
def workers() -> Workers:
    """This process in slot ME; a live process (the test's parent) in slot OTHER."""
    table = Workers()
    assert (table.claim(os.getpid()), table.claim(os.getppid())) == (ME, OTHER)
    return table


@pytest.fixture
def patient(monkeypatch):
    monkeypatch.setattr(server_worker, "ACCEPT_WAIT_S", 10.0)  # no wait ends on its own


def listener(loop, listening, workers) -> BalancedListener:
    return BalancedListener(loop, Echo, listening, held=Held(workers, ME))


def holding_one(loop, listening, workers) -> tuple[BalancedListener, socket.socket]:
    """A listener in slot ME that has accepted one connection (the other worker: none)."""
    busy = listener(loop, listening, workers)
    (held,) = connect(listening, 1)
    step(loop)
    assert busy.held == 1
    return busy, held


def gone_pid() -> int:
    """The pid of a process that has exited."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def connect(listening: socket.socket, count: int) -> list[socket.socket]:
    clients = [socket.create_connection(listening.getsockname()) for _ in range(count)]
    for client in clients:
        client.settimeout(5)
    return clients


def step(loop: BalancedLoop, seconds: float = 0.01) -> None:
    loop.run_until_complete(asyncio.sleep(seconds))


def queued(listening: socket.socket, count: int) -> list[socket.socket]:
    """Take `count` connections still in the queue, as another worker would."""
    listening.settimeout(1)
    return [listening.accept()[0] for _ in range(count)]


def close(*sockets: socket.socket) -> None:
    for sock in sockets:
        sock.close()


def test_the_loop_serves_an_inherited_socket_through_the_balanced_listener(loop, listening):
    server = loop.run_until_complete(loop.create_server(Echo, sock=listening))
    assert isinstance(server, BalancedListener)
    (client,) = connect(listening, 1)
    client.sendall(b"ping")
    step(loop, 0.05)
    assert client.recv(4) == b"ping"
    server.close()
    loop.run_until_complete(server.wait_closed())
    close(client)


def test_a_worker_s_listening_sockets_share_one_count(loop, listening):
    second = socket.socket()
    second.bind(("127.0.0.1", 0))
    second.listen(16)
    first_server = loop.run_until_complete(loop.create_server(Echo, sock=listening))
    second_server = loop.run_until_complete(loop.create_server(Echo, sock=second))
    clients = connect(listening, 1) + connect(second, 1)
    step(loop, 0.05)
    assert (first_server.held, second_server.held) == (2, 2)
    first_server.close()
    second_server.close()
    close(*clients, second)


def test_a_worker_no_busier_than_the_others_takes_one_connection_and_counts_it(
    loop, listening, workers, patient
):
    busy = listener(loop, listening, workers)
    clients = connect(listening, 3)
    step(loop)
    # One taken; then it held one more than the other worker's none, so it waits.
    assert (busy.held, workers.held[ME]) == (1, 1)
    assert busy.waiting
    others = queued(listening, 2)
    assert {o.getpeername() for o in others} == {c.getsockname() for c in clients[1:]}
    busy.close()
    close(*clients, *others)


def test_workers_holding_as_many_each_take_a_new_connection_at_once(
    loop, listening, workers, patient
):
    busy, first = holding_one(loop, listening, workers)
    workers.held[OTHER] = 1  # the other worker took one too
    (second,) = connect(listening, 1)
    step(loop)
    assert (busy.held, busy.waiting) == (2, False)
    busy.close()
    close(first, second)


def test_a_busier_worker_leaves_a_new_connection_queued_for_its_wait(
    loop, listening, workers, monkeypatch
):
    monkeypatch.setattr(server_worker, "ACCEPT_WAIT_S", 0.05)
    busy, held = holding_one(loop, listening, workers)
    (late,) = connect(listening, 1)
    step(loop, 0.02)
    assert busy.waiting
    (other,) = queued(listening, 1)  # the less busy worker takes it meanwhile
    assert other.getpeername() == late.getsockname()
    step(loop, 0.1)  # the wait is over; nothing was left
    assert (busy.held, busy.waiting) == (1, False)
    busy.close()
    close(held, late, other)


def test_after_its_wait_a_busier_worker_takes_what_nobody_took(
    loop, listening, workers, monkeypatch
):
    monkeypatch.setattr(server_worker, "ACCEPT_WAIT_S", 0.02)
    busy, held = holding_one(loop, listening, workers)
    pending = connect(listening, 2)
    step(loop, 0.3)  # two waits of 0.02 s, a connection after each
    assert busy.held == 3
    for client in pending:
        client.sendall(b"hi")
    step(loop, 0.05)
    assert [client.recv(2) for client in pending] == [b"hi", b"hi"]
    busy.close()
    close(held, *pending)


def test_a_closed_connection_counts_out_of_the_shared_table(loop, listening, workers, patient):
    busy, first = holding_one(loop, listening, workers)
    workers.held[OTHER] = 5
    clients = [first, *connect(listening, 1)]
    step(loop)
    assert workers.held[ME] == 2
    clients.pop().close()
    step(loop, 0.05)
    assert (busy.held, workers.held[ME]) == (1, 1)
    busy.close()
    close(*clients)


def test_a_worker_that_is_gone_is_not_waited_for_and_its_slot_is_freed(
    loop, listening, workers, patient
):
    workers.pids[OTHER], workers.held[OTHER] = gone_pid(), 0
    busy = listener(loop, listening, workers)
    clients = connect(listening, 2)
    step(loop, 0.05)
    assert (busy.held, busy.waiting) == (2, False)  # no other live worker: it takes both
    assert workers.pids[OTHER] == 0
    assert workers.claim(4242) == OTHER  # the freed slot is the first free one
    busy.close()
    close(*clients)


def test_each_worker_claims_its_own_slot_and_a_dead_one_s_is_reused():
    table = Workers()
    assert [table.claim(os.getpid()), table.claim(os.getppid())] == [0, 1]
    assert table.claim(gone_pid()) == 2
    table.held[2] = 7
    assert table.claim(os.getpid()) == 2  # its process is gone: the slot is free
    assert table.held[2] == 0


def test_a_closed_listener_accepts_nothing_more_even_while_it_waited(
    loop, listening, workers, monkeypatch
):
    monkeypatch.setattr(server_worker, "ACCEPT_WAIT_S", 0.02)
    busy, held = holding_one(loop, listening, workers)
    (late,) = connect(listening, 1)
    step(loop, 0.005)
    assert busy.waiting
    busy.close()
    step(loop, 0.05)  # the wait ends after the close
    assert busy.held == 1
    (other,) = queued(listening, 1)  # still queued: the listening socket is gunicorn's
    assert other.getpeername() == late.getsockname()
    close(held, late, other)


def test_the_master_frees_an_exited_worker_s_slot():
    from cdp.server_worker import WORKERS
    from tests.ops.test_production_server import ShippedConfig

    class Exited:
        pid = 999_999_999  # no such process: its slot is claimed here as if it lived

    slot = WORKERS.claim(os.getpid())
    try:
        WORKERS.pids[slot], WORKERS.held[slot] = Exited.pid, 3
        ShippedConfig().cfg.child_exit(None, Exited())  # gunicorn.conf.py's hook
        assert (WORKERS.pids[slot], WORKERS.held[slot]) == (0, 0)
    finally:
        WORKERS.release(os.getpid())


def healthz(server) -> socket.socket:
    client = socket.create_connection((server.host, server.port), timeout=5)
    client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert client.recv(4096).startswith(b"HTTP/1.1 200")
    return client


def both_workers_serving(server) -> None:
    """Until each worker has answered once (the first /healthz may come while the other
    is still starting), then until none holds a connection."""
    seen: set[int] = set()
    deadline = time.monotonic() + 30
    while len(seen) < 2:
        assert time.monotonic() < deadline, f"only worker {seen} answered"
        with healthz(server):
            held = connections_per_worker(server.process.pid, server.port)
            seen |= {pid for pid, count in held.items() if count}
    while sum(connections_per_worker(server.process.pid, server.port).values()):
        assert time.monotonic() < deadline, "the probes' connections stayed open"
        time.sleep(0.05)
    time.sleep(0.2)  # and each worker has counted them out


def test_the_served_workers_share_kept_alive_connections_evenly():
    with served(WEB_CONCURRENCY="2") as server:
        both_workers_serving(server)
        clients = [healthz(server) for _ in range(4)]  # one after another, kept alive
        held = connections_per_worker(server.process.pid, server.port)
        assert sorted(held.values()) == [2, 2]
        close(*clients)
