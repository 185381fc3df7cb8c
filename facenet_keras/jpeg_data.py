"""Is a JPEG's image data long enough for the size its header declares?

libjpeg (and so PIL) decodes a JPEG whose image data stops early but ends with an end-of-image
marker into a picture whose missing part is flat grey, without an error: a 689-byte file claiming
5000x5000 decodes as 25 megapixels of grey. This module reads the markers (no pixel is decoded)
and computes the fewest bytes the first scan can take: every 8x8 block costs at least its shortest
Huffman code(s), whatever the picture shows. Data shorter than that is a truncated file.
Arithmetic-coded and lossless JPEGs have no such bound and are not judged (None).
"""

from __future__ import annotations

import math
import re
import struct

__all__ = ["shortest_scan"]

# SOF markers of Huffman-coded DCT JPEGs: baseline, extended sequential, progressive.
_SEQUENTIAL, _PROGRESSIVE = {0xC0, 0xC1}, {0xC2}
# The shortest codes of the standard tables (JPEG Annex K), used when a file relies on them (MJPEG).
_STANDARD_SHORTEST = 2
# The end of an entropy-coded segment: a marker other than a stuffed 0xFF00 or a restart marker.
_SEGMENT_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def shortest_scan(data: bytes) -> tuple[int, int] | None:
    """(bytes of image data the first scan holds, the fewest it can hold for the declared size), or
    None when the file is not a Huffman-coded DCT JPEG or its markers cannot be read this far (PIL
    judges those)."""
    if data[:2] != b"\xff\xd8":
        return None
    pos, frame, shortest = 2, None, {}
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        if len(body) != length - 2:
            return None
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if marker not in _SEQUENTIAL | _PROGRESSIVE:
                return None  # lossless or arithmetic coding: no bound
            frame = (marker, _frame(body))
        elif marker == 0xC4:
            shortest.update(_huffman_shortest(body))
        elif marker == 0xDA:
            if frame is None:
                return None
            end = pos + 2 + length
            found = _SEGMENT_END.search(data, end)
            held = (found.start() if found else len(data)) - end
            need = _fewest_bits(frame, body, shortest)
            return None if need is None else (held, math.ceil(need / 8))
        pos += 2 + length
    return None


def _frame(body: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(height, width, [(component id, h sampling, v sampling)]) of a SOF segment."""
    height, width, n = struct.unpack(">HHB", body[1:6])
    comps = [(body[6 + 3 * i], body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in range(n)]
    return height, width, comps


def _huffman_shortest(body: bytes) -> dict[tuple[int, int], int]:
    """{(class, id): length of its shortest code} for each table of a DHT segment."""
    out, pos = {}, 0
    while pos + 17 <= len(body):
        cls, ident = body[pos] >> 4, body[pos] & 15
        counts = body[pos + 1 : pos + 17]
        out[(cls, ident)] = next((i + 1 for i, c in enumerate(counts) if c), 16)
        pos += 17 + sum(counts)
    return out


def _fewest_bits(frame, sos: bytes, shortest: dict[tuple[int, int], int]) -> int | None:
    """Fewest bits the scan ``sos`` describes: per block, the shortest DC code (and for a sequential
    scan one AC code: an end-of-block at least)."""
    marker, (height, width, comps) = frame
    if not comps or height == 0 or width == 0:
        return None
    n = sos[0]
    selectors = [(sos[1 + 2 * i], sos[2 + 2 * i] >> 4, sos[2 + 2 * i] & 15) for i in range(n)]
    ss, se, approx = sos[1 + 2 * n], sos[2 + 2 * n], sos[3 + 2 * n]
    if ss != 0 or approx >> 4 != 0:
        return None  # not a first DC scan: no simple bound
    hmax, vmax = max(c[1] for c in comps), max(c[2] for c in comps)
    sampling = {c[0]: (c[1], c[2]) for c in comps}
    bits = 0
    for ident, dc, ac in selectors:
        if ident not in sampling:
            return None
        h, v = sampling[ident]
        if n == 1:  # non-interleaved: the component's own blocks
            blocks = math.ceil(math.ceil(width * h / hmax) / 8) * math.ceil(math.ceil(height * v / vmax) / 8)
        else:  # interleaved: h x v blocks of it in every MCU
            blocks = math.ceil(width / (8 * hmax)) * math.ceil(height / (8 * vmax)) * h * v
        per_block = shortest.get((0, dc), _STANDARD_SHORTEST)
        if marker in _SEQUENTIAL and se > 0:
            per_block += shortest.get((1, ac), _STANDARD_SHORTEST)
        bits += blocks * per_block
    return bits
