"""Reading LL-HLS playlists with ``m3u8`` in end-to-end tests."""

from __future__ import annotations

import m3u8


def listed_segments(playlist: m3u8.M3U8) -> list[m3u8.Segment]:
    """The playlist's complete segments: ``m3u8`` shows the parts of the segment still being written
    (LL-HLS EXT-X-PART lines after the last URI) as one more segment without a URI."""
    return [s for s in playlist.segments if s.uri]
