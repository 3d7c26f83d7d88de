"""The incremental CMAF reader: feed it bytes in any split, get headers and fragments back (h11-style).

    reader = CmafReader()
    for chunk in body:
        for event in reader.feed(chunk):
            ...  # HeaderReceived(header=...) or FragmentReceived(fragment=...)
    reader.close()  # Truncated if the stream stopped inside a box or a fragment

Top-level structure, checked as soon as each box header arrives:

- ``ftyp``? ``moov`` → HeaderReceived. The header's bytes are everything from the ftyp (or moov) to the
  end of the moov. A later header replaces the track table (its trex defaults).
- (``styp`` | ``prft`` | ``emsg`` | ``sidx``)* ``moof`` ``mdat`` → FragmentReceived. The fragment's
  ``data`` is the exact bytes from its first box to the end of its mdat, so the fragments of a segment
  concatenate back to the segment. ``free``/``skip`` and unknown boxes *inside* that run stay in
  ``data``; such boxes (and ``mfra``) *between* runs are dropped.
- ``mdat`` without a moof, a moof followed by anything but an mdat (``free``/``skip`` aside), a
  header box inside a fragment: MalformedBox. A moof with no known header: MissingHeader.

No box, and no fragment's run of boxes together, may exceed ``max_box_bytes``: BoxTooLarge is raised
when the header that would cross the limit is read, so at most ``max_box_bytes`` plus one partial box
header are ever buffered. When a feed yields events and then hits an error, the events are returned and
the error is raised by the next ``feed``/``close``; after an error the reader drops what it buffered and
only re-raises the error.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from services.shared.media.box import BoxHeader, check_box_size, parse_box_at
from services.shared.media.bytequeue import ByteQueue
from services.shared.media.errors import (
    BoxTooLarge,
    MalformedBox,
    MediaError,
    MissingHeader,
    NotIsoBmff,
    Truncated,
)
from services.shared.media.fragment import MoofSummary, check_sample_data, summarize_moof
from services.shared.media.fragment_boxes import MovieFragmentBox, ProducerReferenceTimeBox
from services.shared.media.header import parse_header
from services.shared.media.models import CmafFragment, CmafHeader, ProducerReferenceTime, TrackInfo
from services.shared.media.movie_boxes import FileTypeBox

DEFAULT_MAX_BOX_BYTES = 64 * 1024 * 1024
MPEG_TS_SYNC_BYTE = 0x47
HEADER_BOXES = frozenset({"ftyp", "moov"})
FRAGMENT_PREFIX_BOXES = frozenset({"styp", "prft", "emsg", "sidx"})
FILLER_BOXES = frozenset({"free", "skip"})
# Box types an ISO-BMFF stream may plausibly start with; anything else is not ISO-BMFF at all.
FIRST_BOX_TYPES = HEADER_BOXES | FRAGMENT_PREFIX_BOXES | FILLER_BOXES | {
    "moof", "mdat", "mfra", "ssix", "uuid", "meta", "pdin", "wide", "etyp", "otyp"
}  # fmt: skip

_SIZE_TYPE = struct.Struct(">I4s")
_LARGESIZE = struct.Struct(">Q")


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderReceived:
    """A complete CMAF header (ftyp + moov)."""

    header: CmafHeader


@dataclass(frozen=True, slots=True, kw_only=True)
class FragmentReceived:
    """A complete CMAF fragment (optional styp/prft/emsg, moof, mdat)."""

    fragment: CmafFragment


Event = HeaderReceived | FragmentReceived


class _Phase(enum.Enum):
    IDLE = "idle"  # between runs; boxes completed here are dropped
    HEADER = "header"  # ftyp or moov started: the run ends with the moov
    PREFIX = "prefix"  # styp/prft/emsg/sidx seen: waiting for the moof
    MOOF = "moof"  # moof started: waiting for its mdat


class CmafReader:
    """Turns ISO-BMFF bytes, fed in any split, into HeaderReceived / FragmentReceived events."""

    def __init__(
        self, max_box_bytes: int = DEFAULT_MAX_BOX_BYTES, *, header: CmafHeader | None = None
    ) -> None:
        """``header`` seeds the tracks (and trex defaults) when the header came in an earlier request."""
        self._max_box_bytes = max_box_bytes
        self._queue = ByteQueue()
        self._stream_offset = 0  # stream offset of the queue's first byte
        self._scan = 0  # queue offset of the next box; the current run starts at queue offset 0
        self._box: BoxHeader | None = None  # the box at _scan, its header read but the box incomplete
        self._phase = _Phase.IDLE
        self._tracks: Mapping[int, TrackInfo] = {t.track_id: t for t in header.tracks} if header else {}
        self._error: MediaError | None = None
        self._reset_fragment()

    def _reset_fragment(self) -> None:
        self._brands: tuple[str, ...] = ()
        self._prft: ProducerReferenceTime | None = None
        self._moof: MoofSummary | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes held: the current run so far (at most max_box_bytes) plus a partial box header."""
        return len(self._queue)

    def feed(self, data: bytes) -> list[Event]:
        """Take the next bytes of the stream; return the events they complete, in stream order."""
        if self._error is not None:
            raise self._error
        self._queue.append(data if type(data) is bytes else bytes(data))
        events: list[Event] = []
        try:
            while (box := self._next_complete_box()) is not None:
                event = self._complete(box)
                if event is not None:
                    events.append(event)
        except MediaError as exc:
            self._fail(exc)
            if not events:
                raise
        return events

    def _fail(self, error: MediaError) -> None:
        """Remember the error for every later call and let go of the buffered bytes."""
        self._error = error
        self._queue = ByteQueue()
        self._scan = 0
        self._box = None

    def close(self) -> None:
        """The stream ended: Truncated if it stopped inside a box, a header or a fragment."""
        if self._error is not None:
            raise self._error
        if self._box is not None:
            have = len(self._queue) - self._scan
            raise Truncated(
                self._box.box_type, "size", f"stream ended {have} bytes into a {self._box.size}-byte box"
            )
        if len(self._queue) > self._scan:
            if self._stream_offset + self._scan == 0:
                _check_first_box(self._queue.peek(0, 8))
            raise Truncated(
                "file", "size", f"stream ended inside a box header ({len(self._queue) - self._scan} bytes)"
            )
        if self._phase is _Phase.HEADER:
            raise Truncated("moov", "type", "stream ended before the moov of the CMAF header")
        if self._phase is _Phase.PREFIX:
            raise Truncated("moof", "type", "stream ended before the moof of a fragment")
        if self._phase is _Phase.MOOF:
            raise Truncated("mdat", "type", "stream ended before the mdat of a fragment")

    # -- box boundaries --------------------------------------------------------------------------

    def _next_complete_box(self) -> tuple[BoxHeader, int] | None:
        """The next complete box and its queue offset, or None until more bytes arrive."""
        if self._box is None:
            self._box = self._read_header()
            if self._box is None:
                return None
            self._start(self._box)
        box = self._box
        if len(self._queue) - self._scan < box.size:
            return None
        offset = self._scan
        self._scan += box.size
        self._box = None
        return box, offset

    def _read_header(self) -> BoxHeader | None:
        available = len(self._queue) - self._scan
        if available < _SIZE_TYPE.size:
            return None
        raw = self._queue.peek(self._scan, 16)
        size, raw_type = _SIZE_TYPE.unpack_from(raw)
        if self._stream_offset + self._scan == 0:
            _check_first_box(raw)
        if not all(0x20 <= c <= 0x7E for c in raw_type):
            raise MalformedBox(f"0x{raw_type.hex()}", "type", "not a box type: the stream is corrupt here")
        box_type = raw_type.decode("ascii")
        header_size = _SIZE_TYPE.size
        if size == 1:
            if available < 16:
                return None
            size = _LARGESIZE.unpack_from(raw, 8)[0]
            header_size = 16
        check_box_size(box_type, size, header_size)
        return BoxHeader(box_type, size, header_size, header_size == 16)

    def _start(self, box: BoxHeader) -> None:
        """Check a box that has just begun against the size limit and the stream structure."""
        run_size = self._scan + box.size
        if run_size > self._max_box_bytes:
            raise BoxTooLarge(box.box_type, run_size, self._max_box_bytes)
        box_type, phase = box.box_type, self._phase
        if phase is _Phase.MOOF and box_type not in FILLER_BOXES and box_type != "mdat":
            raise MalformedBox("moof", "mdat", f"a moof must be followed by its mdat, not {box_type!r}")
        if box_type == "mdat":
            if phase is not _Phase.MOOF:
                raise MalformedBox("mdat", "type", "mdat without a preceding moof")
            self._check_mdat(box)
        elif box_type in HEADER_BOXES:
            if phase is _Phase.PREFIX:
                raise MalformedBox(box_type, "type", f"{box_type} inside a fragment")
            if phase is _Phase.HEADER and box_type == "ftyp":
                raise MalformedBox("ftyp", "type", "ftyp not followed by moov")
            self._phase = _Phase.HEADER
        elif box_type == "moof" or box_type in FRAGMENT_PREFIX_BOXES:
            self._start_fragment_box(box_type)

    def _start_fragment_box(self, box_type: str) -> None:
        if self._phase is _Phase.HEADER:
            raise MalformedBox(
                "moov", "type", f"the CMAF header's ftyp must be followed by moov, not {box_type!r}"
            )
        if box_type == "moof":
            if not self._tracks:
                raise MissingHeader("a moof arrived but no CMAF header is known for the stream")
            self._phase = _Phase.MOOF
        else:
            self._phase = _Phase.PREFIX

    def _check_mdat(self, mdat: BoxHeader) -> None:
        assert self._moof is not None  # the moof completed before the mdat's header was read
        start = self._stream_offset + self._scan
        check_sample_data(self._moof, payload_start=start + mdat.header_size, payload_end=start + mdat.size)

    # -- complete boxes ----------------------------------------------------------------------------

    def _complete(self, item: tuple[BoxHeader, int]) -> Event | None:
        box, offset = item
        box_type = box.box_type
        if self._phase is _Phase.IDLE:  # filler or unknown box between runs
            self._drop_run()
            return None
        if box_type == "moov":
            return self._finish_header()
        if box_type == "mdat":
            return self._finish_fragment()
        if box_type in FRAGMENT_PREFIX_BOXES or box_type == "moof":
            self._parse_fragment_box(box, offset)
        return None

    def _parse_fragment_box(self, box: BoxHeader, offset: int) -> None:
        raw = memoryview(self._queue.peek(offset, box.size))
        parsed, _ = parse_box_at(raw, 0, box.size)
        if isinstance(parsed, MovieFragmentBox):
            moof_offset = self._stream_offset + offset
            self._moof = summarize_moof(parsed, moof_offset=moof_offset, tracks=self._tracks)
        elif isinstance(parsed, FileTypeBox) and not self._brands:
            self._brands = parsed.brands
        elif isinstance(parsed, ProducerReferenceTimeBox) and self._prft is None:
            self._prft = ProducerReferenceTime(wallclock_ms=parsed.wallclock_ms, media_time=parsed.media_time)

    def _take_run(self) -> bytes:
        data = self._queue.take(self._scan)
        self._stream_offset += self._scan
        self._scan = 0
        self._phase = _Phase.IDLE
        return data

    def _drop_run(self) -> None:
        self._queue.drop(self._scan)
        self._stream_offset += self._scan
        self._scan = 0

    def _finish_header(self) -> HeaderReceived:
        header = parse_header(self._take_run())
        self._tracks = {track.track_id: track for track in header.tracks}
        return HeaderReceived(header=header)

    def _finish_fragment(self) -> FragmentReceived:
        moof = self._moof
        assert moof is not None
        fragment = CmafFragment(
            track_id=moof.track_id,
            sequence_number=moof.sequence_number,
            decode_time=moof.decode_time,
            samples=moof.samples,
            brands=self._brands,
            prft=self._prft,
            data=self._take_run(),
        )
        self._reset_fragment()
        return FragmentReceived(fragment=fragment)


def _check_first_box(raw: bytes) -> None:
    """NotIsoBmff unless the stream starts like ISO-BMFF (MPEG-TS, HTML, JSON and text do not)."""
    if raw[0] == MPEG_TS_SYNC_BYTE:
        raise NotIsoBmff("the stream starts with 0x47, an MPEG-TS sync byte: send CMAF (fMP4), not MPEG-TS")
    box_type = raw[4:8].decode("latin-1")
    if len(raw) >= _SIZE_TYPE.size and box_type not in FIRST_BOX_TYPES:
        raise NotIsoBmff(f"the stream does not start with an ISO-BMFF box (first type would be {box_type!r})")
