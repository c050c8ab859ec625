"""Errors raised by the store."""


class StoreError(Exception):
    """Base class for store errors."""


class ConflictError(StoreError):
    """A conditional write lost: the item changed (or appeared / vanished) since it was read."""


class NotFoundError(StoreError):
    """The item does not exist."""
