"""GeoReport v2 answers and errors, in JSON or XML: what every route of the hotline sends back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from fastapi.responses import Response

FORMATS = ("json", "xml")
XML_ITEMS = {"attributes": "attribute", "values": "value"}
CLOSE = {"Connection": "close"}  # an error answer after which the connection is closed


class HttpError(Exception):
    """An answer other than 200, raised by a route: sent as GeoReport's list of ``{code, description}``."""

    def __init__(self, status: int, *descriptions: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(descriptions[0])
        self.status = status
        self.descriptions = descriptions
        self.headers = headers or {}


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _xml_put(parent: ET.Element, tag: str, value: Any) -> None:
    element = ET.SubElement(parent, tag)
    if isinstance(value, list):
        for item in value:
            _xml_put(element, XML_ITEMS.get(tag, "item"), item)
    elif isinstance(value, dict):
        for key, sub in value.items():
            _xml_put(element, key, sub)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = str(value)


def to_xml(root: str, item: str | None, body: Any) -> bytes:
    """GeoReport XML: a list under ``<root>`` as ``<item>`` elements, or one object as ``<root>``'s children.

    >>> to_xml("errors", "error", [{"code": 404, "description": "not found"}]).decode().splitlines()[1]
    '<errors><error><code>404</code><description>not found</description></error></errors>'
    """
    element = ET.Element(root)
    for entry in body if item else [body]:
        target = ET.SubElement(element, item) if item else element
        for key, value in entry.items():
            _xml_put(target, key, value)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, encoding="unicode").encode()


def answer(
    fmt: str, status: int, root: str, item: str | None, body: Any, headers: dict[str, str] | None = None
) -> Response:
    """A GeoReport answer in ``fmt`` (json or xml)."""
    if fmt == "xml":
        return Response(to_xml(root, item, body), status, headers, "text/xml; charset=utf-8")
    return Response(json.dumps(body).encode(), status, headers, "application/json; charset=utf-8")


def errors(fmt: str, status: int, descriptions: tuple[str, ...], headers: dict[str, str] | None = None) -> Response:
    return answer(fmt, status, "errors", "error", [{"code": status, "description": d} for d in descriptions], headers)
