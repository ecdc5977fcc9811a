#!/usr/bin/env python3
"""Readiness probe for the local Kafka broker: a real Metadata request over the wire protocol.

Exits 0 when the broker answers with at least one live broker and a controller, 1 otherwise.
Usage: probe_kafka.py HOST PORT
"""
import socket
import struct
import sys


def request(sock, api_key, api_version, body, correlation_id):
    client_id = b"fig-probe"
    header = struct.pack(">hhih", api_key, api_version, correlation_id, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    size = struct.unpack(">i", read_exact(sock, 4))[0]
    data = read_exact(sock, size)
    if struct.unpack(">i", data[:4])[0] != correlation_id:
        raise RuntimeError("correlation id mismatch")
    return data[4:]


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise RuntimeError("connection closed")
        buf += chunk
    return buf


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.settimeout(2)
        # Metadata v1 with a null topic array: brokers and controller id, no topics.
        body = request(sock, 3, 1, struct.pack(">i", -1), 1)
        brokers = struct.unpack(">i", body[:4])[0]
        pos = 4
        for _ in range(brokers):
            pos += 4  # node id
            hlen = struct.unpack(">h", body[pos:pos + 2])[0]
            pos += 2 + hlen + 4  # host, port
            rlen = struct.unpack(">h", body[pos:pos + 2])[0]
            pos += 2 + max(rlen, 0)  # rack (nullable)
        controller = struct.unpack(">i", body[pos:pos + 4])[0]
    if brokers < 1 or controller < 0:
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # any failure means "not ready"
        print(f"kafka not ready: {exc}", file=sys.stderr)
        sys.exit(1)
