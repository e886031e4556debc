/*
 * Tests for static assets (src/host/assets.c) and their configuration
 * (src/project/project.c, read.c): the path normaliser against hostile
 * targets, the content-type table, Range, If-None-Match, run_worker_first
 * patterns, the config rules, and assets_answer against a real directory
 * (html_handling, not_found_handling, a symlink leading out, a FIFO).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "host/assets.h"
#include "project/project.h"

static void test_path_normalize_accepts_and_canonicalises(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{"/", "/"},
		{"/a/b.css?x=1#f", "/a/b.css"},
		{"/a//b/./c/", "/a/b/c/"},
		{"/%7Euser/%41.txt", "/~user/A.txt"},
		{"/folder/", "/folder/"},
		{"/.well-known/x", "/.well-known/x"},
		{"/a%20b", "/a b"},
		{"/./", "/"},
		{"/a/.", "/a/"},
	};
	char out[ASSETS_PATH_MAX + 1];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		if (assets_path_normalize(cases[i][0], out, sizeof out) != 0)
			fail_msg("'%s' refused", cases[i][0]);
		assert_string_equal(out, cases[i][1]);
	}
}

static void test_path_normalize_refuses_hostile_targets(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"",           "a/b",         "/..",         "/../etc/passwd", "/a/../../b",
		"/%2e%2e/x",  "/%2E%2E/x",   "/.%2e/x",     "/a%2fb",         "/a%2F..%2Fb",
		"/a%00b",     "/a\\b",       "/a%5cb",      "/a%5C..%5Cb",    "/%zz",
		"/%4",        "/%",          "/a\x01",      "/a%0d%0aX: y",   "/a%7f",
		"/a/..?x",    "http://h/a",  "/a/%2e%2e",
	};
	char out[ASSETS_PATH_MAX + 1];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (assets_path_normalize(bad[i], out, sizeof out) == 0)
			fail_msg("'%s' accepted as '%s'", bad[i], out);
	assert_int_equal(assets_path_normalize(NULL, out, sizeof out), -1);
	/* A component over 255 bytes, a path over the limit, too deep. */
	char big[ASSETS_PATH_MAX * 2];
	big[0] = '/';
	memset(big + 1, 'a', 300);
	big[301] = 0;
	assert_int_equal(assets_path_normalize(big, out, sizeof out), -1);
	size_t n = 0;
	for (int i = 0; i < 65; i++)
		n += (size_t)snprintf(big + n, sizeof big - n, "/d");
	assert_int_equal(assets_path_normalize(big, out, sizeof out), -1);
	n = 0;
	while (n + 200 < ASSETS_PATH_MAX + 400)
		n += (size_t)snprintf(big + n, sizeof big - n, "/%0100d", 7);
	assert_int_equal(assets_path_normalize(big, out, sizeof out), -1);
	/* A small output buffer is never overrun. */
	char tiny[4];
	assert_int_equal(assets_path_normalize("/abcdef", tiny, sizeof tiny), -1);
}

static void test_content_types_are_cloudflares(void **state)
{
	(void)state;
	assert_string_equal(assets_content_type("/index.html"), "text/html; charset=utf-8");
	assert_string_equal(assets_content_type("/app.JS"), "text/javascript; charset=utf-8");
	assert_string_equal(assets_content_type("/m.mjs"), "text/javascript; charset=utf-8");
	assert_string_equal(assets_content_type("/s.css"), "text/css; charset=utf-8");
	assert_string_equal(assets_content_type("/favicon.ico"), "image/vnd.microsoft.icon");
	assert_string_equal(assets_content_type("/a.json"), "application/json");
	assert_string_equal(assets_content_type("/r.txt"), "text/plain; charset=utf-8");
	assert_string_equal(assets_content_type("/i.svg"), "image/svg+xml");
	assert_string_equal(assets_content_type("/f.woff2"), "font/woff2");
	assert_string_equal(assets_content_type("/w.wasm"), "application/wasm");
	assert_string_equal(assets_content_type("/x.unknownext"), "application/octet-stream");
	assert_string_equal(assets_content_type("/noext"), "application/octet-stream");
	assert_string_equal(assets_content_type("/dir.css/noext"), "application/octet-stream");
	assert_string_equal(assets_content_type("/trailing."), "application/octet-stream");
}

