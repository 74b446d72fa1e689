"""The notes' tour of requests (blocking; not asyncio): the HTTP verbs,
query parameters, JSON bodies, a Session, raise_for_status - against the
local server rather than httpbin.org and api.github.com.

    python examples/http/requests_tour.py
"""

import asyncio  # noqa: F401  (only for the server thread)
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import requests  # noqa: E402
from requests.exceptions import HTTPError  # noqa: E402

from notes_util.http import local_http_server_thread  # noqa: E402


def main() -> None:
    with local_http_server_thread() as base:
        url = base + "/anything"
        response = requests.get(base + "/", timeout=10)
        print(f"GET / -> {response.status_code} {response.headers['Content-Type']}")
        print(f"encoding: {response.encoding}; text starts {response.text[:12]!r}")
        response = requests.head(base + "/", timeout=10)
        print(f"HEAD / -> {response.status_code}, body {response.text!r}")
        for verb in ("post", "put", "delete", "options", "patch"):
            kwargs = {"data": {"key": "value"}} if verb in ("post", "put", "patch") else {}
            response = getattr(requests, verb)(url, timeout=10, **kwargs)
            print(f"{verb.upper()} /anything -> {response.status_code} {response.json()}")
        payload = {"key1": "value1", "key2": ["value2", "value3"]}
        response = requests.get(url, params=payload, timeout=10)
        print(f"URL with params: {response.url.replace(base, '<base>')}")
        print(f"echoed args: {response.json()['args']}")
        with requests.Session() as session:
            for path in ("/", "/status/404"):
                try:
                    response = session.get(base + path, timeout=10)
                    response.raise_for_status()
                except HTTPError as http_err:
                    print(f"HTTP error occurred: {str(http_err).split(' for url')[0]}")
                except Exception as err:
                    print(f"Other error occurred: {err}")
                else:
                    print(f"Success: {path}")


main()
