"""A function returns its value; a coroutine function returns a coroutine
object, which runs only when awaited (here by asyncio.run).

    python examples/basics/coroutine_vs_function.py
"""

import asyncio
import inspect


def add_one(number: int) -> int:
    return number + 1


async def coroutine_add_one(number: int) -> int:
    return number + 1


def main() -> None:
    function_result = add_one(1)
    coroutine = coroutine_add_one(1)
    print(f"Calling the coroutine function gives {type(coroutine).__name__}, "
          f"awaitable: {inspect.isawaitable(coroutine)}")
    coroutine_result = asyncio.run(coroutine)
    print(f"Function result is {function_result} and the type is {type(function_result)}")
    print(f"Coroutine result is {coroutine_result} and the type is {type(coroutine_result)}")


main()
