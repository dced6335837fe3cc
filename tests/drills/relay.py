"""A byte relay between a TCP port and a Unix socket, the one way an isolated worker reaches the host.

``python relay.py LISTEN=CONNECT [LISTEN=CONNECT ...]``, each side ``tcp:HOST:PORT`` or
``unix:PATH``: every connection accepted on LISTEN is piped, both ways, to a fresh connection to
CONNECT. The network-namespace drill runs one on the host (``unix:`` -> the api-server or S3 port on
127.0.0.1) and one inside the namespace (127.0.0.1 there -> ``unix:``): a Unix socket is a file, not
a network address, so the namespace gets exactly the ports relayed and no route to anything else.
It prints ``ready`` once every listener is open. Standard library only (the test starts it as a
script, by path); stopped by its process group.
"""

from __future__ import annotations

import asyncio
import sys

CHUNK = 1 << 16


async def _open(spec: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    kind, _, address = spec.partition(":")
    if kind == "unix":
        return await asyncio.open_unix_connection(address)
    host, _, port = address.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def _listen(spec: str, handler) -> asyncio.Server:
    kind, _, address = spec.partition(":")
    if kind == "unix":
        return await asyncio.start_unix_server(handler, address)
    host, _, port = address.rpartition(":")
    return await asyncio.start_server(handler, host, int(port))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close (an HTTP client may still read the answer)."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


def _relay_to(target: str):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await _open(target)
        except OSError:
            writer.close()  # the client sees the connection closed, as if the port were down
            return
        await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        upstream_writer.close()
        writer.close()

    return handle


async def main(pairs: list[str]) -> None:
    servers = []
    for pair in pairs:
        listen, _, target = pair.partition("=")
        servers.append(await _listen(listen, _relay_to(target)))
    print("ready", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
