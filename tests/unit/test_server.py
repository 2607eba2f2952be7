"""The multi-worker listener keeps TCP_NODELAY on accepted connections."""

from __future__ import annotations

import socket

from ragserve.server import _TcpConfig


def test_the_shared_listener_is_ipproto_tcp_so_connections_get_nodelay() -> None:
    """Accepted sockets inherit IPPROTO_TCP, which asyncio needs to turn Nagle off."""
    config = _TcpConfig("ragserve.api.app:app_from_env", host="127.0.0.1", port=0, workers=2)
    listener = config.bind_socket()
    try:
        assert listener.proto == socket.IPPROTO_TCP
        listener.listen()
        with socket.create_connection(listener.getsockname()):
            accepted, _ = listener.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP
    finally:
        listener.close()
