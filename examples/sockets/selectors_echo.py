"""The notes' echo server on the ``selectors`` module (no asyncio): one
thread, non-blocking sockets, the OS says which socket is ready.

Fixed from the notes: a client that disconnects is unregistered and closed
(the notes kept selecting its socket, reading b'' forever), ``sendall``
instead of ``send``, and Ctrl-C / SIGTERM stop the server cleanly.

    python examples/sockets/selectors_echo.py [--port 8000]
"""

import argparse
import selectors
import signal
import socket
from typing import List, Tuple


def serve(port: int) -> None:
    selector = selectors.DefaultSelector()
    server_socket = socket.socket()
    server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server_socket.setblocking(False)
    server_socket.bind(("127.0.0.1", port))
    server_socket.listen()
    selector.register(server_socket, selectors.EVENT_READ)
    print(f"Listening on 127.0.0.1:{server_socket.getsockname()[1]}", flush=True)
    try:
        while True:
            events: List[Tuple[selectors.SelectorKey, int]] = selector.select(timeout=1)
            if len(events) == 0:
                print("No events, waiting a bit more!", flush=True)
            for event, _ in events:
                event_socket = event.fileobj
                if event_socket == server_socket:  # a connection attempt
                    connection, client_address = server_socket.accept()
                    connection.setblocking(False)
                    print(f"I got a connection from {client_address}!", flush=True)
                    selector.register(connection, selectors.EVENT_READ)
                else:
                    data = event_socket.recv(1024)
                    if not data:  # the client went away
                        print("A client disconnected", flush=True)
                        selector.unregister(event_socket)
                        event_socket.close()
                        continue
                    print(f"I got some data: {data}", flush=True)
                    event_socket.setblocking(True)  # a short blocking sendall
                    event_socket.sendall(data)
                    event_socket.setblocking(False)
    except KeyboardInterrupt:
        print("Shutting down!", flush=True)
    finally:
        for key in list(selector.get_map().values()):
            selector.unregister(key.fileobj)
            key.fileobj.close()
        selector.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8000)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM = Ctrl-C
    serve(parser.parse_args().port)
