"""The parsers that read outside input, fed random and mutated input: only their own error.

- the OR-Library job-shop text format (``services.scheduling.domain.orlib``): FormatError;
- camera images (``services.quality.domain.inspection.images.decode_gray``): an
  InvalidArgument naming the field, before any oversized pixel buffer exists;
- the readings CSV of ``mfg maintenance ingest``: exit code 2 naming the line (click's
  BadParameter); a file read whole goes on to the (here unreachable) suite.

Anything else raised is a bug, and so is an input taking longer than DEADLINE (a hang).
Inputs are random text and bytes, plus well-formed inputs with a few bytes changed,
dropped or added, which get past the first checks. The number of inputs tried is
printed (-s).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manufacturing_sdk.cli.main import cli
from manufacturing_sdk.errors import UnavailableError

from services.quality.domain.inspection.images import decode_gray
from services.runtime.errors import InvalidArgument
from services.scheduling.domain.orlib import FormatError, parse_orlib

EXAMPLES = 400
DEADLINE = timedelta(seconds=2)
MAX_PIXELS = 256 * 256
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=DEADLINE,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
tried: Counter[str] = Counter()
E = TypeVar("E", bound=Exception)
T = TypeVar("T")


@pytest.fixture(scope="module", autouse=True)
def report_inputs_tried() -> Iterator[None]:
    yield
    print(f"\nfuzzed parser inputs: {sum(tried.values())} ({dict(tried)})")


def outcome(
    refusal: type[E], parse: Callable[..., T], *args: Any, **kwargs: Any
) -> tuple[Any, E | None]:
    """``(result, None)``, or ``(None, error)`` when ``parse`` raised the documented
    ``refusal``; any other exception propagates and fails the test."""
    try:
        return parse(*args, **kwargs), None
    except refusal as error:
        return None, error


@st.composite
def mutated(draw: st.DrawFn, seeds: st.SearchStrategy[bytes]) -> bytes:
    """A well-formed input with a few bytes replaced, removed or inserted."""
    data = bytearray(draw(seeds))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(("replace", "delete", "insert")))
        if action == "insert" or position == len(data):
            data[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif action == "replace":
            data[position] = draw(st.integers(0, 255))
        else:
            del data[position]
    return bytes(data)


# --- OR-Library job-shop text --------------------------------------------------------

ORLIB = b"""# a 3x3 instance
3 3
0 3 1 2 2 2
0 2 2 1 1 4
1 4 2 3 0 1
"""
orlib_tokens = st.sampled_from(["0", "1", "2", "3", "-1", "99999999999999999999", "x", "#", " "])
orlib_lines = st.lists(st.lists(orlib_tokens, max_size=8).map(" ".join), max_size=8).map("\n".join)


def as_text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


@fuzz
@given(st.one_of(st.text(), orlib_lines, mutated(st.just(ORLIB)).map(as_text)))
def test_orlib_parser_raises_only_format_error(text: str) -> None:
    tried["orlib"] += 1
    problem, refused = outcome(FormatError, parse_orlib, text)
    if refused is None:
        assert problem.jobs and problem.machines


# --- images ----------------------------------------------------------------------------


def _encoded(extension: str, side: int = 24) -> bytes:
    pixels = (np.arange(side * side, dtype=np.uint32) * 7 % 256).astype(np.uint8)
    ok, encoded = cv2.imencode(extension, pixels.reshape(side, side))
    assert ok
    return bytes(encoded)


IMAGES = [_encoded(".png"), _encoded(".jpg"), _encoded(".bmp")]
# Headers claiming far more pixels than allowed (decompression bombs).
BOMBS = [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x00\x00\x00\x01\x00\x00" + bytes(40),
    b"BM"
    + bytes(16)
    + (100_000).to_bytes(4, "little")
    + (-100_000).to_bytes(4, "little", signed=True),
]


@fuzz
@given(
    st.one_of(
        st.binary(max_size=512),
        st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"BM"]).flatmap(
            lambda magic: st.binary(max_size=256).map(lambda rest: magic + rest)
        ),
        mutated(st.sampled_from(IMAGES + BOMBS)),
    )
)
def test_image_decoding_raises_only_invalid_argument(data: bytes) -> None:
    tried["image"] += 1
    pixels, refused = outcome(InvalidArgument, decode_gray, data, "image", max_pixels=MAX_PIXELS)
    if refused is not None:
        assert [v.field for v in refused.violations] == ["image"]
    else:
        assert pixels.dtype == np.uint8 and pixels.ndim == 2
        assert pixels.size <= MAX_PIXELS


# --- readings CSV (mfg maintenance ingest) ---------------------------------------------

CSV = b"""machine_id,sensor,time,value
press-7,spindle_temp,2026-01-05T08:00:00Z,61.5
press-7,vibration,2026-01-05T08:00:01+00:00,0.42
"""
csv_cells = st.sampled_from(
    ["press-7", "", "nan", "1e309", "-0", "2026-01-05T08:00:00Z", "2026-13-40", '"', ",", "\x00"]
)
csv_text = st.lists(st.lists(csv_cells, max_size=6).map(",".join), max_size=6).map(
    lambda rows: "machine_id,sensor,time,value\n" + "\n".join(rows)
)


@fuzz
@given(st.one_of(st.binary(max_size=512), csv_text.map(str.encode), mutated(st.just(CSV))))
def test_readings_csv_is_refused_as_bad_input_or_sent(data: bytes) -> None:
    tried["csv"] += 1
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "readings.csv"
        path.write_bytes(data)
        # Port 1 refuses at once: a file that parses whole ends UNAVAILABLE, not sent.
        result = CliRunner().invoke(
            cli, ["--target", "127.0.0.1:1", "maintenance", "ingest", str(path)]
        )
    if result.exit_code == 2:
        assert "readings.csv line " in result.output, result.output
    else:
        assert isinstance(result.exception, UnavailableError), result.exception
