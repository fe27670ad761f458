"""``moto_server`` with one emulator trap fixed: moto gives every EKS cluster of a process the same OIDC issuer,
where AWS gives each cluster its own (and each silo's IAM OIDC provider is the provider of that issuer). Here
each cluster gets an issuer of its own, in AWS's shape. Run as a script, without its directory on the path
(``python -P moto_main.py -H ... -p ...``: the harness's ``moto.py`` would shadow moto).
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

from moto.eks import models
from moto.server import main

_create_cluster = models.Cluster.__init__


def _with_own_issuer(self: Any, *args: Any, **kwargs: Any) -> None:
    _create_cluster(self, *args, **kwargs)
    region = self.arn.split(":")[3]
    self.identity = {"oidc": {"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{uuid.uuid4().hex.upper()}"}}


models.Cluster.__init__ = _with_own_issuer  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
