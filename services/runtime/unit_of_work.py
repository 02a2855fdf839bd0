"""Hands a handler a repository bound to one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TypeVar

from sqlalchemy.orm import Session, sessionmaker

from services.runtime.db import transaction

Repository = TypeVar("Repository")


def repository_scope(
    sessions: sessionmaker[Session], repository: Callable[[Session], Repository]
) -> Callable[[], AbstractContextManager[Repository]]:
    """A factory of units of work: ``with scope() as repo:`` commits when the block
    succeeds and rolls back when it raises."""

    @contextmanager
    def scope() -> Iterator[Repository]:
        with transaction(sessions) as session:
            yield repository(session)

    return scope
