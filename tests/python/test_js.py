"""The js module: Response, Headers, Object, JSON, console, fetch, Date, Error, URL."""

import http.server
import json
import math
import threading
import time

import pytest
from conftest import run

import js
import workers
from js import JSON, URL, Date, Headers, Object, Response, URLSearchParams, console
from pyodide.ffi import JsArray, JsException, JsObject, jsnull, to_js

# --------------------------------------------------------------------------- Response, Headers


def test_response_new_with_keyword_init_is_a_workers_response():
    headers = to_js({"x-kind": "js", "content-type": "text/html"},
                    dict_converter=Object.fromEntries)
    response = Response.new("<p>hi</p>", headers=headers, status=201)
    assert isinstance(response, workers.Response)
    assert response.status == 201 and response.statusText == "Created"
    assert response.headers.get("x-kind") == "js"
    assert response.headers.get("content-type") == "text/html"
    assert run(response.text()) == "<p>hi</p>"


def test_response_new_with_an_init_object_and_defaults():
    init = to_js({"status": 404, "statusText": "Nope", "headers": {"a": "1"}},
                 dict_converter=Object.fromEntries)
    response = Response.new("missing", init)
    assert (response.status, response.status_text) == (404, "Nope")
    assert response.headers.get("a") == "1"
    assert response.headers.get("content-type") == "text/plain;charset=UTF-8"
    plain = Response.new(b"\x00\x01")
    assert plain.status == 200 and run(plain.bytes()) == b"\x00\x01"
    assert Response.new(jsnull, status=204).status == 204


def test_response_new_rejects_bad_status_and_object_bodies_as_javascript_does():
    with pytest.raises(JsException) as caught:
        Response.new("x", status=99)
    assert caught.value.name == "RangeError"
    with pytest.raises(JsException, match="not a body"):
        Response.new(JSON.parse('{"a": 1}'))
    with pytest.raises(JsException, match="init"):
        Response.new("x", "not an object")


def test_response_json_static_and_await_json_on_an_instance():
    response = Response.json({"ok": True, "items": [1, 2]}, status=202)
    assert response.status == 202
    assert response.headers.get("content-type") == "application/json"
    assert run(response.text()) == '{"ok":true,"items":[1,2]}'
    parsed = run(Response.new('{"items": [1], "n": null}').json())
    assert isinstance(parsed, JsObject) and list(parsed.items) == [1] and parsed.n is jsnull
    assert parsed.to_py() == {"items": [1], "n": None}
    redirect = Response.redirect("https://example.com/", 301)
    assert redirect.status == 301 and redirect.headers.get("location") == "https://example.com/"


def test_headers_new_from_objects_dicts_and_pairs_iterate_as_the_web_does():
    from_object = Headers.new(to_js({"B": "2", "a": "1"}, dict_converter=Object.fromEntries))
    assert from_object.get("b") == "2" and from_object.has("A")
    assert from_object.get("missing") is None
    pairs = Headers.new([("x", "1"), ("x", "2"), ("set-cookie", "a=1"), ("set-cookie", "b=2")])
    assert [list(e) for e in pairs.entries()] == [
        ["set-cookie", "a=1"], ["set-cookie", "b=2"], ["x", "1, 2"]]
    assert list(pairs.keys()) == ["set-cookie", "set-cookie", "x"]
    assert list(pairs.getSetCookie()) == ["a=1", "b=2"]
    seen = []
    Headers.new({"k": "v"}).forEach(lambda value, name, _: seen.append((name, value)))
    assert seen == [("k", "v")]
    headers = Headers.new()
    headers.set("A", "1")
    headers.append("a", "2")
    headers.delete("nothing")
    assert headers.get("a") == "1, 2" and isinstance(headers, workers.Headers)


# --------------------------------------------------------------------------- Object


