"""The R2 SDK's handling of what a client sends (python/workers/_bindings.py)."""

import json

import pytest

from workers import Headers
from workers import _bindings


def only_if(headers):
    return json.loads(_bindings._only_if_json(Headers(headers)))


def test_a_clients_invalid_conditional_dates_are_ignored_not_raised():
    # RFC 9110 13.1.3/13.1.4: a recipient ignores an invalid HTTP-date in these headers.
    assert only_if({"if-modified-since": "yesterday"}) == {"secondsGranularity": True}
    assert only_if({"if-unmodified-since": "Mon, 99 Foo 2024 99:99:99 GMT",
                    "if-match": '"abc"'}) == {"secondsGranularity": True, "etagMatches": '"abc"'}
    assert only_if({"if-modified-since": ""}) == {"secondsGranularity": True}


def test_valid_conditional_dates_are_read_as_utc_milliseconds():
    got = only_if({"if-modified-since": "Sun, 06 Nov 1994 08:49:37 GMT",
                   "if-unmodified-since": "Sun, 06 Nov 1994 08:49:37 -0000"})
    assert got["uploadedAfter"] == 784111777000 and got["uploadedBefore"] == 784111777000


def test_an_invalid_expires_keeps_no_cache_expiry():
    meta = json.loads(_bindings._http_metadata_json(Headers({"expires": "0",
                                                             "content-type": "text/plain"})))
    assert "cacheExpiry" not in meta and meta["contentType"] == "text/plain"
    meta = json.loads(_bindings._http_metadata_json(
        Headers({"expires": "Sun, 06 Nov 1994 08:49:37 GMT"})))
    assert meta["cacheExpiry"] == 784111777000
