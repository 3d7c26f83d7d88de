"""The error tree of the ISO-BMFF/CMAF media core. Mapped to HTTP only at the edges.

    HeadwaterError                       (services.shared.errors)
     └── MediaError                      anything wrong with media bytes
          ├── MalformedBox               a box breaks ISO/IEC 14496-12 or CMAF rules; names
          │    │                         the box type and field                             -> 400
          │    └── Truncated             a box or field ends before its declared size       -> 400
          ├── BoxTooLarge                a box (or a fragment's boxes) over the size limit  -> 413
          ├── NotIsoBmff                 not ISO-BMFF at all (MPEG-TS, HTML, text, ...)     -> 415
          ├── UnsupportedCodec           a sample entry we cannot describe; names the fourcc -> 415
          ├── MissingHeader              a fragment for a track whose CMAF header is unknown -> 412
          └── TimelineError              decode times that go backwards (raised by ingest)  -> 400

The reader lets nothing else escape: struct, index, value and Unicode errors from bad input are
translated to this tree where they can occur.
"""

# Names follow the domain vocabulary (and httpx), not the "Error" suffix rule.

from __future__ import annotations

from services.shared.errors import HeadwaterError


class MediaError(HeadwaterError):
    """Base of every error about media bytes."""


class MalformedBox(MediaError):
    """A box breaks the format; ``box_type`` and ``field`` say where."""

    def __init__(self, box_type: str, field: str, detail: str) -> None:
        super().__init__(f"{box_type}.{field}: {detail}")
        self.box_type = box_type
        self.field = field
        self.detail = detail

    def __reduce__(self) -> tuple[type[MalformedBox], tuple[str, str, str]]:
        return (type(self), (self.box_type, self.field, self.detail))


class Truncated(MalformedBox):
    """A box or field ends before the size it declares (or the stream ends inside a box)."""


class BoxTooLarge(MediaError):
    """A box, or the boxes of one fragment together, exceed the reader's ``max_box_bytes``."""

    def __init__(self, box_type: str, size: int, limit: int) -> None:
        super().__init__(f"{box_type}: {size} bytes exceeds the limit of {limit} bytes")
        self.box_type = box_type
        self.size = size
        self.limit = limit

    def __reduce__(self) -> tuple[type[BoxTooLarge], tuple[str, int, int]]:
        return (type(self), (self.box_type, self.size, self.limit))


class NotIsoBmff(MediaError):
    """The bytes are not an ISO-BMFF stream (e.g. MPEG-TS, HTML, JSON)."""


class UnsupportedCodec(MediaError):
    """A sample entry whose codec the origin cannot describe or package."""

    def __init__(self, fourcc: str, detail: str = "unsupported sample entry") -> None:
        super().__init__(f"{fourcc!r}: {detail}")
        self.fourcc = fourcc
        self.detail = detail

    def __reduce__(self) -> tuple[type[UnsupportedCodec], tuple[str, str]]:
        return (type(self), (self.fourcc, self.detail))


class MissingHeader(MediaError):
    """A fragment arrived but no CMAF header for its track is known (ingest answers 412)."""


class TimelineError(MediaError):
    """Decode times that do not move forward (e.g. a tfdt lower than the last committed one)."""
