"""SQL storage for exchanges: schema, engine, the batched writer, privacy, reads and purges.

Imports only ``core`` among Understudy's packages. The schema is migrated by
``migrations``.
"""

from storage.database import Database
from storage.errors import SchemaOutOfDate, StorageError
from storage.judgements import Judgement, add_judgements, list_judgements
from storage.privacy import PrivacyPolicy
from storage.repository import (
    ExchangeFilter,
    count_exchanges,
    get_exchange,
    iter_exchanges,
    list_exchanges,
)
from storage.writer import ExchangeWriter

__all__ = [
    "Database",
    "ExchangeFilter",
    "ExchangeWriter",
    "Judgement",
    "PrivacyPolicy",
    "SchemaOutOfDate",
    "StorageError",
    "add_judgements",
    "count_exchanges",
    "get_exchange",
    "iter_exchanges",
    "list_exchanges",
    "list_judgements",
]
