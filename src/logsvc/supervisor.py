"""``--workers N``: uvicorn's supervisor, with a listening socket of its own for each worker.

With one socket shared by every worker, the worker that happens to be awake when connections arrive takes
them all in one go (libuv accepts until the queue is empty): wrk's 64 connections were split 64/0, 60/4 or
33/31 from run to run, and a worker with few connections leaves its share of the machine unused. Here each
worker accepts on its own socket; the sockets share the port (``SO_REUSEPORT``) and the kernel spreads new
connections over them by their addresses, evenly whatever the workers are doing. The supervisor keeps every
socket open, so a worker that dies leaves its connection queue to its replacement, which takes its socket.
"""

from __future__ import annotations

import logging
import socket
import sys

from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from logsvc.connection import ServerConfig

__all__ = ["SpreadWorkers", "bind_worker_sockets"]

log = logging.getLogger("uvicorn.error")


def bind_worker_sockets(config: ServerConfig, count: int) -> list[socket.socket]:
    """``count`` listening sockets on the configured host and port, one per worker; exits as uvicorn does
    (STARTUP_FAILURE) when the port cannot be had."""
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        # First without SO_REUSEPORT, which fails while anything listens there: sockets that share a port
        # would otherwise also share it with another server of this user started on the same port.
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((config.host, config.port))
            port = probe.getsockname()[1]
        for _ in range(count):
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((config.host, port))
            sock.set_inheritable(True)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        log.error(exc)
        sys.exit(STARTUP_FAILURE)
    scheme = "https" if config.is_ssl else "http"
    log.info("Uvicorn running on %s://%s:%d (Press CTRL+C to quit)", scheme, config.host, port)
    return sockets


class SpreadWorkers(Multiprocess):
    """uvicorn's ``Multiprocess`` where worker ``i`` serves ``sockets[i]`` only. The number of workers is
    fixed (SIGTTIN and SIGTTOU are ignored: a worker more or less would need a socket more or less)."""

    def __init__(self, config: ServerConfig, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        self.processes_num = len(sockets)

    def _start(self, slot: int) -> Process:
        process = Process(self.config, [self.sockets[slot]])
        process.start()
        return process

    def init_processes(self) -> None:
        for slot in range(self.processes_num):
            self.processes.append(self._start(slot))

    def keep_subprocess_alive(self) -> None:
        """As uvicorn's: a worker that is gone or hung is replaced, now on the socket it served."""
        if self.should_exit.is_set():
            return
        for slot, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                # It failed before serving: the app, TLS or store is broken and would fail again.
                log.error("Child process [%s] failed to start, stopping the parent process.", process.pid)
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            log.info("Child process [%s] died", process.pid)
            self.processes[slot] = self._start(slot)

    def restart_all(self) -> None:
        """As uvicorn's (SIGHUP): each worker's replacement is serving its socket before the worker stops."""
        for slot, old in enumerate(self.processes):
            if self.should_exit.is_set():
                return
            new = self._start(slot)
            if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                new.kill()
                new.join()
                if not self.should_exit.is_set():
                    log.error(
                        "New child process [%s] was not ready in time; keeping worker [%s] and aborting "
                        "the restart.",
                        new.pid,
                        old.pid,
                    )
                return
            old.terminate()
            old.join()
            self.processes[slot] = new

    def handle_ttin(self) -> None:
        log.info("Received SIGTTIN: the number of workers is fixed by --workers, ignored.")

    def handle_ttou(self) -> None:
        log.info("Received SIGTTOU: the number of workers is fixed by --workers, ignored.")