static void test_range_parsing(void **state)
{
	(void)state;
	uint64_t s = 99, l = 99;
	assert_int_equal(assets_range_parse("bytes=0-0", 10, &s, &l), ASSETS_RANGE_OK);
	assert_true(s == 0 && l == 1);
	assert_int_equal(assets_range_parse("bytes=2-", 10, &s, &l), ASSETS_RANGE_OK);
	assert_true(s == 2 && l == 8);
	assert_int_equal(assets_range_parse("bytes=2-100", 10, &s, &l), ASSETS_RANGE_OK);
	assert_true(s == 2 && l == 8);
	assert_int_equal(assets_range_parse("bytes=-3", 10, &s, &l), ASSETS_RANGE_OK);
	assert_true(s == 7 && l == 3);
	assert_int_equal(assets_range_parse("bytes=-30", 10, &s, &l), ASSETS_RANGE_OK);
	assert_true(s == 0 && l == 10);
	assert_int_equal(assets_range_parse(" bytes = 1-2 ", 10, &s, &l), ASSETS_RANGE_OK);
	assert_true(s == 1 && l == 2);
	assert_int_equal(assets_range_parse("bytes=10-", 10, &s, &l), ASSETS_RANGE_UNSATISFIABLE);
	assert_int_equal(assets_range_parse("bytes=-0", 10, &s, &l), ASSETS_RANGE_UNSATISFIABLE);
	assert_int_equal(assets_range_parse("bytes=0-", 0, &s, &l), ASSETS_RANGE_UNSATISFIABLE);
	static const char *const ignored[] = {
		NULL, "", "bytes", "bytes=", "bytes=-", "bytes=a-b", "bytes=5-2", "items=0-1",
		"bytes=0-1,3-4", "bytes=1-2x", "bytes=99999999999999999999-", "bytes=--1",
		"bytes=1--2", "bytes 0-1",
	};
	for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
		if (assets_range_parse(ignored[i], 10, &s, &l) != ASSETS_RANGE_NONE)
			fail_msg("Range '%s' not ignored", ignored[i] ? ignored[i] : "(null)");
}

static void test_if_none_match(void **state)
{
	(void)state;
	const char *tag = "\"0123abcd\"";
	assert_true(assets_etag_matches("\"0123abcd\"", tag));
	assert_true(assets_etag_matches("W/\"0123abcd\"", tag));
	assert_true(assets_etag_matches("\"x\", \"0123abcd\"", tag));
	assert_true(assets_etag_matches("*", tag));
	assert_false(assets_etag_matches("\"0123abce\"", tag));
	assert_false(assets_etag_matches("0123abcd", tag));
	assert_false(assets_etag_matches("\"0123abcd", tag));
	assert_false(assets_etag_matches("", tag));
	assert_false(assets_etag_matches(NULL, tag));
	assert_false(assets_etag_matches("\"\"", tag));
	assert_false(assets_etag_matches("*", ""));
}

static void test_run_worker_first_patterns(void **state)
{
	(void)state;
	assert_true(assets_rule_matches("/api/*", "/api/x"));
	assert_true(assets_rule_matches("/api/*", "/api/"));
	assert_true(assets_rule_matches("/api/*", "/api/a/b/c"));
	assert_false(assets_rule_matches("/api/*", "/api"));
	assert_false(assets_rule_matches("/api/*", "/apix/y"));
	assert_true(assets_rule_matches("/*.js", "/a/b/c.js"));
	assert_false(assets_rule_matches("/*.js", "/a/b/c.json"));
	assert_true(assets_rule_matches("/exact", "/exact"));
	assert_false(assets_rule_matches("/exact", "/exact/"));
	assert_true(assets_rule_matches("/*", "/"));
	/* Backtracking stays linear-ish on a hostile path. */
	char path[4096];
	memset(path, 'a', sizeof path - 1);
	path[sizeof path - 1] = 0;
	assert_false(assets_rule_matches("/*a*a*a*a*a*a*a*a*b", path));

	char *rules[] = {"/api/*", "!/api/docs/*"};
	struct project_assets cfg = {.directory = "public", .rules = rules, .nrules = 2};
	assert_true(assets_worker_first(&cfg, "/api/users"));
	assert_false(assets_worker_first(&cfg, "/api/docs/index.html"));
	assert_false(assets_worker_first(&cfg, "/index.html"));
	struct project_assets all = {.directory = "public", .run_worker_first = 1};
	assert_true(assets_worker_first(&all, "/anything"));
	struct project_assets none = {.directory = "public"};
	assert_false(assets_worker_first(&none, "/api/x"));
}

