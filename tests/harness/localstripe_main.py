"""localstripe, started for the tests: bound to 127.0.0.1, its pickled store in a directory of its own.

localstripe 1.15.10 listens on every interface (``::``) and pickles its store to the fixed path
``/tmp/localstripe.pickle`` after each write, whatever ``TMPDIR`` says. Here the store goes to
``<state-dir>/localstripe.pickle`` (so runs never share or clobber one), starts empty, and the server listens on
loopback only. ``DELETE /_config/webhooks/<id>`` is added so a test can unregister the endpoint it registered
(``DELETE /_config/data``, localstripe's own flush, forgets objects but not webhooks). Run as a script, without its
directory on the path (``python -P localstripe_main.py --port P --state-dir D``: the harness's ``localstripe.py``
would shadow the package).
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

from aiohttp import web
from localstripe import resources, server, webhooks


def _store_at(path: Path) -> None:
    def dump_to_disk(self: resources.Store) -> None:
        with path.open("wb") as f:
            pickle.dump(self, f, protocol=pickle.HIGHEST_PROTOCOL)

    resources.Store.dump_to_disk = dump_to_disk
    resources.Store.try_load_from_disk = lambda self: None


async def _forget_webhook(request: web.Request) -> web.Response:
    webhooks._webhooks.pop(request.match_info["id"], None)
    return web.Response()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args()
    _store_at(args.state_dir / "localstripe.pickle")
    server.app.router.add_delete("/_config/webhooks/{id}", _forget_webhook)
    web.run_app(server.app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
