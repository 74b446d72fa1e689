"""threading.Thread: a thread says hello; the main thread reports the
process id, the number of threads and its own name, then joins it.

    python examples/classic/thread_hello.py
"""

import os
import threading

started = threading.Event()
go_on = threading.Event()


def hello_from_thread():
    print(f"Hello from thread {threading.current_thread().name}!")
    started.set()
    go_on.wait(10)  # stay alive while the main thread counts the threads


hello_thread = threading.Thread(target=hello_from_thread, name="hello-thread")
hello_thread.start()
started.wait(10)

print(f"Python process running with process id: {os.getpid()}")
total_threads = threading.active_count()
thread_name = threading.current_thread().name
print(f"Python is currently running {total_threads} thread(s).")
print(f"The current thread is {thread_name}.")
go_on.set()
hello_thread.join()  # wait until the thread has finished
print(f"after join: {threading.active_count()} thread(s)")
