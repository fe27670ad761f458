"""An mmpy_bot bot that answers ``ping <words>`` with ``pong <words>`` in the message's thread.

Run by test_mmpy_bot.py with the interpreter of an environment holding mmpy_bot (see that test); configured by
the environment: CANOPY_URL (http://host:port), CANOPY_TEAM, CANOPY_BOT_TOKEN."""

from __future__ import annotations

import os
import re

from mmpy_bot import Bot, Message, Plugin, Settings, listen_to


class Pong(Plugin):
    @listen_to(r"^ping (.+)$", re.IGNORECASE)
    async def pong(self, message: Message, words: str) -> None:
        self.driver.reply_to(message, f"pong {words}")


def main() -> None:
    bot = Bot(
        settings=Settings(
            MATTERMOST_URL=os.environ["CANOPY_URL"].rsplit(":", 1)[0],
            MATTERMOST_PORT=int(os.environ["CANOPY_URL"].rsplit(":", 1)[1]),
            MATTERMOST_API_PATH="",
            BOT_TOKEN=os.environ["CANOPY_BOT_TOKEN"],
            BOT_TEAM=os.environ["CANOPY_TEAM"],
            SSL_VERIFY=False,
            WEBHOOK_HOST_ENABLED=False,
        ),
        plugins=[Pong()],
    )
    bot.run()


if __name__ == "__main__":
    main()
