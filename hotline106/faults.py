"""Faults injected on purpose, for the tests and demos: what a client of a real hotline must survive.

``--fail-posts 503,429`` answers the first POSTs with those statuses, storing nothing (429 with
``Retry-After: 1``). ``--post-delay`` holds each POST's answer after the request is stored: a slow back office,
or an answer lost on the way, which a client must survive without opening a duplicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hotline106.answers import HttpError


class Faults:
    """The failures still to inject, and how long to hold each POST's answer."""

    def __init__(self, fail_posts: Sequence[int], post_delay_s: float) -> None:
        self.fail_posts = list(fail_posts)
        self.post_delay_s = post_delay_s

    def fail_next_post(self) -> None:
        """Raise the next injected failure, if one is left: before the POST is read any further or stored."""
        if self.fail_posts:
            status = self.fail_posts.pop(0)
            raise HttpError(
                status, f"injected failure {status}", headers={"Retry-After": "1"} if status == 429 else None
            )

    async def hold_answer(self) -> None:
        """Wait ``--post-delay`` seconds: the request is stored, its answer not yet sent."""
        if self.post_delay_s:
            await asyncio.sleep(self.post_delay_s)
