"""The error tree of services.shared (store and domain rules). Mapped to HTTP only at the edges.

HeadwaterError
 ├── InvalidName            a channel or track name breaks the naming rule        -> 400
 ├── NotFound               unknown channel/track/object                          -> 404
 └── StoreError             the store could not do what was asked
      └── StoreUnavailable  the backing store cannot take reads/writes now        -> 503
"""

from __future__ import annotations


class HeadwaterError(Exception):
    """Base of every error the project raises on purpose."""


class InvalidName(HeadwaterError):
    pass


class NotFound(HeadwaterError):
    pass


class StoreError(HeadwaterError):
    pass


class StoreUnavailable(StoreError):
    pass
