"""The segment muxer: push PES payloads in decode order, pull TS packets out, flush at the end.

Shaped like shaka-packager's ``PesPacketGenerator``; one ``SegmentMuxer`` makes one HLS media segment,
a pure function of what is pushed, so segments made independently (by any packager, in any order)
still chain into one valid transport stream:

- **PSI.** A PAT + PMT pair opens the segment. More pairs sit on a fixed grid of the 90 kHz decode
  clock (every ``psi_period`` ticks, default 0.5 s): the pair for grid point ``j`` has
  continuity_counter ``j mod 16`` and goes before the first PES decoded at or after it. A segment
  covering decode times [start, end) sends the pairs j = ceil(start/P) .. ceil(end/P) - 1, its first
  one at its very start, so the next segment continues with the next counter. (A segment shorter than
  one grid step repeats its neighbour's pair: a legal duplicate packet.)
- **Continuity counters of elementary streams** start at 0 in every segment, and every PID's packet
  count per segment is a multiple of 16: the last PES of each PID is spread over up to 15 more
  packets with adaptation-field stuffing. A segment therefore ends at 15 and the next one's 0 follows.
- **PCR** rides on the PCR_PID: each of its PES carries ``program_clock_reference_base`` = DTS -
  ``pcr_delay`` (never decreasing); before a PES of another PID, an adaptation-only packet on the
  PCR_PID re-sends the clock if the last PCR is ``max_pcr_interval`` or more behind. Deterministic,
  and never later than any decode time that follows it in the stream.

Push payloads already in their elementary-stream form (Annex B, ADTS: ``es``); each push is one PES.
The last PES of each PID is held back until the next one of that PID or ``flush`` (its packet count
may still grow), so ``pull`` returns everything before the oldest held-back PES.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from services.shared.media.ts.packets import (
    BODY_SIZE,
    Buffer,
    PidHeaders,
    adaptation_field,
    adaptation_field_minimum,
    assemble,
    payload_layout,
    stuffing_field,
)
from services.shared.media.ts.pes import pes_header, stuff_header
from services.shared.media.ts.psi import PsiPackets, StreamEntry

PMT_PID = 0x1000  # FFmpeg's default PMT PID
PROGRAM_NUMBER = 1
TRANSPORT_STREAM_ID = 1
PSI_PERIOD = 45_000  # 0.5 s of the 90 kHz clock between PAT/PMT pairs
PCR_DELAY = 9_000  # PCR runs 100 ms behind the DTS of the PES that carries it
MAX_PCR_INTERVAL = 8_100  # 90 ms: re-send the PCR before it is 100 ms old (ISO/IEC 13818-1 2.7.2)
_RESERVED_PCR = adaptation_field_minimum(pcr=True, random_access=True)  # first-packet field sizes
_RESERVED_RAI = adaptation_field_minimum(pcr=False, random_access=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class ElementaryStream:
    pid: int  # elementary_PID
    stream_type: int  # PMT stream_type
    stream_id: int  # PES stream_id


@dataclass(frozen=True, slots=True, kw_only=True)
class Program:
    """One program: its streams, which PID carries the PCR, and the packets that never change."""

    streams: tuple[ElementaryStream, ...]
    pcr_pid: int
    pmt_pid: int = PMT_PID
    program_number: int = PROGRAM_NUMBER
    transport_stream_id: int = TRANSPORT_STREAM_ID
    psi: PsiPackets = field(init=False, repr=False, compare=False)
    headers: dict[int, PidHeaders] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pids = [s.pid for s in self.streams]
        if len(set(pids)) != len(pids) or self.pmt_pid in pids or 0 in pids:
            raise ValueError(f"PIDs must be distinct and not 0 or the PMT's: {pids}")
        if self.pcr_pid not in pids:
            raise ValueError(f"PCR_PID {self.pcr_pid} is not one of the program's streams {pids}")
        psi = PsiPackets(
            transport_stream_id=self.transport_stream_id,
            program_number=self.program_number,
            pmt_pid=self.pmt_pid,
            pcr_pid=self.pcr_pid,
            streams=tuple(StreamEntry(stream_type=s.stream_type, elementary_pid=s.pid) for s in self.streams),
        )
        object.__setattr__(self, "psi", psi)
        object.__setattr__(self, "headers", {pid: PidHeaders(pid=pid) for pid in pids})

    def stream(self, pid: int) -> ElementaryStream:
        for stream in self.streams:
            if stream.pid == pid:
                return stream
        raise ValueError(f"PID {pid} is not in the program")


class _Latest(NamedTuple):
    """Where a PID's latest PES sits in the muxer's lists (its packet count may still grow)."""

    first_header: int  # index of its first packet header
    end_header: int
    first_body: int  # index of its first body part (the first packet's adaptation field, if any)
    pes_body: int  # index of the PES header among the body parts
    end_body: int
    first_cc: int  # packets of the PID before it
    pcr_base: int | None
    random_access: bool
    pes: bytes | None  # the whole PES when its bodies are not just [header, *payload] (two heads)


class SegmentMuxer:
    """Makes one segment's transport stream; ``start``/``end`` bound its decode times (90 kHz)."""

    def __init__(
        self,
        program: Program,
        *,
        start: int,
        end: int,
        psi_period: int = PSI_PERIOD,
        pcr_delay: int = PCR_DELAY,
    ) -> None:
        self.program = program
        self._stream_ids = {stream.pid: stream.stream_id for stream in program.streams}
        self._pcr_delay = pcr_delay
        self._psi_period = psi_period
        self._psi_next = -(-start // psi_period)  # grid index of the next PAT/PMT pair
        self._psi_end = max(-(-end // psi_period), self._psi_next + 1)
        self._psi_due = 0  # decode time that lets the next pair out
        self._headers: list[bytes] = []  # 4-byte packet headers
        self._bodies: list[Buffer] = []  # their bodies, concatenated: 184 bytes a packet
        self._sent: dict[int, int] = dict.fromkeys(program.headers, 0)  # payload packets per PID
        self._latest: dict[int, _Latest] = {}
        self._pcr_only: list[int] = []  # headers of PCR-only packets after the PCR_PID's latest PES
        self._last_pcr: int | None = None
        self._flushed = False
        self._queue_psi()

    def push(self, pid: int, *, pts: int, dts: int, random_access: bool, payload: Sequence[Buffer]) -> None:
        """One PES: ``payload`` (parts, concatenated) with 90 kHz ``pts``/``dts``, in decode order."""
        if self._flushed:
            raise ValueError("the segment was flushed")
        stream_id = self._stream_ids.get(pid)
        if stream_id is None:
            raise ValueError(f"PID {pid} is not in the program")
        while dts >= self._psi_due and self._psi_next < self._psi_end:
            self._queue_psi()
        pcr_base = self._pcr(pid, dts)
        payload_length = sum(map(len, payload))
        header = pes_header(stream_id, pts=pts, dts=dts, payload_length=payload_length)
        length = len(header) + payload_length
        reserved = _RESERVED_PCR if pcr_base is not None else _RESERVED_RAI if random_access else 0
        count = -(-(length + reserved) // BODY_SIZE)
        first = length - BODY_SIZE * (count - 1)  # the first packet's payload; the others are full
        whole: bytes | None = None
        headers, bodies, cc = self._headers, self._bodies, self._sent[pid]
        first_header, first_body = len(headers), len(bodies)
        if first >= len(header):  # the usual case: a short first packet, then full ones
            pid_headers = self.program.headers[pid]
            if first < BODY_SIZE:
                headers.append(pid_headers.start_adapted[cc & 0x0F])
                bodies.append(
                    adaptation_field(BODY_SIZE - first, pcr_base=pcr_base, random_access=random_access)
                )
            else:
                headers.append(pid_headers.start[cc & 0x0F])
            headers += pid_headers.run(cc + 1, count - 1)
            pes_body = len(bodies)
            bodies.append(header)
            bodies += payload
        else:  # the PES header would straddle two packets: fill the first one instead
            pes_body = first_body
            whole = b"".join([header, *payload])
            self._lay_out(
                pid, whole, count=count, first_cc=cc, pcr_base=pcr_base, random_access=random_access
            )
        self._sent[pid] = cc + count
        self._latest[pid] = _Latest(
            first_header,
            len(headers),
            first_body,
            pes_body,
            len(bodies),
            cc,
            pcr_base,
            random_access,
            whole,
        )

    def pull(self) -> bytes:
        """The packets complete so far: everything before the oldest of the PIDs' latest PES."""
        latest = self._latest.values()
        headers = min((entry.first_header for entry in latest), default=len(self._headers))
        bodies = min((entry.first_body for entry in latest), default=len(self._bodies))
        data = assemble(self._headers[:headers], self._bodies[:bodies]) if headers else b""
        del self._headers[:headers], self._bodies[:bodies]
        self._latest = {
            pid: entry._replace(
                first_header=entry.first_header - headers,
                end_header=entry.end_header - headers,
                first_body=entry.first_body - bodies,
                pes_body=entry.pes_body - bodies,
                end_body=entry.end_body - bodies,
            )
            for pid, entry in self._latest.items()
        }
        self._pcr_only = [index - headers for index in self._pcr_only]
        return data

    def flush(self) -> bytes:
        """The rest of the segment: each PID's latest PES spread so that the PID ends the segment on
        continuity_counter 15, then the PAT/PMT pairs still due."""
        if not self._flushed:
            self._flushed = True
            self._pad()
            while self._psi_next < self._psi_end:
                self._queue_psi()
        data = assemble(self._headers, self._bodies) if self._headers else b""
        self._headers, self._bodies = [], []
        return data

    # --------------------------------------------------------------------------------------------

    def _queue_psi(self) -> None:
        psi = self.program.psi
        cc = self._psi_next & 0x0F
        self._headers += psi.headers[cc]
        self._bodies.append(psi.bodies[cc])
        self._psi_next += 1
        self._psi_due = self._psi_next * self._psi_period

    def _pcr(self, pid: int, dts: int) -> int | None:
        """The PCR the PES should carry (PCR_PID), after queueing a PCR-only packet if one is due."""
        program = self.program
        last = self._last_pcr
        clock = dts - self._pcr_delay if last is None else max(dts - self._pcr_delay, last)
        if pid == program.pcr_pid:
            self._last_pcr = clock
            self._pcr_only = []
            return clock
        if last is None or clock - last >= MAX_PCR_INTERVAL:
            self._last_pcr = clock
            cc = (self._sent[program.pcr_pid] - 1) & 0x0F  # adaptation-only: the counter does not advance
            self._pcr_only.append(len(self._headers))
            self._headers.append(program.headers[program.pcr_pid].adaptation_only[cc])
            self._bodies.append(adaptation_field(BODY_SIZE, pcr_base=clock))
        return None

    def _pad(self) -> None:
        """Re-lay each PID's latest PES over up to 15 more packets, so the PID's count is a multiple of 16."""
        extra = {pid: -self._sent[pid] % 16 for pid in self._latest}
        pcr_latest = self._latest.get(self.program.pcr_pid)
        if pcr_latest is not None:  # PCR-only packets after it repeat its (new) last counter
            cc = (self._sent[self.program.pcr_pid] + extra[self.program.pcr_pid] - 1) & 0x0F
            for index in self._pcr_only:
                self._headers[index] = self.program.headers[self.program.pcr_pid].adaptation_only[cc]
        for pid, entry in sorted(self._latest.items(), key=lambda item: -item[1].first_header):
            if not extra[pid]:
                continue
            pes = entry.pes or b"".join(self._bodies[entry.pes_body : entry.end_body])
            count = entry.end_header - entry.first_header + extra[pid]
            if len(pes) < count:  # a PES of a few bytes: give each packet a byte of header stuffing
                pes = stuff_header(pes, count - len(pes))
            tail_headers, tail_bodies = self._headers[entry.end_header :], self._bodies[entry.end_body :]
            del self._headers[entry.first_header :], self._bodies[entry.first_body :]
            self._lay_out(
                pid,
                pes,
                count=count,
                first_cc=entry.first_cc,
                pcr_base=entry.pcr_base,
                random_access=entry.random_access,
            )
            self._headers += tail_headers
            self._bodies += tail_bodies
            self._sent[pid] += extra[pid]
        self._latest.clear()

    def _lay_out(
        self, pid: int, pes: bytes, *, count: int, first_cc: int, pcr_base: int | None, random_access: bool
    ) -> None:
        """Append the packets of ``pes`` spread over exactly ``count`` packets (the general layout)."""
        reserved = adaptation_field_minimum(pcr=pcr_base is not None, random_access=random_access)
        heads, tail = payload_layout(len(pes), count, reserved, first_minimum=9 + pes[8])  # PES header
        pid_headers = self.program.headers[pid]
        headers, bodies = self._headers, self._bodies
        position = 0
        for index, size in enumerate(heads):
            cc = (first_cc + index) & 0x0F
            if index == 0:
                field_bytes = b"" if size == BODY_SIZE else adaptation_field(
                    BODY_SIZE - size, pcr_base=pcr_base, random_access=random_access
                )  # fmt: skip
                headers.append((pid_headers.start_adapted if field_bytes else pid_headers.start)[cc])
            else:
                field_bytes = b"" if size == BODY_SIZE else stuffing_field(BODY_SIZE - size)
                headers.append((pid_headers.adapted if field_bytes else pid_headers.payload)[cc])
            bodies.append(field_bytes)
            bodies.append(pes[position : position + size])
            position += size
        headers += pid_headers.run(first_cc + len(heads), tail)
        bodies.append(pes[position:])