def test_object_from_entries_keys_values_entries_assign():
    obj = Object.fromEntries([["a", 1], ["b", 2]])
    assert isinstance(obj, JsObject) and obj.a == 1 and obj["b"] == 2
    assert list(Object.keys(obj)) == ["a", "b"]
    assert list(Object.values(obj)) == [1, 2]
    assert [list(e) for e in Object.entries(obj)] == [["a", 1], ["b", 2]]
    assert Object.fromEntries(to_js({"m": 1})).m == 1  # a Map is iterable of entries
    target = Object.new()
    assert Object.assign(target, obj, {"c": 3}, None) is target and target.c == 3
    assert Object.hasOwn(target, "a") and not Object.hasOwn(target, "z")
    assert list(Object.keys(["x", "y"])) == ["0", "1"]
    with pytest.raises(JsException, match="undefined or null"):
        Object.keys(None)
    with pytest.raises(JsException, match="not a \\[key, value\\] pair"):
        Object.fromEntries([1])
    with pytest.raises(NotImplementedError, match=r"js\.Object\.freeze"):
        Object.freeze(obj)


# --------------------------------------------------------------------------- JSON


def test_json_stringify_writes_what_javascript_writes():
    assert JSON.stringify({"a": 1.0, "b": [None, float("nan"), 1e-7, 1e21, 0.5]}) == \
        '{"a":1,"b":[null,null,1e-7,1e+21,0.5]}'
    assert JSON.stringify({"u": None, "s": "é\n\"", "t": True}) == '{"s":"é\\n\\"","t":true}'
    assert JSON.stringify(None) is None
    assert JSON.stringify("\ud800") == '"\\ud800"'
    assert JSON.stringify({"a": [1, {}], "b": []}, None, 2) == \
        '{\n  "a": [\n    1,\n    {}\n  ],\n  "b": []\n}'
    assert JSON.stringify({"a": 1, "b": 2, "c": 3}, ["c", "a"]) == '{"c":3,"a":1}'
    doubled = JSON.stringify({"a": 1, "b": "x"},
                             lambda key, value: value * 2 if isinstance(value, int) else value)
    assert doubled == '{"a":2,"b":"x"}'
    assert JSON.stringify({"when": Date.new(0)}) == '{"when":"1970-01-01T00:00:00.000Z"}'
    assert JSON.stringify(URL.new("https://a.example/x")) == '"https://a.example/x"'
    assert JSON.stringify(Headers.new({"a": "1"})) == "{}"


def test_json_stringify_refuses_cycles_and_python_objects():
    cyclic = {}
    cyclic["self"] = cyclic
    with pytest.raises(JsException, match="circular"):
        JSON.stringify(cyclic)
    with pytest.raises(JsException, match="Python set"):
        JSON.stringify({1, 2})


def test_json_parse_gives_javascript_values():
    value = JSON.parse(' {"a": [1, 2.5, 3.0, null, true], "b": {"c": "d"}, "a2": 1e400} ')
    assert isinstance(value, JsObject) and isinstance(value.a, JsArray)
    assert list(value.a) == [1, 2.5, 3, jsnull, True] and type(value.a[2]) is int
    assert value.b.c == "d" and value.a2 == math.inf
    assert JSON.parse("[]") == [] and JSON.parse('"s"') == "s" and JSON.parse("null") is jsnull
    assert JSON.parse(b'{"x": 1}').x == 1
    assert JSON.parse("9007199254740993") == float(9007199254740993)


def test_json_parse_reviver_and_errors():
    revived = JSON.parse('{"a": 1, "b": 2}',
                         lambda key, value: None if key == "a" else value)
    assert Object.keys(revived) == ["b"]
    for bad in ("{bad", "NaN", "[1,]", ""):
        with pytest.raises(JsException) as caught:
            JSON.parse(bad)
        assert caught.value.name == "SyntaxError"
    with pytest.raises(JsException) as caught:
        JSON.parse("[" * 100_000 + "]" * 100_000)
    assert caught.value.name == "RangeError"


# --------------------------------------------------------------------------- console


