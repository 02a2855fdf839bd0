"""Reading requests from JSON, YAML or CSV, and printing replies as tables or JSON."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from google.protobuf import json_format
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

M = TypeVar("M", bound=Message)
console = Console()


def load_document(source: str) -> Any:
    """A JSON or YAML document from a file path, ``-`` for stdin, or inline text."""
    if source == "-":
        text = sys.stdin.read()
    elif is_file(source):
        text = Path(source).read_text(encoding="utf-8")
    else:
        text = source
    try:
        return yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as error:
        raise click.BadParameter(f"not JSON or YAML: {error}") from error


def is_file(source: str) -> bool:
    """Whether ``source`` names a file; inline JSON too long for a path is not one."""
    try:
        return Path(source).is_file()
    except OSError:
        return False


def parse_message(document: Any, message_type: type[M]) -> M:
    if not isinstance(document, Mapping):
        raise click.BadParameter(f"expected an object for {message_type.DESCRIPTOR.name}")
    try:
        return json_format.ParseDict(document, message_type())
    except json_format.ParseError as error:
        raise click.BadParameter(str(error)) from error


def as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def print_json(message: Message) -> None:
    click.echo(json.dumps(as_dict(message), indent=2))


def print_json_line(message: Message) -> None:
    """One reply of a stream: one line each, so scripts can read them as they come."""
    click.echo(json.dumps(as_dict(message)))


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(value) for value in row))
    console.print(table)


def csv_rows(path: Path) -> Iterator[dict[str, str]]:
    """The rows of a UTF-8 CSV file; BadParameter naming the line that cannot be read."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        try:
            yield from reader
        except (UnicodeDecodeError, csv.Error) as error:
            where = f"{path.name} line {reader.line_num + 1}"
            raise click.BadParameter(f"{where}: not a UTF-8 CSV file ({error})") from error


def parse_time(text: str, where: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise click.BadParameter(f"{where}: {text!r} is not an ISO 8601 time") from error
    if moment.tzinfo is None:
        raise click.BadParameter(f"{where}: {text!r} has no time zone (add Z or +00:00)")
    return moment
