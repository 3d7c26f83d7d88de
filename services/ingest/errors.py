"""The ingest error tree, and the one place where every error an ingest request can meet becomes HTTP.

    IngestError (services.shared.errors.HeadwaterError)
     ├── UnknownChannel      channel does not exist and auto-create is off      -> 404
     ├── Forbidden           bad or missing credentials                        -> 403
     ├── TooManyRequests     over the channel's request limit                  -> 429
     ├── PayloadTooLarge     object or body over the channel's size limit      -> 413
     ├── BadTimeline         tfdt decreasing/overlapping, wrong track_ID       -> 400
     ├── BadManifest         posted MPD unreadable                             -> 400
     ├── NotCmafTrack        moov with other than one track                    -> 415
     └── BodyTimeout         the sender stopped sending mid-body               -> 408
Media errors (services.shared.media.errors) and store errors map here too: see ``http_status``.
"""

from __future__ import annotations

from services.shared import errors as shared
from services.shared.media import errors as media


class IngestError(shared.HeadwaterError):
    pass


class UnknownChannel(IngestError):
    pass


class Forbidden(IngestError):
    pass


class TooManyRequests(IngestError):
    pass


class PayloadTooLarge(IngestError):
    pass


class BadTimeline(IngestError):
    pass


class BadManifest(IngestError):
    pass


class NotCmafTrack(IngestError):
    pass


class BodyTimeout(IngestError):
    pass


_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (UnknownChannel, 404),
    (Forbidden, 403),
    (TooManyRequests, 429),
    (PayloadTooLarge, 413),
    (media.BoxTooLarge, 413),
    (media.MissingHeader, 412),
    (media.NotIsoBmff, 415),
    (media.UnsupportedCodec, 415),
    (NotCmafTrack, 415),
    (BodyTimeout, 408),
    (BadTimeline, 400),
    (BadManifest, 400),
    (media.MediaError, 400),
    (shared.InvalidName, 400),
    (shared.NotFound, 404),
    (shared.StoreUnavailable, 503),
    (shared.StoreError, 503),
)


def http_status(exc: Exception) -> int:
    """The status an ingest response carries for ``exc``; 500 for anything not raised on purpose."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500
