"""multiprocessing.Process: a child process says hello with its pid.

(The notes imported ``multiprocess``, a third-party fork; the standard
library's module is ``multiprocessing``.)

    python examples/classic/process_hello.py
"""

import os
from multiprocessing import Process


def hello_from_process():
    print(f"Hello from child process {os.getpid()}", flush=True)


if __name__ == "__main__":
    hello_process = Process(target=hello_from_process)
    hello_process.start()
    hello_process.join()  # wait for the child (before our own hello: a stable order)
    print(f"Hello from parent process {os.getpid()}")
    print(f"child exit code: {hello_process.exitcode}")
