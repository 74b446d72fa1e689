"""The notes' thread-per-client echo server (no asyncio) with clean shutdown:
on Ctrl-C (or SIGTERM) each client thread tells its client
``Shutting down!`` and shuts the socket down, which interrupts its blocking
``recv``; the threads are then joined.

Fixed from the notes: the threads are joined, a client that already left is
not written to, the accept loop does not hang on shutdown, and the sockets
are closed.

    python examples/sockets/threaded_echo.py [--port 8000]
"""

import argparse
import signal
import socket
from threading import Lock, Thread

print_lock = Lock()


def say(text: str) -> None:
    with print_lock:
        print(text, flush=True)


class ClientEchoThread(Thread):
    def __init__(self, client: socket.socket):
        super().__init__()
        self.client = client
        self.closing = False

    def run(self):
        try:
            while True:
                data = self.client.recv(2048)
                if not data:  # closed by the client, or shut down by close()
                    raise BrokenPipeError("Connection closed!")
                say(f"Received {data}, sending!")
                self.client.sendall(data)
        except OSError as e:
            if not self.closing:
                say(f"Thread interrupted by {e} exception, shutting down!")
        finally:
            self.client.close()

    def close(self):
        self.closing = True
        if self.is_alive():
            try:
                self.client.sendall(b"Shutting down!")
                self.client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client left in the meantime


def serve(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        say(f"Listening on 127.0.0.1:{server.getsockname()[1]}")
        connection_threads = []
        try:
            while True:
                connection, _ = server.accept()
                thread = ClientEchoThread(connection)
                connection_threads.append(thread)
                thread.start()
        except KeyboardInterrupt:
            say("Shutting down!")
            for thread in connection_threads:
                thread.close()
            for thread in connection_threads:
                thread.join()
            say(f"{len(connection_threads)} client thread(s) stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    serve(parser.parse_args().port)