/* project_assets_from_json on a JSON text; 0 or -1 with the message in err. */
static int assets_config(const char *text, int from_file, struct project_assets *a, char *err,
			 size_t errlen)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j)
		fail_msg("bad test JSON %s: %s", text, je.text);
	int rc = project_assets_from_json(a, j, from_file, "wrangler.jsonc", err, errlen);
	json_decref(j);
	return rc;
}

static void test_config_rules(void **state)
{
	(void)state;
	struct project_assets a;
	char err[512];
	assert_int_equal(assets_config("{\"directory\": \"public\", \"binding\": \"ASSETS\", "
				       "\"html_handling\": \"drop-trailing-slash\", "
				       "\"not_found_handling\": \"404-page\", "
				       "\"run_worker_first\": [\"/api/*\", \"!/api/docs/*\"]}",
				       0, &a, err, sizeof err),
			 0);
	assert_string_equal(a.directory, "public");
	assert_string_equal(a.binding, "ASSETS");
	assert_int_equal(a.html_handling, PROJECT_HTML_DROP_TRAILING_SLASH);
	assert_int_equal(a.not_found_handling, PROJECT_NOT_FOUND_404_PAGE);
	assert_int_equal(a.nrules, 2);
	/* Round trip through the project JSON. */
	json_t *j = project_assets_to_json(&a);
	struct project_assets b;
	assert_int_equal(project_assets_from_json(&b, j, 0, "x", err, sizeof err), 0);
	assert_int_equal(b.nrules, 2);
	assert_string_equal(b.rules[1], "!/api/docs/*");
	assert_int_equal(b.not_found_handling, PROJECT_NOT_FOUND_404_PAGE);
	json_decref(j);
	project_assets_dispose(&b);
	project_assets_dispose(&a);

	static const struct {
		const char *json;
		const char *says;
	} bad[] = {
		{"{}", "assets.directory is required"},
		{"[]", "'assets' must be a table"},
		{"{\"directory\": 3}", "must be a string"},
		{"{\"directory\": \"p\", \"html_handling\": \"auto\"}", "html_handling 'auto'"},
		{"{\"directory\": \"p\", \"not_found_handling\": \"spa\"}", "not_found_handling 'spa'"},
		{"{\"directory\": \"p\", \"binding\": \"my-assets\"}", "not a valid name"},
		{"{\"directory\": \"p\", \"run_worker_first\": \"yes\"}", "must be true, false"},
		{"{\"directory\": \"p\", \"run_worker_first\": []}", "1 to 100"},
		{"{\"directory\": \"p\", \"run_worker_first\": [\"api/*\"]}", "must start with '/'"},
		{"{\"directory\": \"p\", \"run_worker_first\": [\"!/a/*\"]}", "only '!' patterns"},
		{"{\"directory\": \"p\", \"run_worker_first\": [\"/a\", \"/a\"]}", "listed twice"},
		{"{\"directory\": \"p\", \"run_worker_first\": [1]}", "must be strings"},
		{"{\"directory\": \"p\", \"serve_directly\": true}", "not a key thaw knows"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = 0;
		if (assets_config(bad[i].json, 1, &a, err, sizeof err) == 0)
			fail_msg("%s accepted", bad[i].json);
		if (!strstr(err, bad[i].says))
			fail_msg("%s: '%s' does not say '%s'", bad[i].json, err, bad[i].says);
		assert_null(a.directory);
	}
	/* Too many rules. */
	char many[8192] = "{\"directory\": \"p\", \"run_worker_first\": [";
	for (int i = 0; i < 101; i++)
		snprintf(many + strlen(many), sizeof many - strlen(many), "%s\"/r%d\"", i ? "," : "",
			 i);
	strcat(many, "]}");
	assert_int_equal(assets_config(many, 1, &a, err, sizeof err), -1);
	/* The reader's answer must hold a normalised relative directory. */
	static const char *const dirs[] = {"../up", "/abs", "a/../b", "a/", "", "a//b", "."};
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		char text[128];
		snprintf(text, sizeof text, "{\"directory\": \"%s\"}", dirs[i]);
		if (assets_config(text, 0, &a, err, sizeof err) == 0)
			fail_msg("directory '%s' accepted in a project description", dirs[i]);
	}
}

