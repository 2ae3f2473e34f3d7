#!/usr/bin/env python3
"""An HTTP/1.1 proxy in front of moto for `make bench`, terminating TLS when given a
certificate, so that the functions pay what they pay in AWS: a TLS handshake and the TLS
library's start-up.

Secrets Manager keeps a client's connection alive; moto's server (werkzeug) closes it after
every response, which would make each call of a function pay a new handshake. So this proxy
keeps the client's connection open, and forwards each request on a new connection to moto
(plain, on loopback), reading moto's response to its end. Both transports `make bench`
measures go through it, so that they differ only by TLS.

usage: tls_proxy.py LISTEN_PORT UPSTREAM_PORT [CERT KEY]
"""

import asyncio
import ssl
import sys


def header_value(head, name):
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def dechunk(body):
    out, rest = bytearray(), body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2:]
    return bytes(out)


def keep_alive_response(response):
    """moto's whole response, reframed for a connection that stays open."""
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if (header_value(head, b"transfer-encoding") or b"").lower() == b"chunked":
        body = dechunk(body)
    kept = [line for line in lines[1:]
            if line.partition(b":")[0].strip().lower() not in (b"connection", b"content-length", b"transfer-encoding")]
    return b"\r\n".join([lines[0], *kept, b"Content-Length: %d" % len(body), b"", b""]) + body


async def serve(upstream_port, reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if header_value(head, b"transfer-encoding") is not None:
                return  # the SDKs send Secrets Manager requests with a Content-Length
            body = await reader.readexactly(int(header_value(head, b"content-length") or 0))
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
            upstream_writer.write(head + body)
            await upstream_writer.drain()
            response = await upstream_reader.read()
            upstream_writer.close()
            writer.write(keep_alive_response(response))
            await writer.drain()
            if (header_value(head, b"connection") or b"").lower() == b"close":
                return
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    listen_port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    context = None
    if len(sys.argv) > 4:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(sys.argv[3], sys.argv[4])
        context.set_alpn_protocols(["http/1.1"])
    server = await asyncio.start_server(
        lambda r, w: serve(upstream_port, r, w), "127.0.0.1", listen_port, ssl=context)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
