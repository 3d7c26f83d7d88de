"""The packager error tree; ``http_status`` maps it (and shared errors) to HTTP at the edge.

PackagerError (services.shared.errors.HeadwaterError)
 ├── BadRequest         malformed query (time-shift, blocking directives)   -> 400
 ├── OutsideWindow      time-shift outside the DVR window                   -> 404
 ├── NotYetAvailable    ahead of the live edge / still being written        -> 404, max-age=1
 ├── Gone               behind the DVR window or expired                    -> 404, max-age=1
 ├── StaleChannel       no new fragment for stale_after                     -> channel's failover status
 └── Unavailable        blocking reload timed out                           -> 503
"""

from __future__ import annotations

from services.shared import errors as shared


class PackagerError(shared.HeadwaterError):
    pass


class BadRequest(PackagerError):
    pass


class OutsideWindow(PackagerError):
    pass


class NotYetAvailable(PackagerError):
    pass


class Gone(PackagerError):
    pass


class StaleChannel(PackagerError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class Unavailable(PackagerError):
    pass


def http_status(exc: Exception) -> int:
    if isinstance(exc, StaleChannel):
        return exc.status
    if isinstance(exc, BadRequest | shared.InvalidName):
        return 400
    if isinstance(exc, OutsideWindow | NotYetAvailable | Gone | shared.NotFound):
        return 404
    if isinstance(exc, Unavailable | shared.StoreError):
        return 503
    return 500
