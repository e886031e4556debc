import pytest

from workers import Headers


def test_names_are_case_insensitive():
    headers = Headers({"Content-Type": "text/html"})
    assert headers.get("content-type") == "text/html"
    assert headers["CONTENT-TYPE"] == "text/html"
    assert "Content-type" in headers
    assert headers.has("CONTENT-type")


def test_repeated_values_are_folded_with_commas_as_the_fetch_standard_combines_them():
    headers = Headers([("Accept", "text/html"), ("accept", "application/json")])
    assert headers.get("accept") == "text/html, application/json"
    assert headers["accept"] == "text/html, application/json"
    assert headers.get_all("ACCEPT") == ["text/html, application/json"]
    assert headers.items() == [("accept", "text/html, application/json")]


def test_set_cookie_values_stay_separate_entries():
    headers = Headers([("Set-Cookie", "a=1"), ("x", "1"), ("set-cookie", "b=2")])
    # As http.client.HTTPMessage: get and [] give the first, get_all every one.
    assert headers.get("set-cookie") == "a=1"
    assert headers["set-cookie"] == "a=1"
    assert headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert headers.get_set_cookie() == ["a=1", "b=2"]
    assert headers.items() == [("set-cookie", "a=1"), ("x", "1"), ("set-cookie", "b=2")]
    assert len(headers) == 3


def test_missing_name_reads_as_none_as_cloudflares_httpmessage():
    headers = Headers()
    assert headers.get("x-missing") is None
    assert headers.get("x-missing", "fallback") == "fallback"
    assert headers["x-missing"] is None
    assert headers.get_all("x-missing") is None
    assert headers.get_all("x-missing", []) == []
    assert headers.getlist("x-missing") == []
    assert "x-missing" not in headers


def test_set_replaces_every_value_and_append_adds_one():
    headers = Headers([("set-cookie", "a=1"), ("x", "1"), ("Set-Cookie", "b=2")])
    headers.append("set-cookie", "c=3")
    assert headers.get_all("set-cookie") == ["a=1", "b=2", "c=3"]
    headers.set("Set-Cookie", "only=1")
    assert headers.get_all("set-cookie") == ["only=1"]
    assert headers.items() == [("set-cookie", "only=1"), ("x", "1")]
    headers["x"] = 2
    assert headers["x"] == "2"
    headers.append("x", "3")
    assert headers.get_all("x") == ["2, 3"]


def test_delete_and_delitem_of_a_missing_name_do_nothing():
    headers = Headers({"a": "1", "b": "2"})
    headers.delete("A")
    assert "a" not in headers
    del headers["B"]
    assert len(headers) == 0
    del headers["b"]
    assert len(headers) == 0


def test_views_iteration_and_len_work_on_entries_in_order():
    headers = Headers([("X-One", "1"), ("x-two", "2"), ("X-ONE", "3")])
    assert headers.items() == [("x-one", "1, 3"), ("x-two", "2")]
    assert headers.keys() == ["x-one", "x-two"]
    assert headers.values() == ["1, 3", "2"]
    assert list(headers) == ["x-one", "x-two"]
    assert len(headers) == 2


def test_construct_from_headers_copies():
    original = Headers({"a": "1"})
    copy = Headers(original)
    copy.set("a", "2")
    assert original["a"] == "1"
    assert copy["a"] == "2"
    assert Headers(original) == original


def test_bytes_names_and_values_are_latin1_decoded_and_values_trimmed():
    headers = Headers([(b"X-Bin", b"caf\xe9"), ("x-pad", "  v  ")])
    assert headers["x-bin"] == "café"
    assert headers["x-pad"] == "v"


@pytest.mark.parametrize("value", ["a\r\nInjected: 1", "a\nb", "a\x00b"])
def test_values_with_line_breaks_or_nul_are_rejected(value):
    with pytest.raises(ValueError):
        Headers({"x": value})


@pytest.mark.parametrize("name", ["bad name", "x:y", "", "é"])
def test_invalid_names_are_rejected(name):
    with pytest.raises(ValueError):
        Headers().set(name, "v")
    assert name not in Headers()


def test_non_latin1_value_is_rejected_with_advice():
    with pytest.raises(ValueError, match="Latin-1"):
        Headers({"x": "emoji \U0001f600"})


def test_bad_init_items_are_a_type_error():
    with pytest.raises(TypeError):
        Headers(["not-a-pair"])


def test_a_name_with_a_trailing_newline_is_refused():
    # As the instance's C decoder (thaw_http_token) refuses it: "$" matches before a final "\n".
    with pytest.raises(ValueError):
        Headers().append("x-a\n", "v")