static void test_binding_may_not_shadow_a_var(void **state)
{
	(void)state;
	char err[512];
	json_t *j = json_loads("{\"name\": \"w\", \"main\": \"src/entry.py\", \"vars\": "
			       "{\"ASSETS\": \"x\"}, \"dependencies\": [], \"assets\": "
			       "{\"directory\": \"public\", \"binding\": \"ASSETS\"}}",
			       0, NULL);
	assert_non_null(j);
	assert_null(project_from_json(j, "/p", err, sizeof err));
	assert_non_null(strstr(err, "ASSETS"));
	json_object_set_new(j, "vars", json_object());
	struct project *p = project_from_json(j, "/p", err, sizeof err);
	assert_non_null(p);
	assert_string_equal(p->assets.binding, "ASSETS");
	project_free(p);
	json_decref(j);
}

/* --- assets_answer against a directory --- */

static char tmp[256];

static void put(const char *rel, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", tmp, rel);
	char *slash = strrchr(path, '/');
	*slash = 0;
	mkdir_p(path, 0755);
	*slash = '/';
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	snprintf(tmp, sizeof tmp, "/tmp/thaw-assets-XXXXXX");
	assert_non_null(mkdtemp(tmp));
	put("public/index.html", "home");
	put("public/file.html", "file");
	put("public/a b.html", "spaced");
	put("public/folder/index.html", "folder");
	put("public/style.css", "body{}");
	put("public/blog/404.html", "blog missing");
	put("public/404.html", "missing");
	put("public/_headers", "/*\n  X: y\n");
	put("outside.txt", "secret");
	char path[512], target[512];
	snprintf(path, sizeof path, "%s/public/leak.txt", tmp);
	snprintf(target, sizeof target, "%s/outside.txt", tmp);
	assert_int_equal(symlink(target, path), 0);
	snprintf(path, sizeof path, "%s/public/rel.txt", tmp);
	assert_int_equal(symlink("../outside.txt", path), 0);
	snprintf(path, sizeof path, "%s/public/inside.css", tmp);
	assert_int_equal(symlink("style.css", path), 0);
	snprintf(path, sizeof path, "%s/public/fifo", tmp);
	assert_int_equal(mkfifo(path, 0644), 0);
	(void)state;
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
	(void)state;
	return system(cmd);
}

struct got {
	int rc;
	unsigned status;
	char body[256];
	char location[256];
};

static struct got ask(enum project_html_handling html, enum project_not_found_handling nf,
		      const char *target, int binding, const char *mode)
{
	struct project_assets cfg = {.directory = "public", .html_handling = html,
				     .not_found_handling = nf};
	char err[256];
	struct assets *a = assets_open(tmp, &cfg, err, sizeof err);
	if (!a)
		fail_msg("assets_open: %s", err);
	struct assets_request rq = {.method = "GET", .target = target, .binding = binding,
				    .sec_fetch_mode = mode};
	struct assets_reply rp;
	struct got g = {0};
	g.rc = assets_answer(a, &rq, &rp);
	if (g.rc == ASSETS_ANSWER) {
		g.status = rp.status;
		if (rp.fd >= 0) {
			ssize_t n = pread(rp.fd, g.body, sizeof g.body - 1, (off_t)rp.offset);
			g.body[n > 0 ? n : 0] = 0;
		} else if (rp.text) {
			snprintf(g.body, sizeof g.body, "%s", rp.text);
		}
		if (rp.location)
			snprintf(g.location, sizeof g.location, "%s", rp.location);
		assets_reply_dispose(&rp);
	}
	assets_free(a);
	return g;
}

#define AUTO PROJECT_HTML_AUTO_TRAILING_SLASH
#define NF_NONE PROJECT_NOT_FOUND_NONE

