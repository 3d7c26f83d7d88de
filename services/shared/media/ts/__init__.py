"""MPEG-2 transport streams (ISO/IEC 13818-1) from CMAF samples: the HLS TS output's muxer. Pure, no I/O.

- ``remux``: ``remux(video=..., audio=...)`` → one segment's bytes; fixed PIDs and program layout.
- ``muxer``: ``SegmentMuxer`` — push PES payloads, pull packets, flush; PSI grid, continuity, PCR.
- ``cmaf``: stored CMAF fragments → ``TimedSample``s (views of the fragment's sample data).
- ``annexb`` (H.264/HEVC access units), ``adts`` (AAC frames): elementary-stream formats.
- ``pes``, ``psi``, ``packets``, ``timestamps``: the layers of ISO/IEC 13818-1 they are built on.
"""
