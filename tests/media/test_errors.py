from __future__ import annotations

import pickle

import pytest

from services.shared.errors import HeadwaterError
from services.shared.media.errors import (
    BoxTooLarge,
    MalformedBox,
    MediaError,
    MissingHeader,
    NotIsoBmff,
    TimelineError,
    Truncated,
    UnsupportedCodec,
)


@pytest.mark.parametrize(
    "error",
    [
        MalformedBox("tfhd", "track_id", "unknown track"),
        Truncated("trun", "sample_count", "cut"),
        BoxTooLarge("mdat", 10, 5),
        NotIsoBmff("MPEG-TS"),
        UnsupportedCodec("vp09"),
        MissingHeader("no header"),
        TimelineError("tfdt went backwards"),
    ],
)
def test_every_error_is_a_media_error_and_survives_pickling(error: MediaError) -> None:
    assert isinstance(error, MediaError)
    assert isinstance(error, HeadwaterError)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)


def test_malformed_box_names_box_and_field() -> None:
    error = Truncated("trun", "sample_count", "3 samples need 36 bytes")
    assert isinstance(error, MalformedBox)
    assert (error.box_type, error.field) == ("trun", "sample_count")
    assert str(error) == "trun.sample_count: 3 samples need 36 bytes"


def test_box_too_large_and_unsupported_codec_carry_their_facts() -> None:
    assert BoxTooLarge("mdat", 100, 10).size == 100
    error = UnsupportedCodec("vp09")
    assert error.fourcc == "vp09"
    assert "vp09" in str(error)
