"""A StatsD stand-in for tests: every UDP datagram sent to 127.0.0.1:<free port>."""

from __future__ import annotations

import socket
import threading


class UdpListener:
    """Collects datagrams in ``packets``; ``lines`` gives them as StatsD lines. Call ``close()``."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.packets: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def lines(self) -> list[str]:
        text = b"\n".join(self.packets).decode("utf-8", "replace")
        return [line for line in text.splitlines() if line]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.packets.append(self.sock.recv(65535))
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()
