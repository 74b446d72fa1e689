"""concurrent.futures: submit every task to an executor at once and handle
the outcomes as they complete; then Executor.map, whose results come in
the order of the inputs (unlike as_completed).

Fixed from the notes: ``Executor`` is abstract - use a ThreadPoolExecutor
(or ProcessPoolExecutor).

    python examples/classic/concurrent_futures.py
"""

import concurrent.futures
import time


def perform(task: int) -> int:
    time.sleep(0.05 * (5 - task))  # later tasks finish first
    return task * task


def get_tasks_to_do():
    return range(5)


if __name__ == "__main__":
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as executor:
        futures = {executor.submit(perform, task) for task in get_tasks_to_do()}
        outcomes = []
        for future in concurrent.futures.as_completed(futures):
            outcomes.append(future.result())
            print(f"The outcome is {future.result()}")
        print(f"as_completed order: {outcomes}")
        print(f"map order: {list(executor.map(perform, get_tasks_to_do()))}")
