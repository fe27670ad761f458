"""localstripe, started for the tests: bound to 127.0.0.1, its store in memory only.

localstripe 1.15.10 listens on every interface (``::``) and pickles its whole store to the fixed path
``/tmp/localstripe.pickle`` after each write, whatever ``TMPDIR`` says (about 41 ms per write at 300 customers,
growing with the store), and loads it at start. Here the store lives in memory only: it starts empty, nothing is
written (so runs never share or clobber a file, and a write costs what the API costs), and the server listens on
loopback only. ``DELETE /_config/webhooks/<id>`` is added so a test can unregister the endpoint it registered
(``DELETE /_config/data``, localstripe's own flush, forgets objects but not webhooks). Run as a script, without its
directory on the path (``python -P localstripe_main.py --port P``: the harness's ``localstripe.py``
would shadow the package).
"""

from __future__ import annotations

import argparse

from aiohttp import web
from localstripe import resources, server, webhooks


def _in_memory() -> None:
    resources.Store.dump_to_disk = lambda self: None
    resources.Store.try_load_from_disk = lambda self: None


async def _forget_webhook(request: web.Request) -> web.Response:
    webhooks._webhooks.pop(request.match_info["id"], None)
    return web.Response()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    _in_memory()
    server.app.router.add_delete("/_config/webhooks/{id}", _forget_webhook)
    web.run_app(server.app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
