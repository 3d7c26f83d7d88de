"""The DASH manifest an encoder posts first (DASH-IF ingest Interface 1, per-segment mode).

Pure: ``parse_ingest_manifest`` turns MPD text into per-representation URL patterns, and
``IngestManifest.track_for`` tells which representation a later request path belongs to.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from services.ingest.errors import BadManifest

_NS = "{urn:mpeg:dash:schema:mpd:2011}"
_IDENTIFIER = re.compile(r"\$(RepresentationID|Number|Time|Bandwidth|SubNumber)(%0\d+d)?\$|\$\$")


@dataclass(frozen=True, slots=True, kw_only=True)
class RepresentationPattern:
    representation_id: str
    initialization: re.Pattern[str] | None
    media: re.Pattern[str] | None
    initialization_path: str | None  # the init URL path itself, when it names only the representation


@dataclass(frozen=True, slots=True, kw_only=True)
class IngestManifest:
    representations: tuple[RepresentationPattern, ...]

    def representation(self, representation_id: str) -> RepresentationPattern | None:
        return next((r for r in self.representations if r.representation_id == representation_id), None)

    def track_for(self, path: str) -> str | None:
        """The representation id whose SegmentTemplate matches ``path`` (relative to the MPD)."""
        name = path.rsplit("/", 1)[-1]
        for rep in self.representations:
            for pattern in (rep.initialization, rep.media):
                if pattern is not None and (pattern.fullmatch(path) or pattern.fullmatch(name)):
                    return rep.representation_id
        return None


def _template_regex(template: str, representation_id: str) -> re.Pattern[str]:
    out: list[str] = []
    pos = 0
    for match in _IDENTIFIER.finditer(template):
        out.append(re.escape(template[pos : match.start()]))
        ident = match.group(1)
        if ident is None:
            out.append(re.escape("$"))
        elif ident == "RepresentationID":
            out.append(re.escape(representation_id))
        else:
            out.append(r"\d+")
        pos = match.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


def _inherited_template(*elements: ET.Element) -> dict[str, str]:
    """SegmentTemplate attributes, the innermost element's winning (Period < AdaptationSet < Rep)."""
    merged: dict[str, str] = {}
    for element in elements:
        template = element.find(f"{_NS}SegmentTemplate")
        if template is not None:
            merged.update(template.attrib)
    return merged


def parse_ingest_manifest(text: bytes) -> IngestManifest:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise BadManifest(f"MPD is not well-formed XML: {exc}") from exc
    if root.tag != f"{_NS}MPD":
        raise BadManifest(f"root element is {root.tag!r}, not MPD")
    reps: list[RepresentationPattern] = []
    for period in root.iter(f"{_NS}Period"):
        for aset in period.iter(f"{_NS}AdaptationSet"):
            for rep in aset.iter(f"{_NS}Representation"):
                rep_id = rep.get("id")
                if not rep_id:
                    raise BadManifest("Representation without @id")
                attrs = _inherited_template(period, aset, rep)
                init, media = attrs.get("initialization"), attrs.get("media")
                init_path = init.replace("$RepresentationID$", rep_id) if init else None
                reps.append(
                    RepresentationPattern(
                        representation_id=rep_id,
                        initialization=_template_regex(init, rep_id) if init else None,
                        media=_template_regex(media, rep_id) if media else None,
                        initialization_path=init_path if init_path and "$" not in init_path else None,
                    )
                )
    if not reps:
        raise BadManifest("MPD declares no Representation")
    return IngestManifest(representations=tuple(reps))