static void expect(struct got g, unsigned status, const char *body, const char *location,
		   const char *what)
{
	if (g.rc != ASSETS_ANSWER || g.status != status ||
	    (body && strcmp(g.body, body) != 0) || (location && strcmp(g.location, location) != 0))
		fail_msg("%s: got rc %d status %u body '%s' location '%s'", what, g.rc, g.status,
			 g.body, g.location);
}

static void test_html_handling(void **state)
{
	(void)state;
	expect(ask(AUTO, NF_NONE, "/", 0, NULL), 200, "home", NULL, "/");
	expect(ask(AUTO, NF_NONE, "/file", 0, NULL), 200, "file", NULL, "/file");
	expect(ask(AUTO, NF_NONE, "/file.html?q=1", 0, NULL), 307, NULL, "/file?q=1", "/file.html");
	expect(ask(AUTO, NF_NONE, "/file/", 0, NULL), 307, NULL, "/file", "/file/");
	expect(ask(AUTO, NF_NONE, "/folder", 0, NULL), 307, NULL, "/folder/", "/folder");
	expect(ask(AUTO, NF_NONE, "/folder/", 0, NULL), 200, "folder", NULL, "/folder/");
	expect(ask(AUTO, NF_NONE, "/folder/index.html", 0, NULL), 307, NULL, "/folder/", "index");
	expect(ask(AUTO, NF_NONE, "/index.html", 0, NULL), 307, NULL, "/", "/index.html");
	expect(ask(AUTO, NF_NONE, "/style.css", 0, NULL), 200, "body{}", NULL, "/style.css");
	expect(ask(AUTO, NF_NONE, "/a%20b.html", 0, NULL), 307, NULL, "/a%20b", "encoded location");
	expect(ask(AUTO, NF_NONE, "/a%20b", 0, NULL), 200, "spaced", NULL, "/a%20b");

	enum project_html_handling force = PROJECT_HTML_FORCE_TRAILING_SLASH;
	expect(ask(force, NF_NONE, "/file", 0, NULL), 307, NULL, "/file/", "force /file");
	expect(ask(force, NF_NONE, "/file/", 0, NULL), 200, "file", NULL, "force /file/");
	expect(ask(force, NF_NONE, "/folder", 0, NULL), 307, NULL, "/folder/", "force /folder");
	expect(ask(force, NF_NONE, "/file.html", 0, NULL), 307, NULL, "/file/", "force .html");

	enum project_html_handling drop = PROJECT_HTML_DROP_TRAILING_SLASH;
	expect(ask(drop, NF_NONE, "/folder", 0, NULL), 200, "folder", NULL, "drop /folder");
	expect(ask(drop, NF_NONE, "/folder/", 0, NULL), 307, NULL, "/folder", "drop /folder/");
	expect(ask(drop, NF_NONE, "/file", 0, NULL), 200, "file", NULL, "drop /file");
	expect(ask(drop, NF_NONE, "/", 0, NULL), 200, "home", NULL, "drop /");

	enum project_html_handling none = PROJECT_HTML_NONE;
	expect(ask(none, NF_NONE, "/file.html", 0, NULL), 200, "file", NULL, "none exact");
	assert_int_equal(ask(none, NF_NONE, "/file", 0, NULL).rc, ASSETS_TO_WORKER);
}

static void test_not_found_handling(void **state)
{
	(void)state;
	/* The front: only navigations get the fallback, the rest go to the worker. */
	assert_int_equal(ask(AUTO, PROJECT_NOT_FOUND_SPA, "/app/route", 0, NULL).rc,
			 ASSETS_TO_WORKER);
	expect(ask(AUTO, PROJECT_NOT_FOUND_SPA, "/app/route", 0, "navigate"), 200, "home", NULL,
	       "spa");
	expect(ask(AUTO, PROJECT_NOT_FOUND_404_PAGE, "/blog/nope", 0, "navigate"), 404,
	       "blog missing", NULL, "nearest 404");
	expect(ask(AUTO, PROJECT_NOT_FOUND_404_PAGE, "/x/y/z", 0, "navigate"), 404, "missing",
	       NULL, "root 404");
	assert_int_equal(ask(AUTO, NF_NONE, "/nope", 0, "navigate").rc, ASSETS_TO_WORKER);
	/* The binding: every request, and a plain 404 without a page. */
	expect(ask(AUTO, PROJECT_NOT_FOUND_SPA, "/app/route", 1, NULL), 200, "home", NULL,
	       "binding spa");
	expect(ask(AUTO, NF_NONE, "/nope", 1, NULL), 404, "", NULL, "binding 404");
}

