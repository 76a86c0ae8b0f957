from datetime import datetime, timezone


def utcnow() -> datetime:
    """Naive UTC timestamp: SQLite stores no zone, so every timestamp is UTC by convention."""
    return datetime.now(timezone.utc).replace(tzinfo=None)
