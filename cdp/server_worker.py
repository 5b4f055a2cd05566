"""The gunicorn worker `make serve` runs (gunicorn.conf.py): uvicorn's, tuned for
cdp/asgi.py, on an event loop that leaves new connections to the least busy worker.

Every worker waits on the one listening socket gunicorn opened, and the kernel wakes them
all when a connection arrives. uvloop's own server then accepts every pending connection
at once, so the worker that woke first took all that had arrived together: four clients
connecting at once were often shared 3:1 or 4:0 between two workers, and the busier one
ran their requests on one core's worth of interpreter while the other had little to do.

`BalancedLoop` accepts them itself, one per wake-up, and only in a worker that holds no
more connections than any other: each worker publishes how many it holds in a table the
master allocated before forking (`Workers`). A busier worker leaves the connection in the
queue for the others, and takes it after `ACCEPT_WAIT_S` if nobody did (a worker that is
slow to wake, or stuck); nothing is refused (docs/decisions.md, "Connections shared among
the workers").
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import multiprocessing
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop
from uvicorn_worker import UvicornWorker

logger = logging.getLogger("cdp.server")

# How long a busier worker leaves a new connection to the others.
ACCEPT_WAIT_S = 0.005
# Out of file descriptors or memory: wait this long before accepting again, as asyncio's
# own servers do, rather than spin on a socket that stays readable.
ACCEPT_PAUSE_S = 1.0
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class Workers:
    """The connections each worker holds, in memory shared by the master's children: one
    slot per live worker (pid, count). A slot whose process is gone is free again."""

    SLOTS = 64

    def __init__(self) -> None:
        self.pids = multiprocessing.RawArray("q", self.SLOTS)
        self.held = multiprocessing.RawArray("q", self.SLOTS)
        self.used = multiprocessing.RawValue("q", 0)  # slots ever claimed: the scan's end
        self.lock = multiprocessing.Lock()

    def claim(self, pid: int) -> int | None:
        """A slot for `pid` (a worker, just forked), or None if all are taken."""
        with self.lock:
            for slot in range(self.SLOTS):
                if self.pids[slot] == 0 or not _alive(self.pids[slot]):
                    self.pids[slot], self.held[slot] = pid, 0
                    self.used.value = max(self.used.value, slot + 1)
                    return slot
        return None

    def release(self, pid: int) -> None:
        """Free the slot of `pid`, a worker that has exited (the master's `child_exit`),
        before its pid can be another process's."""
        with self.lock:
            for slot in range(self.used.value):
                if self.pids[slot] == pid:
                    self.pids[slot], self.held[slot] = 0, 0

    def least_other(self, slot: int) -> int | None:
        """The fewest connections another live worker holds (None: no other worker)."""
        used = self.used.value
        pids, counts = self.pids[:used], self.held[:used]
        least = None
        for other, pid in enumerate(pids):
            if other == slot or pid == 0:
                continue
            held = counts[other]
            if least is None or held < least:
                if not _alive(pid):  # gone without its slot being freed: free it
                    self.release(pid)
                    continue
                least = held
        return least


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def connections_per_worker(master: int, port: int) -> dict[int, int]:
    """How many established connections to `port` (IPv4) each of gunicorn master
    `master`'s workers holds (by pid), as Linux's /proc shows them: how the workers share
    their clients, for the tests and the bench."""
    established = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
            established.add(fields[9])  # the socket's inode
    counts = {}
    for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        inodes = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):  # closed meanwhile
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        counts[int(pid)] = len(inodes & established)
    return counts


# Allocated on import: gunicorn's master imports the worker class before it forks.
WORKERS = Workers()
_slot: int | None = None  # this process's slot, once it is a worker


class Held:
    """The connections one worker holds, over all its listening sockets (gunicorn binds
    one per address), published in its slot."""

    def __init__(self, workers: Workers, slot: int | None) -> None:
        self.workers, self.slot, self.count = workers, slot, 0

    def change(self, by: int) -> None:
        self.count += by
        if self.slot is not None:
            self.workers.held[self.slot] = self.count


