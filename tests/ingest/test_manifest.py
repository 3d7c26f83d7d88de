import pytest

from services.ingest.errors import BadManifest
from services.ingest.manifest import parse_ingest_manifest
from services.ingest.service import track_from_path
from services.shared.errors import InvalidName

FFMPEG_MPD = b"""<?xml version="1.0" encoding="utf-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic">
 <Period id="0" start="PT0.0S">
  <AdaptationSet id="0" contentType="video">
   <Representation id="0" mimeType="video/mp4" codecs="avc1.64001f" bandwidth="3000000">
    <SegmentTemplate timescale="1000000" initialization="init-stream$RepresentationID$.m4s"
      media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="1"/>
   </Representation>
   <Representation id="1" mimeType="video/mp4" codecs="avc1.64001e" bandwidth="1800000">
    <SegmentTemplate timescale="1000000" initialization="init-stream$RepresentationID$.m4s"
      media="chunk-stream$RepresentationID$-$Number%05d$.m4s" startNumber="1"/>
   </Representation>
  </AdaptationSet>
  <AdaptationSet id="1" contentType="audio">
   <SegmentTemplate initialization="a/$RepresentationID$/init.mp4" media="a/$RepresentationID$/$Time$.m4s"/>
   <Representation id="aac" mimeType="audio/mp4" codecs="mp4a.40.2" bandwidth="128000"/>
  </AdaptationSet>
 </Period>
</MPD>"""


def test_ffmpeg_style_templates_match_their_representation() -> None:
    manifest = parse_ingest_manifest(FFMPEG_MPD)
    assert manifest.track_for("init-stream0.m4s") == "0"
    assert manifest.track_for("chunk-stream1-00042.m4s") == "1"
    assert manifest.track_for("a/aac/180000.m4s") == "aac"  # template inherited from AdaptationSet
    assert manifest.track_for("chunk-stream7-00001.m4s") is None


def test_track_naming_rules() -> None:
    manifest = parse_ingest_manifest(FFMPEG_MPD)
    assert track_from_path("Streams(video720.cmfv)", None) == "video720"
    assert track_from_path("live/Streams(audio128.cmfa)", manifest) == "audio128"
    assert track_from_path("chunk-stream0-00001.m4s", manifest) == "0"
    assert track_from_path("video/seg-17.m4s", None) == "video"
    assert track_from_path("audio.cmfa", None) == "audio"


@pytest.mark.parametrize("path", ["Streams(..)", "Streams(a/b)", "Streams(" + "x" * 129 + ")", "Streams()"])
def test_bad_track_names_are_refused(path: str) -> None:
    with pytest.raises(InvalidName):
        track_from_path(path, None)


@pytest.mark.parametrize("body", [b"not xml", b"<html/>", b'<MPD xmlns="urn:mpeg:dash:schema:mpd:2011"/>'])
def test_bad_manifests_are_refused(body: bytes) -> None:
    with pytest.raises(BadManifest):
        parse_ingest_manifest(body)
