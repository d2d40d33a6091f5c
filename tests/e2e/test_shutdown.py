"""Stopping the server (SIGTERM, what `systemctl stop` sends) while clients long-poll.

uvicorn waits for the requests in flight before it stops, 10 s at most: a client's 30 s
/sync or sliding sync long-poll held every stop for those 10 s. The notifier now answers
every long-poll as the server starts to stop.
"""

from __future__ import annotations

import threading
import time

import httpx

from tests.e2e.conftest import ServerFactory
from tests.e2e.matrix import CS, register_user

SSS = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


def test_a_stop_answers_the_long_polls_at_once(server_factory: ServerFactory) -> None:
    server = server_factory(shared=False)
    with server.client() as http:
        user = register_user(http, "poller")
        headers = {"Authorization": f"Bearer {user.access_token}"}
        since = http.get(f"{CS}/sync", headers=headers).json()["next_batch"]
        pos = http.post(SSS, headers=headers, json={"lists": {}}).json()["pos"]
    answers: list[int] = []

    def long_poll(method: str, url: str, **kwargs: object) -> None:
        with httpx.Client(base_url=server.url, timeout=40.0) as client:
            answers.append(client.request(method, url, headers=headers, **kwargs).status_code)  # type: ignore[arg-type]

    polls = [
        threading.Thread(
            target=long_poll,
            args=("GET", f"{CS}/sync"),
            kwargs={"params": {"since": since, "timeout": 30000}},
        ),
        threading.Thread(
            target=long_poll,
            args=("POST", SSS),
            kwargs={"params": {"pos": pos, "timeout": 30000}, "json": {"lists": {}}},
        ),
    ]
    for poll in polls:
        poll.start()
    time.sleep(0.5)  # both waiting in the server
    assert not answers
    started = time.monotonic()
    server.stop()  # raises unless the server stopped cleanly
    took = time.monotonic() - started
    for poll in polls:
        poll.join(5)
    assert answers == [200, 200]
    assert took < 5, f"the stop took {took:.1f} s"
