"""Joining a torch.distributed process group in bounded time, with a one-line error.

torchrun (and tests that set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT themselves) rendezvous
through a TCPStore at MASTER_ADDR:MASTER_PORT. torch alone waits 30 minutes for it, printing a C++
stack trace per retry, when the address cannot be reached (a typo, a firewall, a network namespace
without loopback). `join_process_group` probes the address from Python first.
"""
import math
import os
import socket
import time
from datetime import timedelta

import torch.distributed as dist
from torch.distributed import constants

from .errors import UserError

RENDEZVOUS_TIMEOUT_ENV = "GAN_COLORIZE_RENDEZVOUS_TIMEOUT"
RENDEZVOUS_TIMEOUT_S = 300.0


def rendezvous_timeout():
    """Seconds a rank waits for the process group to form: $GAN_COLORIZE_RENDEZVOUS_TIMEOUT,
    default 300 (ranks on several machines may start minutes apart)."""
    raw = os.environ.get(RENDEZVOUS_TIMEOUT_ENV, "").strip()
    if not raw:
        return RENDEZVOUS_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise UserError(f"{RENDEZVOUS_TIMEOUT_ENV}={raw!r}: must be a number of seconds > 0")
    return seconds


def join_process_group(backend, rank, world_size):
    """dist.init_process_group through MASTER_ADDR:MASTER_PORT (torchrun's env://), bounded.

    Left alone, a rank that cannot reach the master (a wrong address, a firewall, no loopback)
    retries inside torch's TCPStore for 30 minutes, printing a C++ trace per retry. Here the
    master is first probed from Python for up to rendezvous_timeout() seconds, then a one-line
    UserError says what failed; the same limit bounds init_process_group itself. Collectives then
    get torch's default timeout back: rank 0 alone builds the data cache while the other ranks
    wait at a barrier, which can take far longer than joining.
    """
    timeout = rendezvous_timeout()
    addr, port = os.environ.get("MASTER_ADDR", ""), os.environ.get("MASTER_PORT", "")
    if not addr or not port.isdigit():
        raise UserError(f"WORLD_SIZE={world_size} but MASTER_ADDR/MASTER_PORT are not set "
                        f"({addr or '?'}:{port or '?'}); launch with torchrun")
    # rank 0 serves the store itself, unless torchrun's agent already serves it
    serves_store = rank == 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True"
    _wait_for_master(addr, int(port), timeout, serves_store, rank)
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
    except (RuntimeError, ValueError) as err:   # torch.distributed.DistError is a RuntimeError
        text = str(err).strip()
        reason = text.splitlines()[0][:300] if text else type(err).__name__
        raise UserError(f"rank {rank}: the {world_size} processes did not join at {addr}:{port} "
                        f"within {timeout:g} s: {reason}") from None
    # torch >= 2.8 has dist.set_timeout; before, the same function was private
    set_timeout = (getattr(dist, "set_timeout", None)
                   or getattr(dist.distributed_c10d, "_set_pg_timeout", None))
    default = constants.default_pg_nccl_timeout if backend == "nccl" else constants.default_pg_timeout
    if set_timeout is not None and default is not None:
        set_timeout(default)


def _wait_for_master(addr, port, timeout, serves_store, rank):
    """Return once a TCP connection to the master succeeds; UserError after `timeout` seconds.
    Rank 0 (serves_store) is about to listen at `port` itself, so it checks instead that `addr`
    leads back to this machine, with a listener of its own on a spare port: a refusal there means
    MASTER_ADDR is another host (or a firewall), and torch would retry until its timeout."""
    deadline = time.monotonic() + timeout
    while True:
        wait = min(5.0, max(deadline - time.monotonic(), 0.1))
        try:
            if serves_store:
                with _spare_listener() as server:
                    socket.create_connection((addr, server.getsockname()[1]), timeout=wait).close()
            else:
                socket.create_connection((addr, port), timeout=wait).close()
            return
        except ConnectionRefusedError:
            reason = ("connection refused: not an address of this machine" if serves_store
                      else "nothing listens there")
        except OSError as err:          # unreachable network, unknown host, a connect timeout
            reason = err.strerror or str(err) or type(err).__name__
        if time.monotonic() >= deadline:
            raise UserError(f"rank {rank}: cannot reach the master at MASTER_ADDR:MASTER_PORT = "
                            f"{addr}:{port} ({reason}) after {timeout:g} s; check the address, that "
                            f"rank 0 runs and the network, or raise {RENDEZVOUS_TIMEOUT_ENV}")
        time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))


def _spare_listener():
    """A listening socket on all interfaces and a free port, as torch's TCPStore server binds."""
    if socket.has_dualstack_ipv6():
        return socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True)
    return socket.create_server(("", 0))
