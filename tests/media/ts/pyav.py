"""Transport streams read back by libavformat (PyAV): the independent demuxer of these tests."""

from __future__ import annotations

import io
from dataclasses import dataclass

import av
from av.container import InputContainer


@dataclass(frozen=True, slots=True)
class Demuxed:
    pid: int
    kind: str  # "video" | "audio" | "data"
    pts: int  # as libavformat gives them: unwrapped against the first timestamp it saw
    dts: int
    keyframe: bool
    data: bytes


def demux(data: bytes) -> list[Demuxed]:
    """Every non-empty packet of every stream, in stream order."""
    with av.open(io.BytesIO(data), mode="r", format="mpegts") as container:
        assert isinstance(container, InputContainer)
        packets = []
        for packet in container.demux():
            if not packet.size:
                continue
            assert packet.pts is not None and packet.dts is not None
            stream = packet.stream
            packets.append(
                Demuxed(
                    pid=stream.id,
                    kind=stream.type,
                    pts=packet.pts,
                    dts=packet.dts,
                    keyframe=packet.is_keyframe,
                    data=bytes(packet),
                )
            )
        return packets
