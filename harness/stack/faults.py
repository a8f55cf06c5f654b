"""Fault injection for the live stack: real network failures, not mocks.

A `FaultyProxy` is a TCP proxy on 127.0.0.1 that stands between a service and one thing it
depends on (the AWS endpoint, PostgreSQL, the SMTP sink). Point the service at the proxy
(`proxy.endpoint` for an HTTP endpoint, `proxy.route(url)` for a database URL), then:

- `down()`: the dependency is unreachable; new connections are refused and open ones are cut;
- `stall()`: the dependency hangs; connections are accepted and kept, but no byte moves;
- `up()`: bytes flow again (on the same port, so the service needs no reconfiguring).

With `latency=seconds`, every request waits that long before it reaches the target, as it would
crossing a network to AWS: the delay is added each time a connection turns from the target
answering to the client sending again, so once per call of a request/response protocol however
many reads the request takes (`bench/event_pipeline.py` puts 20 ms on every SNS and SQS call).

`outage(proxy)` is a fault for the duration of an `async with` block. `ServiceProcess` runs one
service in its own OS process, configured from a stack's environment, so that it can be killed
(SIGKILL) the way a crash kills it. `Stack.start_service(name, env=...)` points one service
at a proxy, e.g. only the auth service's AWS endpoint, so that SNS is unreachable for the
publisher while the consumers still reach SQS.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Literal
from urllib.parse import urlsplit, urlunsplit

import httpx

State = Literal["up", "down", "stalled"]

DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432, "smtp": 25}
CHUNK = 65_536


class _Link:
    """One proxied connection: the client's side and the target's side."""

    def __init__(self, client: asyncio.StreamWriter, target: asyncio.StreamWriter) -> None:
        self.client = client
        self.target = target
        # Whether the client sent the last bytes (a request under way) or the target did.
        self.client_spoke_last = False

    def cut(self) -> None:
        # abort(), not close(): the peers see the connection reset, as when a host goes away.
        for writer in (self.client, self.target):
            writer.transport.abort()


class FaultyProxy:
    """A TCP proxy to one target that can be switched down, stalled and up again."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
    ) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.latency = latency  # seconds added to every request on its way to the target
        self._port = port
        self._state: State = "up"
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.accepted = 0  # connections accepted since start, whatever became of them

    @classmethod
    def to(
        cls, url: str, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0
    ) -> FaultyProxy:
        """A proxy to the host and port of `url` (`http://…`, `postgresql://…`)."""
        parts = urlsplit(url)
        if parts.hostname is None:
            raise ValueError(f"no host in {url!r}")
        scheme = parts.scheme.split("+", 1)[0]
        target_port = parts.port or DEFAULT_PORTS.get(scheme)
        if target_port is None:
            raise ValueError(f"no port in {url!r} and no default port for {scheme!r}")
        return cls(parts.hostname, target_port, host=host, port=port, latency=latency)

    # --- where it listens ------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the proxy has no port until it is started")
        return self._port

    @property
    def endpoint(self) -> str:
        """The proxy as an HTTP endpoint, e.g. for `AWS_ENDPOINT_URL`."""
        return f"http://{self.host}:{self.port}"

    def route(self, url: str) -> str:
        """`url` with its host and port replaced by the proxy's (user, password, path kept)."""
        parts = urlsplit(url)
        credentials, _, _ = parts.netloc.rpartition("@")
        netloc = f"{credentials}@" if credentials else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}{self.host}:{self.port}"))

    @property
    def state(self) -> State:
        return self._state

    @property
    def open_connections(self) -> int:
        return len(self._links)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> FaultyProxy:
        """Listen (on a free port unless one was given)."""
        if self._server is None:
            await self._listen()
        return self

    async def close(self) -> None:
        """Stop listening and cut every connection."""
        await self._stop_listening()
        self._cut_all()
        self._flowing.set()  # stalled pumps wake up, find their sockets gone, and end
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5)

    async def __aenter__(self) -> FaultyProxy:
        return await self.start()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- faults ----------------------------------------------------------------------------

    async def down(self) -> None:
        """The target becomes unreachable: connecting is refused, open connections are cut."""
        self._state = "down"
        await self._stop_listening()
        self._cut_all()
        self._flowing.set()

    async def stall(self) -> None:
        """The target hangs: connections (open and new) stay open, but no byte moves."""
        if self._server is None:
            await self._listen()
        self._state = "stalled"
        self._flowing.clear()

    async def up(self) -> None:
        """Forward again; bytes held by a stall are delivered."""
        if self._server is None:
            await self._listen()
        self._state = "up"
        self._flowing.set()

    # --- forwarding ------------------------------------------------------------------------

    async def _listen(self) -> None:
        try:
            self._server = await asyncio.start_server(self._accept, self.host, self._port)
        except OSError as error:
            raise RuntimeError(
                f"the proxy to {self.target[0]}:{self.target[1]} cannot listen on "
                f"{self.host}:{self._port}: {error}"
            ) from None
        self._port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    def _is_down(self) -> bool:
        return self._state == "down"

    def _cut_all(self) -> None:
        for link in list(self._links):
            link.cut()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.accepted += 1
        try:
            if self._is_down():  # accepted just before the listener closed
                writer.transport.abort()
                return
            try:
                target_reader, target_writer = await asyncio.open_connection(*self.target)
            except OSError:
                writer.transport.abort()  # the target itself is down: so is the proxy
                return
            link = _Link(writer, target_writer)
            if self._is_down():  # went down while the target was being reached
                link.cut()
                return
            self._links.add(link)
            try:
                pumps = [
                    asyncio.create_task(self._pump(reader, target_writer, link, request=True)),
                    asyncio.create_task(self._pump(target_reader, writer, link, request=False)),
                ]
                # Either side closing ends the connection (no protocol here half-closes).
                _, pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                for pump in pending:
                    pump.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
            finally:
                self._links.discard(link)
                for side in (writer, target_writer):
                    side.close()
        finally:
            self._handlers.discard(task)

    async def _pump(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        link: _Link,
        *,
        request: bool,
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                await self._flowing.wait()
                data = await source.read(CHUNK)
                if not data:
                    return
                if request and self.latency > 0 and not link.client_spoke_last:
                    await asyncio.sleep(self.latency)  # a new request crosses the network
                link.client_spoke_last = request
                await self._flowing.wait()  # a stall that began while reading holds these
                sink.write(data)
                await sink.drain()


@contextlib.asynccontextmanager
async def outage(
    proxy: FaultyProxy, fault: Literal["down", "stalled"] = "down"
) -> AsyncIterator[FaultyProxy]:
    """`proxy` down (or stalled) for the duration of the block, and up again after it, even
    when the block fails."""
    await (proxy.down() if fault == "down" else proxy.stall())
    try:
        yield proxy
    finally:
        await proxy.up()


_SERVE = (
    "import importlib, sys; "
    "importlib.import_module(f'services.{sys.argv[1]}.main')"
    ".serve(port=int(sys.argv[3]), host=sys.argv[2])"
)


class ServiceProcess:
    """One Accord service in its own OS process, configured from an environment (a stack's),
    so that a test can kill it without letting it finish what it holds."""

    def __init__(
        self, name: str, env: Mapping[str, str], port: int, *, host: str = "127.0.0.1"
    ) -> None:
        self.name = name
        self.env = dict(env)
        self.host = host
        self.port = port
        self._process: asyncio.subprocess.Process | None = None
        self._output: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until the service answers `/health/ready` with 200."""
        if self._process is not None:
            raise RuntimeError(f"the {self.name} service process is already started")
        # A file, not a pipe: nobody reads the output while the service runs, and a full pipe
        # would block it. Closed on leaving the `async with`.
        self._output = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _SERVE,
            self.name,
            self.host,
            str(self.port),
            env={**os.environ, **self.env},
            cwd=_project_root(),
            stdout=self._output,
            stderr=asyncio.subprocess.STDOUT,
        )
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                if self._process.returncode is not None:
                    raise RuntimeError(
                        f"the {self.name} service process exited with {self._process.returncode}"
                        f":\n{self.output()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/health/ready")).status_code == 200:
                        return
                if asyncio.get_running_loop().time() > deadline:
                    await self.kill()
                    raise RuntimeError(
                        f"the {self.name} service process was not ready within {timeout} s:\n"
                        f"{self.output()}"
                    )
                await asyncio.sleep(0.1)

    async def kill(self) -> int:
        """SIGKILL: the process ends at once, with whatever it holds (messages received and
        not deleted, transactions not committed). Its exit status."""
        return await self._end(signal.SIGKILL)

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, and SIGKILL if it has not ended within `timeout`. Its exit status."""
        try:
            return await asyncio.wait_for(self._end(signal.SIGTERM), timeout)
        except TimeoutError:
            return await self.kill()

    def terminate(self) -> None:
        """SIGTERM, as an orchestrator stops a replica, without waiting for the end (`wait`)."""
        if self._process is None:
            raise RuntimeError(f"the {self.name} service process was never started")
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.terminate()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def wait(self) -> int:
        """Until the process has ended, however it ends; its exit status."""
        if self._process is None:
            raise RuntimeError(f"the {self.name} service process was never started")
        return await self._process.wait()

    async def _end(self, sig: signal.Signals) -> int:
        process = self._process
        if process is None:
            raise RuntimeError(f"the {self.name} service process was never started")
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
        return await process.wait()

    def output(self, last: int = 4000) -> str:
        """The end of what the process wrote to stdout and stderr."""
        if self._output is None:
            return ""
        self._output.seek(0)
        return self._output.read().decode(errors="replace")[-last:]

    async def __aenter__(self) -> ServiceProcess:
        try:
            await self.start()
        except BaseException as error:  # not started: `__aexit__` will not run, clean up here
            await self.__aexit__(type(error), error, error.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None and self._process.returncode is None:
            # Leaving on an error, the test is over: no point waiting for a graceful stop.
            await (self.stop() if error is None else self.kill())
        if self._output is not None:
            self._output.close()


def _project_root() -> Path:
    services = importlib.import_module("services")
    return Path(services.__file__ or ".").resolve().parent.parent