class BalancedListener:
    """Accepts a listening socket's connections for one worker's loop; what uvicorn
    needs of a server (`close`, `wait_closed`)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: Callable[[], Any],
        sock: Any,
        *,
        held: Held | None = None,
    ) -> None:
        self.loop = loop
        self.protocol_factory = protocol_factory
        self.sock = sock
        self.worker = held or Held(WORKERS, _slot)
        self.handshakes: set[asyncio.Task[None]] = set()  # held until done (asyncio's rule)
        self.waiting = False
        self.closed = False
        sock.setblocking(False)
        # What socket.accept() would look up (as enums) for every connection, once.
        self.family, self.type, self.proto = int(sock.family), int(sock.type), sock.proto
        loop.add_reader(sock.fileno(), self._readable)

    @property
    def held(self) -> int:
        return self.worker.count

    def _readable(self) -> None:
        worker = self.worker
        least = None if worker.slot is None else worker.workers.least_other(worker.slot)
        if least is None or worker.count <= least:
            self._accept()
        else:
            # A less busy worker is there to take it; take it after the wait if nobody did.
            self._wait(ACCEPT_WAIT_S)

    def _wait(self, seconds: float) -> None:
        """Stop listening for `seconds` (the socket stays readable for the others)."""
        self.loop.remove_reader(self.sock.fileno())
        self.waiting = True
        self.loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        self.waiting = False
        if self.closed:
            return
        self.loop.add_reader(self.sock.fileno(), self._readable)
        self._accept()

    def _accept(self) -> None:
        """Accept one connection, unless another worker took it first. One per wake-up:
        the next finds this worker holding one more, and decides again."""
        while True:
            try:
                fd, _address = self.sock._accept()
            except (BlockingIOError, InterruptedError):
                return  # another worker took it, or nothing is left
            except ConnectionAbortedError:
                continue  # the client gave up while it waited: the next one
            except OSError as error:
                if error.errno not in _EXHAUSTED:
                    raise
                logger.error("Accepting connections paused for %ss: %s", ACCEPT_PAUSE_S, error)
                if not self.waiting:
                    self._wait(ACCEPT_PAUSE_S)
                return
            conn = socket.socket(self.family, self.type, self.proto, fileno=fd)
            conn.setblocking(False)
            self.worker.change(+1)
            task = self.loop.create_task(self._serve(conn))
            self.handshakes.add(task)
            task.add_done_callback(self.handshakes.discard)
            return

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self._protocol, conn)
        except OSError:
            conn.close()
            self.worker.change(-1)

    def _protocol(self) -> Any:
        """uvicorn's protocol for a connection, which counts itself out when it closes."""
        protocol = self.protocol_factory()
        connection_lost = protocol.connection_lost

        def lost(exc: Exception | None) -> None:
            self.worker.change(-1)
            connection_lost(exc)

        protocol.connection_lost = lost
        return protocol

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.waiting:
            self.loop.remove_reader(self.sock.fileno())

    async def wait_closed(self) -> None:
        return None


class BalancedLoop(uvloop.Loop):
    """uvloop, except that servers on an inherited socket accept through
    `BalancedListener`. uvicorn calls this loop's `create_server` once per socket."""

    async def create_server(
        self, protocol_factory: Callable[[], Any], *args: Any, **kwargs: Any
    ) -> Any:
        sock = kwargs.get("sock")
        if sock is None or args or kwargs.get("ssl") is not None:
            return await super().create_server(protocol_factory, *args, **kwargs)
        if not hasattr(self, "worker_held"):
            self.worker_held = Held(WORKERS, _slot)  # this worker's, for all its sockets
        return BalancedListener(self, protocol_factory, sock, held=self.worker_held)


class Worker(UvicornWorker):
    # httptools (a C parser) on BalancedLoop; Django has no lifespan protocol to run, and
    # cdp no WebSocket: an upgrade would also swap the protocol that counts a connection
    # out when it closes.
    CONFIG_KWARGS = {
        "loop": "cdp.server_worker:BalancedLoop",
        "http": "httptools",
        "ws": "none",
        "lifespan": "off",
    }

    def init_process(self) -> None:
        global _slot
        _slot = WORKERS.claim(os.getpid())
        super().init_process()
