"""The fuzz target runs without atheris: its seeds and some hostile inputs pass through one_input."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from types import ModuleType

import pytest

from services.shared.media.reader import CmafReader

FUZZ_SCRIPT = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_reader.py"


@pytest.fixture(scope="module")
def fuzz_reader() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_reader", FUZZ_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_seeds_are_valid_streams(fuzz_reader: ModuleType) -> None:
    for seed in fuzz_reader.seeds():
        reader = CmafReader()
        assert reader.feed(seed[2:])
        reader.close()
        fuzz_reader.one_input(seed)


def test_hostile_inputs(fuzz_reader: ModuleType) -> None:
    rng = random.Random(7)
    for seed in fuzz_reader.seeds():
        for _ in range(50):
            mutated = bytearray(seed)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            fuzz_reader.one_input(bytes(mutated))
            fuzz_reader.one_input(bytes(mutated[: rng.randrange(len(mutated))]))
    fuzz_reader.one_input(b"")
    fuzz_reader.one_input(bytes(range(256)))
