"""services.mailboxes._read_ahead: the next provider page is read while this one is applied."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from services.mailboxes import _read_ahead

WAIT = 5.0  # seconds; a reader that never reads ahead makes the first test fail after this


def test_the_next_item_is_read_while_the_caller_works_on_this_one() -> None:
    second_read = threading.Event()

    def pages() -> Iterator[int]:
        yield 1
        second_read.set()
        yield 2

    seen = []
    for page in _read_ahead(pages()):
        if page == 1:
            # Still working on the first page: the second is being read meanwhile.
            assert second_read.wait(WAIT)
        seen.append(page)
    assert seen == [1, 2]


def test_only_one_item_is_read_ahead() -> None:
    read: list[int] = []
    third_read = threading.Event()

    def pages() -> Iterator[int]:
        for number in range(1, 6):
            read.append(number)
            if number == 3:
                third_read.set()
            yield number

    reader = _read_ahead(pages())
    assert next(reader) == 1
    # Page 1 is with the caller, page 2 waits in the hand-over; page 3 is read but not handed.
    assert third_read.wait(WAIT)
    assert read == [1, 2, 3]
    assert list(reader) == [2, 3, 4, 5]


def test_an_error_while_reading_reaches_the_caller_after_the_pages_before_it() -> None:
    class Expired(Exception):
        pass

    def pages() -> Iterator[int]:
        yield 1
        raise Expired("delta link expired")

    reader = _read_ahead(pages())
    assert next(reader) == 1
    with pytest.raises(Expired, match="delta link expired"):
        next(reader)


def test_leaving_early_stops_the_reader() -> None:
    read: list[int] = []

    def pages() -> Iterator[int]:
        for number in range(1000):
            read.append(number)
            yield number

    reader = _read_ahead(pages())
    assert next(reader) == 0
    reader.close()  # joins the reader thread
    assert len(read) <= 3  # the page handed over, the one waiting, the one under way
    assert not [t for t in threading.enumerate() if t.name == "sync-read-ahead"]
