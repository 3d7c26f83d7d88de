"""The ISO-BMFF / CMAF media core: pure, sans-I/O.

- ``models``: CmafHeader, TrackInfo, CmafFragment, Sample, ProducerReferenceTime.
- ``errors``: the MediaError tree (MalformedBox, Truncated, BoxTooLarge, NotIsoBmff, ...).
- ``reader``: CmafReader, the incremental reader (feed bytes, get HeaderReceived / FragmentReceived).
- ``boxes``: every box class, ``parse_boxes`` and ``serialize``; ``fields`` and ``box`` define how.
- ``codecs``: RFC 6381 codec strings, esds and AudioSpecificConfig.
- ``header``: TrackInfo from a moov; ``writer``: build_ftyp, build_styp, single_track_header.
"""
