"""Persistence: SQLite through sqlite-utils, one writer task with group commit."""

from .ops import (
    CommitStep,
    Ingest,
    Ingested,
    IngestMany,
    Load,
    Loaded,
    MarkOutbox,
    Op,
    OutboxRow,
    Progress,
    ProgressInfo,
    Receipt,
    Recover,
    Recovery,
    Requeue,
    SetConversationStatus,
)
from .writer import Store, StoreClosed, StoreError, connect

__all__ = [
    "CommitStep", "Ingest", "IngestMany", "Ingested", "Load", "Loaded", "MarkOutbox", "Op",
    "OutboxRow",
    "Progress", "ProgressInfo", "Receipt", "Recover", "Recovery", "Requeue",
    "SetConversationStatus", "Store", "StoreClosed", "StoreError", "connect",
]