static void test_nothing_outside_the_directory(void **state)
{
	(void)state;
	/* Symlinks out of the directory, hostile encodings, reserved files,
	 * a FIFO (which must not block): never served. */
	static const char *const targets[] = {
		"/leak.txt", "/rel.txt", "/../outside.txt", "/%2e%2e/outside.txt",
		"/..%2foutside.txt", "/%2e%2e%2foutside.txt", "/a%00b", "/..\\outside.txt",
		"/_headers", "/fifo",
	};
	for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
		struct got g = ask(AUTO, NF_NONE, targets[i], 1, NULL);
		if (g.rc != ASSETS_ANSWER || g.status != 404 || strstr(g.body, "secret"))
			fail_msg("%s: status %u body '%s'", targets[i], g.status, g.body);
		assert_int_equal(ask(AUTO, NF_NONE, targets[i], 0, NULL).rc, ASSETS_TO_WORKER);
	}
	/* A symlink that stays inside is followed. */
	expect(ask(AUTO, NF_NONE, "/inside.css", 1, NULL), 200, "body{}", NULL, "inside link");
}

static void test_conditional_and_range_answers(void **state)
{
	(void)state;
	struct project_assets cfg = {.directory = "public"};
	char err[256];
	struct assets *a = assets_open(tmp, &cfg, err, sizeof err);
	assert_non_null(a);
	struct assets_request rq = {.method = "GET", .target = "/style.css"};
	struct assets_reply rp;
	assert_int_equal(assets_answer(a, &rq, &rp), ASSETS_ANSWER);
	assert_int_equal(rp.status, 200);
	assert_string_equal(rp.content_type, "text/css; charset=utf-8");
	assert_true(rp.cache_control && rp.accept_ranges && rp.etag[0] == '"');
	char etag[24];
	memcpy(etag, rp.etag, sizeof etag);
	assets_reply_dispose(&rp);

	rq.if_none_match = etag;
	assert_int_equal(assets_answer(a, &rq, &rp), ASSETS_ANSWER);
	assert_int_equal(rp.status, 304);
	assert_int_equal(rp.fd, -1);
	assets_reply_dispose(&rp);

	rq.if_none_match = NULL;
	rq.range = "bytes=1-3";
	assert_int_equal(assets_answer(a, &rq, &rp), ASSETS_ANSWER);
	assert_int_equal(rp.status, 206);
	assert_true(rp.offset == 1 && rp.length == 3);
	assert_string_equal(rp.content_range, "bytes 1-3/6");
	assert_false(rp.cache_control);
	assets_reply_dispose(&rp);

	rq.range = "bytes=6-";
	assert_int_equal(assets_answer(a, &rq, &rp), ASSETS_ANSWER);
	assert_int_equal(rp.status, 416);
	assert_string_equal(rp.content_range, "bytes */6");
	assets_reply_dispose(&rp);

	rq.range = NULL;
	rq.method = "POST";
	assert_int_equal(assets_answer(a, &rq, &rp), ASSETS_TO_WORKER);
	rq.binding = 1;
	assert_int_equal(assets_answer(a, &rq, &rp), ASSETS_ANSWER);
	assert_int_equal(rp.status, 405);
	assets_reply_dispose(&rp);
	assets_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_normalize_accepts_and_canonicalises),
		cmocka_unit_test(test_path_normalize_refuses_hostile_targets),
		cmocka_unit_test(test_content_types_are_cloudflares),
		cmocka_unit_test(test_range_parsing),
		cmocka_unit_test(test_if_none_match),
		cmocka_unit_test(test_run_worker_first_patterns),
		cmocka_unit_test(test_config_rules),
		cmocka_unit_test(test_binding_may_not_shadow_a_var),
		cmocka_unit_test_setup_teardown(test_html_handling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_found_handling, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_outside_the_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_conditional_and_range_answers, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
