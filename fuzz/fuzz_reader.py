"""Fuzz the CMAF reader: any bytes, fed in a split the fuzzer picks, raise nothing but MediaError.

    pip install atheris
    python fuzz/fuzz_reader.py -runs=20000            # seeds a corpus with valid streams
    python fuzz/fuzz_reader.py -runs=20000 my_corpus/  # or libFuzzer flags and corpus dirs as usual

Input layout: byte 0 picks ``max_box_bytes``, byte 1 seeds the chunk sizes, the rest is the stream.
Any exception other than MediaError, or buffering more than ``max_box_bytes`` + 16, is a crash.
``one_input`` needs no atheris, so the tests run it too.
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make the repository importable
    sys.path.insert(0, str(ROOT))

from services.shared.media.errors import MediaError  # noqa: E402
from services.shared.media.reader import CmafReader  # noqa: E402
from services.shared.media.synthetic import audio_entry, make_fragment, make_header, make_stream  # noqa: E402

LIMITS = (64, 1024, 4096, 65536, 64 * 1024 * 1024)
STEPS = (1, 2, 3, 7, 8, 15, 16, 100, 188, 1000, 4096)
HEADER_SLACK = 16


def one_input(data: bytes) -> None:
    """Feed ``data[2:]`` to a reader in chunks chosen by ``data[1]``, with a limit chosen by ``data[0]``."""
    if len(data) < 2:
        return
    limit = LIMITS[data[0] % len(LIMITS)]
    steps = random.Random(data[1])
    stream = data[2:]
    reader = CmafReader(max_box_bytes=limit)
    try:
        pos = 0
        while pos < len(stream):
            step = steps.choice(STEPS)
            reader.feed(stream[pos : pos + step])
            pos += step
            if reader.buffered_bytes > limit + HEADER_SLACK:
                raise AssertionError(f"buffered {reader.buffered_bytes} bytes over a limit of {limit}")
        reader.close()
    except MediaError:
        pass


def seeds() -> list[bytes]:
    """Valid streams to start from: video and audio headers with fragments, styp and prft."""
    audio = make_header(handler="soun", entry=audio_entry())
    return [
        b"\x04\x00" + make_stream(fragments=2),
        b"\x04\x05" + make_stream(fragments=1, samples=5),
        b"\x02\x01" + audio + make_fragment(sample_durations=(1024,) * 4, brands=("msdh", "lmsg")),
        b"\x04\x02" + make_header() + make_fragment(prft_wallclock_ms=1_700_000_000_000, brands=("cmfs",)),
    ]


def _seed_corpus() -> str:
    directory = Path(tempfile.mkdtemp(prefix="fuzz_reader_"))
    for number, seed in enumerate(seeds()):
        (directory / f"seed{number}").write_bytes(seed)
    return str(directory)


def main() -> None:
    import atheris  # noqa: PLC0415 - only the fuzzer needs it; tests import this file

    atheris.instrument_all()
    argv = list(sys.argv)
    if not any(not arg.startswith("-") for arg in argv[1:]):
        argv.append(_seed_corpus())
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
