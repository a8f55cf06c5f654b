"""The socket every service is served on (`services.kit.startup.listening_socket`, also the
stack's): each connection it accepts sends small segments at once (TCP_NODELAY), so that an
answer written as a head and a body does not wait for the client's delayed ACK of the head
(about 40 ms on Linux, on every request of a keep-alive connection after its first)."""

from __future__ import annotations

import socket

from services.kit.startup import listening_socket


def test_each_connection_the_service_accepts_sends_without_waiting_for_an_ack() -> None:
    listener = listening_socket("127.0.0.1", 0)
    try:
        listener.listen()
        with socket.create_connection(listener.getsockname()) as client:
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
                client.sendall(b"ping")
                assert accepted.recv(4) == b"ping"
    finally:
        listener.close()