def test_console_writes_log_lines_to_stdout_and_errors_to_stderr(capsys):
    console.log("hello", 1.0, None, jsnull, True, {"a": [1]}, JSON.parse('{"b": 2}'))
    console.info("info")
    console.debug("debug")
    console.warn("careful")
    console.error("broken", js.Error.new("boom"))
    out, err = capsys.readouterr()
    assert out == 'hello 1 undefined null true {"a":[1]} {"b":2}\ninfo\ndebug\n'
    assert err == "careful\nbroken Error: boom\n"


# --------------------------------------------------------------------------- fetch


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self._answer(b"")

    def do_POST(self):  # noqa: N802
        self._answer(self.rfile.read(int(self.headers.get("content-length") or 0)))

    def _answer(self, body):
        reply = json.dumps({"method": self.command, "path": self.path, "body": body.decode(),
                            "x": self.headers.get("x-test")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_answers_a_js_response(server):
    async def main():
        response = await js.fetch(f"{server}/path?q=1")
        data = await response.json()
        return response, data

    response, data = run(main())
    assert isinstance(response, Response) and response.status == 200 and response.ok
    assert response.headers.get("content-type") == "application/json"
    assert isinstance(data, JsObject) and data.method == "GET" and data.path == "/path?q=1"


def test_fetch_with_an_init_object_or_keywords(server):
    async def main():
        init = to_js({"method": "POST", "body": "payload", "headers": {"x-test": "yes"}},
                     dict_converter=Object.fromEntries)
        first = await (await js.fetch(URL.new(server + "/a"), init)).text()
        second = await (await js.fetch(server + "/b", method="POST", body=b"raw",
                                       headers=Headers.new({"x-test": "kw"}))).json()
        return json.loads(first), second.to_py()

    first, second = run(main())
    assert first == {"method": "POST", "path": "/a", "body": "payload", "x": "yes"}
    assert second == {"method": "POST", "path": "/b", "body": "raw", "x": "kw"}


# --------------------------------------------------------------------------- Date, Error


def test_date_now_and_new():
    before = time.time() * 1000
    now = Date.now()
    assert isinstance(now, int) and before - 1 <= now <= time.time() * 1000 + 1
    assert abs(Date.new().getTime() - now) < 5000
    epoch = Date.new(0)
    assert epoch.toISOString() == "1970-01-01T00:00:00.000Z"
    assert epoch.toUTCString() == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert epoch.getDay() == 4 and epoch.getTimezoneOffset() == 0
    leap = Date.new("2024-02-29T23:59:58.5+01:00")
    assert leap.toISOString() == "2024-02-29T22:59:58.500Z"
    assert (leap.getFullYear(), leap.getMonth(), leap.getDate()) == (2024, 1, 29)
    assert Date.new(2024, 12, 1).toISOString() == "2025-01-01T00:00:00.000Z"  # month overflows
    assert Date.new(99, 0).getFullYear() == 1999
    assert Date.parse("Thu, 01 Jan 1970 00:00:01 GMT") == 1000
    assert Date.UTC(2000, 0, 1) == 946684800000
    assert Date.new(Date.new(5)).getTime() == 5


def test_an_invalid_date_is_nan_and_refuses_iso_output():
    invalid = Date.new("not a date")
    assert math.isnan(invalid.getTime()) and invalid.toString() == "Invalid Date"
    with pytest.raises(JsException) as caught:
        invalid.toISOString()
    assert caught.value.name == "RangeError"
    assert math.isnan(Date.new(9e15).getTime())
    assert JSON.stringify([invalid]) == "[null]"


def test_error_new_makes_an_exception():
    error = js.Error.new("bad input")
    assert isinstance(error, Exception) and error.message == "bad input"
    assert js.Error("x").name == "Error"


# --------------------------------------------------------------------------- URL


def test_url_parts():
    url = URL.new("HTTPS://user:pw@Example.COM:443/a/./b/../c%20d e?x=1&y=two&x=3#frag")
    assert url.protocol == "https:" and url.username == "user" and url.password == "pw"
    assert url.hostname == "example.com" and url.port == "" and url.host == "example.com"
    assert url.pathname == "/a/c%20d%20e"
    assert url.search == "?x=1&y=two&x=3" and url.hash == "#frag"
    assert url.origin == "https://example.com"
    assert url.href == "https://user:pw@example.com/a/c%20d%20e?x=1&y=two&x=3#frag"
    assert str(url) == url.href == url.toString()
    params = url.searchParams
    assert params.get("x") == "1" and list(params.getAll("x")) == ["1", "3"]
    assert params.get("missing") is None and params.has("y") and params.size == 3
    assert URL.new("http://h:8080").host == "h:8080" and URL.new("http://h:8080").pathname == "/"
    assert URL.new("http://[::1]:9/").hostname == "[::1]"


def test_url_relative_to_a_base_and_invalid_urls():
    assert URL.new("../x?q", "https://a.example/b/c/d").href == "https://a.example/b/x?q"
    assert URL.new("/p", URL.new("http://h/q")).href == "http://h/p"
    for bad in ("no scheme", "http://", "http://exa mple.com/", "http://h:99999/", "//x"):
        with pytest.raises(JsException) as caught:
            URL.new(bad)
        assert caught.value.name == "TypeError" and "Invalid URL" in caught.value.message
    assert URL.canParse("https://ok") and not URL.canParse("nope")
    assert URL.parse("nope") is jsnull
    assert URL.new("mailto:someone@example.com").pathname == "someone@example.com"


def test_url_setters_and_live_search_params():
    url = URL.new("https://example.com/a?x=1")
    url.searchParams.append("q", "a b&c")
    assert url.href == "https://example.com/a?x=1&q=a+b%26c"
    url.searchParams.delete("x")
    url.pathname = "docs/intro"
    url.hash = "#top"
    url.port = "8443"
    assert url.href == "https://example.com:8443/docs/intro?q=a+b%26c#top"
    url.search = "?k=v"
    assert url.searchParams.get("k") == "v" and url.searchParams.get("q") is None
    url.hostname = "Other.example"
    assert url.host == "other.example:8443"
    params = URLSearchParams.new("?b=2&a=1&a=0")
    params.sort()
    params.set("b", "3")
    assert params.toString() == "a=1&a=0&b=3"
    assert URLSearchParams.new({"k": 1}).toString() == "k=1"


# --------------------------------------------------------------------------- missing globals


def test_a_missing_global_names_itself():
    with pytest.raises(NotImplementedError, match=r"js\.WebSocketPair is not available in thaw"):
        from js import WebSocketPair  # noqa: F401
    with pytest.raises(NotImplementedError, match=r"js\.HTMLRewriter"):
        js.HTMLRewriter.new()
    with pytest.raises(AttributeError):  # also an AttributeError: hasattr() is False
        js.caches
    assert not hasattr(js, "crypto")
    with pytest.raises(AttributeError) as caught:
        js._private
    assert not isinstance(caught.value, NotImplementedError)
    from js import TypeError as JsTypeError
    assert JsTypeError.new("t").name == "TypeError"


def test_headers_without_cookies_give_empty_get_set_cookie_and_entries():
    # workers.Headers.get_all gives None for a missing name (as HTTPMessage); the js view of
    # the same headers must still give an empty array, as the web's getSetCookie() does.
    h = js.Headers.new({"a": "1"})
    assert list(h.getSetCookie()) == []
    assert [list(e) for e in h.entries()] == [["a", "1"]]
    h.append("set-cookie", "x=1")
    h.append("set-cookie", "y=2")
    assert list(h.getSetCookie()) == ["x=1", "y=2"]
    assert [list(e) for e in h.entries()] == [["a", "1"], ["set-cookie", "x=1"],
                                              ["set-cookie", "y=2"]]
