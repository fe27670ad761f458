"""Column helpers shared by the tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from sqlalchemy import DateTime, func
from sqlalchemy.orm import mapped_column

UUIDPk = Annotated[uuid.UUID, mapped_column(primary_key=True, default=uuid.uuid4)]
Timestamp = Annotated[datetime, mapped_column(DateTime(timezone=True), server_default=func.now())]
OptionalTimestamp = Annotated[datetime | None, mapped_column(DateTime(timezone=True), nullable=True)]

# The bound of PostgreSQL's bigint, declared on API parameters so that larger numbers are a 422
# (and the OpenAPI document shows the range) instead of an out-of-range error from the database.
BIGINT_MAX = 2**63 - 1
