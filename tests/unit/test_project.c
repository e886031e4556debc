/*
 * Tests for the project model (src/project/): the name and entry-module
 * rules, the reader's JSON answer as the host parses it (hostile: every
 * malformed shape is refused with a message), and project_read's rules for
 * which files count and how they combine. project_read runs here with a
 * stand-in TOML parser that reads JSON, so the rules are tested without
 * Python; the real reader (tomllib in `thaw config`) is tested end to end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "project/project.h"

static void test_name_rule(void **state)
{
	const char *good[] = {"a", "hello", "my-worker_2", "0", "a-b"};
	const char *bad[] = {"", "-a", "a-", "Hello", "a.b", "a b", "a/b", "é",
			     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_true(project_name_valid(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (project_name_valid(bad[i]))
			fail_msg("'%s' accepted as a name", bad[i]);
	assert_false(project_name_valid(NULL));
	char max[64];
	memset(max, 'a', 63);
	max[63] = 0;
	assert_true(project_name_valid(max));
}

static void test_main_rule(void **state)
{
	const char *good[] = {"src/entry.py", "app.py", "a/b/c.py", "x..y.py"};
	const char *bad[] = {"/abs.py", "../up.py", "src/../x.py", "./x.py", "src//x.py",
			     "x.txt", ".py", "src\\x.py", "src/\x01.py", "src/"};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_true(project_main_valid(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (project_main_valid(bad[i]))
			fail_msg("'%s' accepted as an entry module", bad[i]);
}

static struct project *parse(const char *text, char *err, size_t errlen)
{
	err[0] = 0;
	return project_parse(text, strlen(text), "/srv/p", err, errlen);
}

static void test_answer_round_trip(void **state)
{
	char err[512];
	struct project *p = parse("{\"ok\":true,\"project\":{\"name\":\"hi\",\"main\":\"src/entry.py\","
				  "\"vars\":{\"A\":1,\"B\":\"x\"},\"dependencies\":[\"fastapi\"],"
				  "\"sources\":\"pyproject.toml\",\"allow_entropy_at_import\":true}}",
				  err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_string_equal(p->dir, "/srv/p");
	assert_string_equal(p->name, "hi");
	assert_string_equal(p->main, "src/entry.py");
	assert_int_equal(json_integer_value(json_object_get(p->vars, "A")), 1);
	assert_int_equal(json_array_size(p->dependencies), 1);
	assert_true(p->allow_entropy_at_import);
	json_t *j = project_to_json(p);
	struct project *q = project_from_json(j, "/other", err, sizeof err);
	assert_non_null(q);
	json_t *k = project_to_json(q);
	assert_true(json_equal(j, k));
	assert_string_equal(q->dir, "/other");
	json_decref(j);
	json_decref(k);
	project_free(p);
	project_free(q);
	project_free(NULL);
}

static void test_malformed_answers(void **state)
{
	struct {
		const char *text, *want;
	} cases[] = {
		{"", "not valid"},
		{"not json", "not valid"},
		{"[]", "not valid"},
		{"{}", "not valid"},
		{"{\"ok\":false,\"error\":\"pyproject.toml: bad\"}", "pyproject.toml: bad"},
		{"{\"ok\":false}", "could not be read"},
		{"{\"ok\":true}", "malformed"},
		{"{\"ok\":true,\"project\":[]}", "malformed"},
		{"{\"ok\":true,\"project\":{\"name\":\"hi\"}}", "malformed"},
		{"{\"ok\":true,\"project\":{\"name\":1,\"main\":\"a.py\",\"vars\":{},\"dependencies\":[]}}",
		 "malformed"},
		{"{\"ok\":true,\"project\":{\"name\":\"hi\",\"main\":\"a.py\",\"vars\":[],\"dependencies\":[]}}",
		 "vars"},
		{"{\"ok\":true,\"project\":{\"name\":\"hi\",\"main\":\"a.py\",\"vars\":{},\"dependencies\":{}}}",
		 "dependencies"},
		{"{\"ok\":true,\"project\":{\"name\":\"hi\",\"main\":\"a.py\",\"vars\":{},\"dependencies\":[1]}}",
		 "dependency"},
		{"{\"ok\":true,\"project\":{\"name\":\"Bad\",\"main\":\"a.py\",\"vars\":{},\"dependencies\":[]}}",
		 "invalid name"},
		{"{\"ok\":true,\"project\":{\"name\":\"ok\",\"main\":\"../a.py\",\"vars\":{},\"dependencies\":[]}}",
		 "invalid main"},
		{"{\"ok\":true,\"project\":{\"name\":\"ok\",\"main\":\"a.py\",\"vars\":{},\"dependencies\":[],"
		 "\"allow_entropy_at_import\":\"yes\"}}",
		 "malformed"},
		{"{\"ok\":true,\"project\":{\"name\":\"ok\",\"main\":\"a.py\",\"vars\":{},"
		 "\"dependencies\":[],\"outbound\":0}}",
		 "malformed"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char err[512];
		struct project *p = parse(cases[i].text, err, sizeof err);
		if (p)
			fail_msg("accepted: %s", cases[i].text);
		if (!strstr(err, cases[i].want))
			fail_msg("%s: error '%s' does not say '%s'", cases[i].text, err, cases[i].want);
	}
	/* Larger than the reader may answer: refused before parsing. */
	char err[256];
	assert_null(project_parse("{}", PROJECT_MAX_JSON_BYTES + 1, "/", err, sizeof err));
	assert_non_null(strstr(err, "too large"));
}

/* --- project_read with a stand-in TOML parser (JSON text) --- */

static int toml_calls;
static json_t *json_as_toml(const char *text, size_t len, char *err, size_t errlen)
{
	toml_calls++;
	json_error_t je;
	json_t *j = json_loadb(text, len, 0, &je);
	if (!j)
		snprintf(err, errlen, "Invalid value (at line %d)", je.line);
	return j;
}

static char dir[256];

static void put(const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
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
	snprintf(dir, sizeof dir, "/tmp/thaw-test-project-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	toml_calls = 0;
	return 0;
}

static int teardown(void **state)
{
	remove_tree(dir);
	return 0;
}

static void unlink_at_dir(const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	unlink(path);
}

static struct project *read_dir(char *err, size_t errlen)
{
	err[0] = 0;
	return project_read(dir, json_as_toml, NULL, err, errlen);
}

static void test_read_pyproject(void **state)
{
	put("pyproject.toml", "{\"project\":{\"name\":\"pkg\",\"dependencies\":[\"httpx\"]},"
			      "\"tool\":{\"thaw\":{\"name\":\"web\",\"vars\":{\"X\":\"1\"}}}}");
	put("src/entry.py", "");
	char err[512];
	struct project *p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_string_equal(p->name, "web"); /* [tool.thaw] name over [project] */
	assert_string_equal(p->main, "src/entry.py");
	assert_string_equal(p->sources, "pyproject.toml");
	assert_string_equal(json_string_value(json_object_get(p->vars, "X")), "1");
	assert_string_equal(json_string_value(json_array_get(p->dependencies, 0)), "httpx");
	char real[512];
	assert_non_null(realpath(dir, real));
	assert_string_equal(p->dir, real);
	project_free(p);
}

static void test_read_wrangler_jsonc_without_toml(void **state)
{
	put("wrangler.jsonc", "{ // a comment\n \"name\": \"cf\", \"main\": \"app.py\",\n"
			      " \"vars\": {\"A\": 2}, \"compatibility_date\": \"2025-01-01\", }");
	put("app.py", "");
	char err[512];
	struct project *p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(toml_calls, 0); /* JSONC needs no TOML parser */
	assert_string_equal(p->name, "cf");
	assert_string_equal(p->main, "app.py");
	assert_string_equal(p->sources, "wrangler.jsonc");
	project_free(p);
}

static void test_read_pyproject_over_wrangler(void **state)
{
	put("wrangler.toml", "{\"name\":\"w\",\"vars\":{\"A\":\"wrangler\",\"B\":\"kept\"}}");
	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"vars\":{\"A\":\"pyproject\"}}}}");
	put("src/entry.py", "");
	char err[512];
	struct project *p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_string_equal(p->name, "w");
	assert_string_equal(json_string_value(json_object_get(p->vars, "A")), "pyproject");
	assert_string_equal(json_string_value(json_object_get(p->vars, "B")), "kept");
	assert_string_equal(p->sources, "wrangler.toml + pyproject.toml");
	project_free(p);
}

static void test_read_refusals(void **state)
{
	char err[512];
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "has no pyproject.toml or wrangler.toml"));

	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"name\":\"Bad Name\"}}}");
	put("src/entry.py", "");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "is not valid"));

	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"main\":\"../escape.py\"}}}");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "inside the project"));

	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"main\":\"src/missing.py\"}}}");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "does not exist"));

	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"vars\":[1]}}}");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "'vars' must be a table"));

	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"allow_entropy_at_import\":1}}}");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "true or false"));

	put("pyproject.toml", "{\"tool\":{\"thaw\":3}}");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "must be a table"));

	put("pyproject.toml", "not toml");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "pyproject.toml: Invalid value"));

	put("pyproject.toml", "[1, 2]");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "top level must be a table"));
}

/* [tool.thaw] outbound: a boolean, false denies; thaw's own key, so a
 * wrangler file that sets it is refused (ignoring it would leave the
 * worker its network); an environment inherits it and may change it. */
static void test_read_outbound(void **state)
{
	char err[512];
	put("src/entry.py", "");
	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"name\":\"w\"}}}");
	struct project *p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_false(p->outbound_denied); /* the default: outbound allowed */
	json_t *j = project_to_json(p);
	assert_null(json_object_get(j, "outbound"));
	json_decref(j);
	project_free(p);

	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"name\":\"w\",\"outbound\":false,"
			      "\"env\":{\"open\":{\"outbound\":true},\"same\":{}}}}}");
	p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_true(p->outbound_denied);
	j = project_to_json(p);
	assert_true(json_is_false(json_object_get(j, "outbound")));
	struct project *q = project_from_json(j, "/x", err, sizeof err);
	if (!q)
		fail_msg("%s", err);
	assert_true(q->outbound_denied);
	json_decref(j);
	project_free(q);
	project_free(p);
	p = project_read_env(dir, "open", json_as_toml, NULL, err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_false(p->outbound_denied);
	project_free(p);
	p = project_read_env(dir, "same", json_as_toml, NULL, err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_true(p->outbound_denied); /* inherited from the top level */
	project_free(p);

	const char *bad[] = {"\"no\"", "0", "1", "[]", "{}", "\"false\""};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char text[128];
		snprintf(text, sizeof text, "{\"tool\":{\"thaw\":{\"outbound\":%s}}}", bad[i]);
		put("pyproject.toml", text);
		assert_null(read_dir(err, sizeof err));
		if (!strstr(err, "pyproject.toml [tool.thaw]: 'outbound' must be true") ||
		    !strstr(err, "or false"))
			fail_msg("outbound = %s: %s", bad[i], err);
	}

	unlink_at_dir("pyproject.toml");
	put("wrangler.jsonc", "{\"name\":\"w\",\"main\":\"src/entry.py\",\"outbound\":false}");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "wrangler.jsonc: 'outbound' is thaw's own setting"));
	assert_non_null(strstr(err, "[tool.thaw] in pyproject.toml"));
	put("wrangler.jsonc", "{\"name\":\"w\",\"main\":\"src/entry.py\","
			      "\"env\":{\"e\":{\"outbound\":false}}}");
	assert_null(project_read_env(dir, "e", json_as_toml, NULL, err, sizeof err));
	assert_non_null(strstr(err, "'outbound' is thaw's own setting"));
	/* In pyproject.toml beside a wrangler file, it is taken. */
	put("wrangler.jsonc", "{\"name\":\"w\",\"main\":\"src/entry.py\"}");
	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"outbound\":false}}}");
	p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_true(p->outbound_denied);
	project_free(p);
}

static void test_requires_python(void **state)
{
	(void)state;
	static const struct {
		const char *spec, *version;
		int want;
	} cases[] = {
		{">=3.11", "3.11.2", 1},
		{">=3.12", "3.11.2", 0},
		{">=3.10,<3.13", "3.11.2", 1},
		{">=3.10, <3.11", "3.11.2", 0},
		{"~=3.11", "3.11.2", 1},
		{"~=3.12", "3.11.2", 0},
		{"~=3.11.3", "3.11.2", 0},
		{"~=3.11.1", "3.11.2", 1},
		{"~=3.10", "3.11.2", 1}, /* >=3.10, ==3.* */
		{"==3.11.*", "3.11.2", 1},
		{"==3.12.*", "3.11.2", 0},
		{"==3.11", "3.11.2", 0}, /* PEP 440: ==3.11 is 3.11.0 */
		{"==3.11.2", "3.11.2", 1},
		{"!=3.11.*", "3.11.2", 0},
		{"!=3.12", "3.11.2", 1},
		{">3.11", "3.11.2", 1},
		{"<=3.11", "3.11.2", 0},
		{">=3", "3.11.2", 1},
		{"  >=3.8  ", "3.11.2", 1},
		/* Not read: the caller says nothing. */
		{"", "3.11.2", -1},
		{">=3.12a1", "3.11.2", -1},
		{"3.11", "3.11.2", -1},
		{">=3.11,", "3.11.2", -1},
		{">=*", "3.11.2", -1},
		{">=3.11.*", "3.11.2", -1},
		{"~=3", "3.11.2", -1},
		{">=1.2.3.4.5.6.7", "3.11.2", -1},
		{">=99999999999", "3.11.2", -1},
		{"=>3.11", "3.11.2", -1},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int got = project_python_satisfies(cases[i].spec, cases[i].version);
		if (got != cases[i].want)
			fail_msg("'%s' against %s: %d, expected %d", cases[i].spec, cases[i].version,
				 got, cases[i].want);
	}
	assert_int_equal(project_python_satisfies(NULL, "3.11.2"), -1);
}

static void test_read_notes_a_requires_python_that_excludes_the_embedded_one(void **state)
{
	(void)state;
	put("pyproject.toml", "{\"project\":{\"name\":\"pkg\",\"requires-python\":\">=99.0\"}}");
	put("src/entry.py", "");
	char err[512], *text = NULL;
	size_t len = 0;
	FILE *notes = open_memstream(&text, &len);
	assert_non_null(notes);
	struct project *p = project_read(dir, json_as_toml, notes, err, sizeof err);
	fclose(notes);
	if (!p)
		fail_msg("%s", err);
	project_free(p);
	assert_non_null(strstr(text, "requires-python '>=99.0' excludes the Python thaw embeds"));
	free(text);
}

/* --- storage and service bindings (bindings.c) --- */

static const char every_kind[] =
	"{\"name\": \"shop\", \"main\": \"app.py\", \"vars\": {\"GREETING\": \"hi\"},\n"
	" \"kv_namespaces\": [{\"binding\": \"KV\", \"id\": "
	"\"0f2ac74b498b48028cb68387c421e279\"},\n"
	"                     {\"binding\": \"CACHE\", \"preview_id\": \"local-cache\"}],\n"
	" \"d1_databases\": [{\"binding\": \"DB\", \"database_name\": \"shop_db\",\n"
	"                    \"database_id\": \"xxxx-yyyy\", \"migrations_dir\": "
	"\"./db/migrations/\"},\n"
	"                   {\"binding\": \"LOGS\", \"database_name\": \"logs\", "
	"\"migrations_table\": \"applied\"}],\n"
	" \"r2_buckets\": [{\"binding\": \"FILES\", \"bucket_name\": \"shop-files\", "
	"\"jurisdiction\": \"eu\"}],\n"
	" \"durable_objects\": {\"bindings\": [{\"name\": \"ROOMS\", \"class_name\": \"Room\"},\n"
	"                      {\"name\": \"REMOTE\", \"class_name\": \"Counter\", "
	"\"script_name\": \"counter\"}]},\n"
	" \"migrations\": [{\"tag\": \"v1\", \"new_classes\": [\"Chat\"], \"new_sqlite_classes\": "
	"[\"Old\"]},\n"
	"                {\"tag\": \"v2\", \"renamed_classes\": [{\"from\": \"Chat\", \"to\": "
	"\"Room\"}],\n"
	"                 \"deleted_classes\": [\"Old\"]}],\n"
	" \"queues\": {\"producers\": [{\"binding\": \"JOBS\", \"queue\": \"jobs\", "
	"\"delivery_delay\": 30}],\n"
	"            \"consumers\": [{\"queue\": \"jobs\", \"max_batch_size\": 100, "
	"\"dead_letter_queue\": \"jobs-dlq\",\n"
	"                           \"retry_delay\": 60, \"max_concurrency\": null},\n"
	"                          {\"queue\": \"mail\", \"max_batch_timeout\": 0, "
	"\"max_retries\": 0,\n"
	"                           \"max_concurrency\": 4}]},\n"
	" \"services\": [{\"binding\": \"AUTH\", \"service\": \"auth-worker\", \"entrypoint\": "
	"\"Verifier\"},\n"
	"              {\"binding\": \"SELF\", \"service\": \"shop\"}]}";

static void assert_round_trip(const struct project *p)
{
	char err[512];
	json_t *j = project_to_json(p);
	struct project *q = project_from_json(j, "/elsewhere", err, sizeof err);
	if (!q)
		fail_msg("the project's own JSON is refused: %s", err);
	json_t *k = project_to_json(q);
	if (!json_equal(j, k)) {
		char *a = json_dumps(j, JSON_SORT_KEYS), *b = json_dumps(k, JSON_SORT_KEYS);
		fail_msg("round trip changed the project:\n%s\n%s", a, b);
	}
	json_decref(j);
	json_decref(k);
	project_free(q);
}

static void test_bindings_every_kind_read_with_defaults(void **state)
{
	put("wrangler.jsonc", every_kind);
	put("app.py", "");
	char err[512];
	struct project *p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(p->nkv_namespaces, 2);
	assert_string_equal(p->kv_namespaces[0].binding, "KV");
	assert_string_equal(p->kv_namespaces[0].id, "0f2ac74b498b48028cb68387c421e279");
	assert_null(p->kv_namespaces[0].preview_id);
	assert_null(p->kv_namespaces[1].id);
	assert_string_equal(p->kv_namespaces[1].preview_id, "local-cache");

	assert_int_equal(p->nd1_databases, 2);
	assert_string_equal(p->d1_databases[0].database_name, "shop_db");
	assert_string_equal(p->d1_databases[0].database_id, "xxxx-yyyy");
	assert_string_equal(p->d1_databases[0].migrations_dir, "db/migrations");   /* normalised */
	assert_string_equal(p->d1_databases[0].migrations_table, "d1_migrations"); /* default */
	assert_string_equal(p->d1_databases[1].migrations_dir, "migrations");      /* default */
	assert_string_equal(p->d1_databases[1].migrations_table, "applied");
	assert_null(p->d1_databases[1].database_id);

	assert_int_equal(p->nr2_buckets, 1);
	assert_string_equal(p->r2_buckets[0].bucket_name, "shop-files");
	assert_string_equal(p->r2_buckets[0].jurisdiction, "eu");

	assert_int_equal(p->ndurable_objects, 2);
	assert_string_equal(p->durable_objects[0].name, "ROOMS");
	assert_string_equal(p->durable_objects[0].class_name, "Room");
	assert_null(p->durable_objects[0].script_name);
	assert_string_equal(p->durable_objects[1].script_name, "counter");
	assert_int_equal(p->nmigrations, 2);
	assert_string_equal(p->migrations[0].tag, "v1");
	assert_int_equal(p->migrations[0].nnew_classes, 1);
	assert_string_equal(p->migrations[0].new_sqlite_classes[0], "Old");
	assert_string_equal(p->migrations[1].renamed_classes[0].from, "Chat");
	assert_string_equal(p->migrations[1].renamed_classes[0].to, "Room");
	assert_string_equal(p->migrations[1].deleted_classes[0], "Old");

	assert_int_equal(p->nqueue_producers, 1);
	assert_int_equal(p->queue_producers[0].delivery_delay, 30);
	assert_int_equal(p->nqueue_consumers, 2);
	const struct project_queue_consumer *c = p->queue_consumers;
	assert_int_equal(c[0].max_batch_size, 100);
	assert_int_equal(c[0].max_batch_timeout, 5); /* defaults */
	assert_int_equal(c[0].max_retries, 3);
	assert_string_equal(c[0].dead_letter_queue, "jobs-dlq");
	assert_int_equal(c[0].retry_delay, 60);
	assert_int_equal(c[0].max_concurrency, -1); /* null: as many as needed */
	assert_int_equal(c[1].max_batch_size, 10);
	assert_int_equal(c[1].max_batch_timeout, 0);
	assert_int_equal(c[1].max_retries, 0);
	assert_int_equal(c[1].retry_delay, -1);
	assert_int_equal(c[1].max_concurrency, 4);
	assert_null(c[1].dead_letter_queue);

	assert_int_equal(p->nservices, 2);
	assert_string_equal(p->services[0].service, "auth-worker");
	assert_string_equal(p->services[0].entrypoint, "Verifier");
	assert_null(p->services[1].entrypoint);
	assert_int_equal(project_bindings_count(p), 2 + 2 + 1 + 2 + 1 + 2);

	/* The reader's answer carries the defaults: the host applies none. */
	json_t *j = project_to_json(p);
	json_t *d1 = json_array_get(json_object_get(j, "d1_databases"), 1);
	assert_string_equal(json_string_value(json_object_get(d1, "migrations_dir")), "migrations");
	json_t *consumer =
		json_array_get(json_object_get(json_object_get(j, "queues"), "consumers"), 1);
	assert_int_equal(json_integer_value(json_object_get(consumer, "max_batch_size")), 10);
	assert_null(json_object_get(consumer, "retry_delay"));
	json_decref(j);
	assert_round_trip(p);
	project_free(p);
}

static void test_bindings_pyproject_wins_list_by_list(void **state)
{
	put("wrangler.toml",
	    "{\"kv_namespaces\": [{\"binding\": \"FROM_WRANGLER\"}],"
	    " \"r2_buckets\": [{\"binding\": \"KEPT\", \"bucket_name\": \"kept\"}],"
	    " \"queues\": {\"producers\": [{\"binding\": \"Q\", \"queue\": \"q\"}],"
	    "            \"consumers\": [{\"queue\": \"q\"}]}}");
	put("pyproject.toml",
	    "{\"tool\": {\"thaw\": {\"kv_namespaces\": [{\"binding\": \"FROM_PYPROJECT\"}],"
	    " \"queues\": {\"consumers\": [{\"queue\": \"q\", \"max_retries\": 9}]}}}}");
	put("src/entry.py", "");
	char err[512];
	struct project *p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(p->nkv_namespaces, 1);
	assert_string_equal(p->kv_namespaces[0].binding, "FROM_PYPROJECT");
	assert_int_equal(p->nr2_buckets, 1);
	assert_int_equal(p->nqueue_producers, 1); /* queues.producers: wrangler's */
	assert_int_equal(p->nqueue_consumers, 1); /* queues.consumers: pyproject's */
	assert_int_equal(p->queue_consumers[0].max_retries, 9);
	project_free(p);

	/* An empty list in [tool.thaw] takes wrangler's away. */
	put("pyproject.toml", "{\"tool\": {\"thaw\": {\"r2_buckets\": []}}}");
	p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(p->nr2_buckets, 0);
	assert_round_trip(p);
	project_free(p);
}

/* A wrangler.jsonc (with app.py) refused with a message containing want. */
static void assert_refused(const char *jsonc, const char *want)
{
	char err[1024];
	put("wrangler.jsonc", jsonc);
	struct project *p = read_dir(err, sizeof err);
	if (p) {
		project_free(p);
		fail_msg("accepted: %s", jsonc);
	}
	if (!strstr(err, want))
		fail_msg("%s\nerror '%s' does not say '%s'", jsonc, err, want);
}

static void test_bindings_malformed_entries_are_refused_naming_file_and_key(void **state)
{
	put("app.py", "");
	static const struct {
		const char *jsonc, *want;
	} cases[] = {
		/* shapes */
		{"{\"main\":\"app.py\",\"kv_namespaces\":{\"binding\":\"KV\"}}",
		 "wrangler.jsonc: kv_namespaces must be a list of tables"},
		{"{\"main\":\"app.py\",\"kv_namespaces\":[\"KV\"]}",
		 "wrangler.jsonc: kv_namespaces[0] must be a table"},
		{"{\"main\":\"app.py\",\"kv_namespaces\":[{\"id\":\"x\"}]}",
		 "wrangler.jsonc: kv_namespaces[0].binding is required"},
		{"{\"main\":\"app.py\",\"kv_namespaces\":[{\"binding\":\"A\"},{\"binding\":\"my-"
		 "kv\"}]}",
		 "wrangler.jsonc: kv_namespaces[1].binding 'my-kv' is not valid"},
		{"{\"main\":\"app.py\",\"kv_namespaces\":[{\"binding\":\"9KV\"}]}",
		 "kv_namespaces[0].binding '9KV' is not valid"},
		{"{\"main\":\"app.py\",\"kv_namespaces\":[{\"binding\":7}]}",
		 "kv_namespaces[0].binding must be a string"},
		{"{\"main\":\"app.py\",\"kv_namespaces\":[{\"binding\":\"KV\",\"id\":\"<YOUR "
		 "ID>\"}]}",
		 "kv_namespaces[0].id '<YOUR ID>' is not valid"},
		{"{\"main\":\"app.py\",\"kv_namespaces\":[{\"binding\":\"KV\",\"preview_id\":\"a/"
		 "b\"}]}",
		 "kv_namespaces[0].preview_id"},
		/* D1 */
		{"{\"main\":\"app.py\",\"d1_databases\":[{\"binding\":\"DB\"}]}",
		 "d1_databases[0].database_name is required"},
		{"{\"main\":\"app.py\",\"d1_databases\":[{\"binding\":\"DB\",\"database_name\":"
		 "\"My DB\"}]}",
		 "d1_databases[0].database_name 'My DB' is not valid"},
		{"{\"main\":\"app.py\",\"d1_databases\":[{\"binding\":\"DB\",\"database_name\":"
		 "\"db\","
		 "\"migrations_dir\":\"../elsewhere\"}]}",
		 "d1_databases[0].migrations_dir '../elsewhere' must be a folder inside the "
		 "project"},
		{"{\"main\":\"app.py\",\"d1_databases\":[{\"binding\":\"DB\",\"database_name\":"
		 "\"db\","
		 "\"migrations_dir\":\"/etc\"}]}",
		 "d1_databases[0].migrations_dir '/etc' must be a folder inside the project"},
		{"{\"main\":\"app.py\",\"d1_databases\":[{\"binding\":\"DB\",\"database_name\":"
		 "\"db\","
		 "\"migrations_dir\":\"a/../../b\"}]}",
		 "migrations_dir 'a/../../b' must be a folder inside"},
		{"{\"main\":\"app.py\",\"d1_databases\":[{\"binding\":\"DB\",\"database_name\":"
		 "\"db\","
		 "\"migrations_table\":\"x; DROP TABLE y\"}]}",
		 "d1_databases[0].migrations_table 'x; DROP TABLE y' is not valid: an SQL table "
		 "name"},
		/* R2 */
		{"{\"main\":\"app.py\",\"r2_buckets\":[{\"binding\":\"B\",\"bucket_name\":\"ab\"}]"
		 "}",
		 "r2_buckets[0].bucket_name 'ab' is not valid: use 3-63"},
		{"{\"main\":\"app.py\",\"r2_buckets\":[{\"binding\":\"B\",\"bucket_name\":\"-abc\"}"
		 "]}",
		 "r2_buckets[0].bucket_name '-abc' is not valid"},
		{"{\"main\":\"app.py\",\"r2_buckets\":[{\"binding\":\"B\",\"bucket_name\":\"My_"
		 "Bucket\"}]}",
		 "r2_buckets[0].bucket_name 'My_Bucket' is not valid"},
		{"{\"main\":\"app.py\",\"r2_buckets\":[{\"binding\":\"B\",\"bucket_name\":\"abc\","
		 "\"jurisdiction\":\"us\"}]}",
		 "r2_buckets[0].jurisdiction 'us' is not valid: it is \"eu\" or \"fedramp\""},
		{"{\"main\":\"app.py\",\"r2_buckets\":[{\"binding\":\"B\"}]}",
		 "r2_buckets[0].bucket_name is required"},
		/* Durable Objects */
		{"{\"main\":\"app.py\",\"durable_objects\":[]}",
		 "wrangler.jsonc: 'durable_objects' must be a table"},
		{"{\"main\":\"app.py\",\"durable_objects\":{\"bindings\":[{\"name\":\"R\"}]}}",
		 "durable_objects.bindings[0].class_name is required"},
		{"{\"main\":\"app.py\",\"durable_objects\":{\"bindings\":[{\"name\":\"R\","
		 "\"class_name\":\"my.Room\"}]}}",
		 "durable_objects.bindings[0].class_name 'my.Room' is not valid"},
		{"{\"main\":\"app.py\",\"durable_objects\":{\"bindings\":[{\"name\":\"R\","
		 "\"class_name\":\"Room\",\"script_name\":\"Other Worker\"}]}}",
		 "durable_objects.bindings[0].script_name 'Other Worker' is not valid"},
		/* migrations */
		{"{\"main\":\"app.py\",\"migrations\":{\"tag\":\"v1\"}}",
		 "wrangler.jsonc: migrations must be a list of tables"},
		{"{\"main\":\"app.py\",\"migrations\":[{\"new_classes\":[\"A\"]}]}",
		 "migrations[0].tag is required"},
		{"{\"main\":\"app.py\",\"migrations\":[{\"tag\":\"v1\",\"new_classes\":\"A\"}]}",
		 "migrations[0].new_classes must be a list"},
		{"{\"main\":\"app.py\",\"migrations\":[{\"tag\":\"v1\",\"new_classes\":[\"A-B\"]}]"
		 "}",
		 "migrations[0].new_classes[0] must be a Python class name"},
		{"{\"main\":\"app.py\",\"migrations\":[{\"tag\":\"v1\"},{\"tag\":\"v1\"}]}",
		 "migrations[1].tag 'v1' is also migrations[0]'s"},
		{"{\"main\":\"app.py\",\"migrations\":[{\"tag\":\"v1\",\"new_classes\":[\"A\"]},"
		 "{\"tag\":\"v2\",\"new_sqlite_classes\":[\"A\"]}]}",
		 "migrations[1] (tag 'v2') creates class 'A', which an earlier migration"},
		{"{\"main\":\"app.py\",\"migrations\":[{\"tag\":\"v1\",\"renamed_classes\":"
		 "[{\"from\":\"A\",\"to\":\"B\"}]}]}",
		 "migrations[0] (tag 'v1') renames class 'A', which no earlier migration created"},
		{"{\"main\":\"app.py\",\"migrations\":[{\"tag\":\"v1\",\"new_classes\":[\"A\","
		 "\"B\"]},"
		 "{\"tag\":\"v2\",\"renamed_classes\":[{\"from\":\"A\",\"to\":\"B\"}]}]}",
		 "renames 'A' to 'B', which exists already"},
		{"{\"main\":\"app.py\",\"migrations\":[{\"tag\":\"v1\",\"renamed_classes\":[{"
		 "\"from\":\"A\"}]}]}",
		 "migrations[0].renamed_classes[0] must be {from = \"Old\", to = \"New\"}"},
		{"{\"main\":\"app.py\",\"migrations\":[{\"tag\":\"v1\",\"deleted_classes\":["
		 "\"Gone\"]}]}",
		 "migrations[0] (tag 'v1') deletes class 'Gone', which no earlier migration "
		 "created"},
		{"{\"main\":\"app.py\",\"migrations\":[{\"tag\":\"v1\",\"new_classes\":[\"A\"],"
		 "\"deleted_classes\":[\"A\"]},{\"tag\":\"v2\",\"deleted_classes\":[\"A\"]}]}",
		 "migrations[1] (tag 'v2') deletes class 'A'"},
		/* queues */
		{"{\"main\":\"app.py\",\"queues\":[]}", "wrangler.jsonc: 'queues' must be a table"},
		{"{\"main\":\"app.py\",\"queues\":{\"producers\":[{\"binding\":\"Q\"}]}}",
		 "queues.producers[0].queue is required"},
		{"{\"main\":\"app.py\",\"queues\":{\"producers\":[{\"binding\":\"Q\",\"queue\":"
		 "\"Jobs\"}]}}",
		 "queues.producers[0].queue 'Jobs' is not valid"},
		{"{\"main\":\"app.py\",\"queues\":{\"producers\":[{\"binding\":\"Q\",\"queue\":"
		 "\"q\","
		 "\"delivery_delay\":86401}]}}",
		 "queues.producers[0].delivery_delay must be a whole number from 0 to 43200"},
		{"{\"main\":\"app.py\",\"queues\":{\"consumers\":[{\"queue\":\"q\",\"max_batch_"
		 "size\":0}]}}",
		 "queues.consumers[0].max_batch_size must be a whole number from 1 to 100"},
		{"{\"main\":\"app.py\",\"queues\":{\"consumers\":[{\"queue\":\"q\",\"max_batch_"
		 "size\":101}]}}",
		 "max_batch_size must be a whole number from 1 to 100"},
		{"{\"main\":\"app.py\",\"queues\":{\"consumers\":[{\"queue\":\"q\",\"max_batch_"
		 "size\":\"10\"}]}}",
		 "max_batch_size must be a whole number"},
		{"{\"main\":\"app.py\",\"queues\":{\"consumers\":[{\"queue\":\"q\",\"max_batch_"
		 "timeout\":0.5}]}}",
		 "queues.consumers[0].max_batch_timeout must be a whole number from 0 to 60"},
		{"{\"main\":\"app.py\",\"queues\":{\"consumers\":[{\"queue\":\"q\",\"max_batch_"
		 "timeout\":61}]}}",
		 "max_batch_timeout must be a whole number from 0 to 60"},
		{"{\"main\":\"app.py\",\"queues\":{\"consumers\":[{\"queue\":\"q\",\"max_retries\":"
		 "101}]}}",
		 "queues.consumers[0].max_retries must be a whole number from 0 to 100"},
		{"{\"main\":\"app.py\",\"queues\":{\"consumers\":[{\"queue\":\"q\",\"max_retries\":"
		 "true}]}}",
		 "max_retries must be a whole number"},
		{"{\"main\":\"app.py\",\"queues\":{\"consumers\":[{\"queue\":\"q\",\"max_"
		 "concurrency\":0}]}}",
		 "max_concurrency must be a whole number from 1 to 250"},
		{"{\"main\":\"app.py\",\"queues\":{\"consumers\":[{\"queue\":\"q\",\"dead_letter_"
		 "queue\":\"q\"}]}}",
		 "queues.consumers[0].dead_letter_queue 'q' is the queue itself"},
		{"{\"main\":\"app.py\",\"queues\":{\"consumers\":[{\"queue\":\"q\"},{\"queue\":"
		 "\"q\"}]}}",
		 "queues.consumers[1] consumes 'q' as queues.consumers[0] does"},
		/* services */
		{"{\"main\":\"app.py\",\"services\":[{\"binding\":\"S\"}]}",
		 "services[0].service is required"},
		{"{\"main\":\"app.py\",\"services\":[{\"binding\":\"S\",\"service\":\"Auth\"}]}",
		 "services[0].service 'Auth' is not valid: a worker name"},
		{"{\"main\":\"app.py\",\"services\":[{\"binding\":\"S\",\"service\":\"auth\","
		 "\"entrypoint\":\"not a class\"}]}",
		 "services[0].entrypoint 'not a class' is not valid"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		assert_refused(cases[i].jsonc, cases[i].want);

	/* In [tool.thaw], the message names it. */
	remove_tree(dir);
	mkdir_p(dir, 0755);
	put("src/entry.py", "");
	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"kv_namespaces\":[{\"binding\":\"a b\"}]}}}");
	char err[512];
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "pyproject.toml [tool.thaw]: kv_namespaces[0].binding 'a b'"));
}

static void test_bindings_counts_are_bounded(void **state)
{
	put("app.py", "");
	struct buf {
		char *text;
		size_t len;
	} b = {0};
	FILE *f = open_memstream(&b.text, &b.len);
	fputs("{\"main\":\"app.py\",\"kv_namespaces\":[", f);
	for (int i = 0; i <= PROJECT_MAX_BINDINGS; i++)
		fprintf(f, "%s{\"binding\":\"KV%d\"}", i ? "," : "", i);
	fputs("]}", f);
	fclose(f);
	assert_refused(b.text, "kv_namespaces has 65 entries; at most 64");
	free(b.text);

	f = open_memstream(&b.text, &b.len);
	fputs("{\"main\":\"app.py\",\"migrations\":[", f);
	for (int i = 0; i <= PROJECT_MAX_MIGRATIONS; i++)
		fprintf(f, "%s{\"tag\":\"v%d\"}", i ? "," : "", i);
	fputs("]}", f);
	fclose(f);
	assert_refused(b.text, "migrations has 129 entries; at most 128");
	free(b.text);

	/* 64 of each kind is allowed. */
	f = open_memstream(&b.text, &b.len);
	fputs("{\"main\":\"app.py\",\"kv_namespaces\":[", f);
	for (int i = 0; i < PROJECT_MAX_BINDINGS; i++)
		fprintf(f, "%s{\"binding\":\"KV%d\"}", i ? "," : "", i);
	fputs("],\"services\":[", f);
	for (int i = 0; i < PROJECT_MAX_BINDINGS; i++)
		fprintf(f, "%s{\"binding\":\"S%d\",\"service\":\"s%d\"}", i ? "," : "", i, i);
	fputs("]}", f);
	fclose(f);
	put("wrangler.jsonc", b.text);
	free(b.text);
	char err[512];
	struct project *p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(project_bindings_count(p), 2 * PROJECT_MAX_BINDINGS);
	assert_round_trip(p);
	project_free(p);
}

static void test_bindings_names_collide_across_kinds_vars_and_assets(void **state)
{
	put("app.py", "");
	char pub[512];
	snprintf(pub, sizeof pub, "%s/public", dir);
	mkdir_p(pub, 0755);
	assert_refused("{\"main\":\"app.py\",\"kv_namespaces\":[{\"binding\":\"DB\"}],"
		       "\"d1_databases\":[{\"binding\":\"DB\",\"database_name\":\"db\"}]}",
		       "wrangler.jsonc: d1_databases[0] binding 'DB' is also kv_namespaces[0] "
		       "(wrangler.jsonc)");
	assert_refused("{\"main\":\"app.py\",\"kv_namespaces\":[{\"binding\":\"A\"},{\"binding\":"
		       "\"A\"}]}",
		       "kv_namespaces[1] binding 'A' is also kv_namespaces[0]");
	assert_refused("{\"main\":\"app.py\",\"durable_objects\":{\"bindings\":[{\"name\":\"X\","
		       "\"class_name\":\"X\",\"script_name\":\"other\"}]},"
		       "\"services\":[{\"binding\":\"X\",\"service\":\"other\"}]}",
		       "services[0] binding 'X' is also durable_objects.bindings[0]");
	assert_refused("{\"main\":\"app.py\",\"queues\":{\"producers\":[{\"binding\":\"A\","
		       "\"queue\":\"a\"},"
		       "{\"binding\":\"A\",\"queue\":\"b\"}]}}",
		       "queues.producers[1] binding 'A' is also queues.producers[0]");
	assert_refused("{\"main\":\"app.py\",\"vars\":{\"CACHE\":\"x\"},"
		       "\"kv_namespaces\":[{\"binding\":\"CACHE\"}]}",
		       "wrangler.jsonc: kv_namespaces[0].binding 'CACHE' has the name of a var "
		       "(vars.CACHE)");
	assert_refused("{\"main\":\"app.py\",\"vars\":{\"ROOMS\":1},\"durable_objects\":{"
		       "\"bindings\":"
		       "[{\"name\":\"ROOMS\",\"class_name\":\"Room\",\"script_name\":\"x\"}]}}",
		       "durable_objects.bindings[0].name 'ROOMS' has the name of a var");
	assert_refused("{\"main\":\"app.py\",\"assets\":{\"directory\":\"public\",\"binding\":"
		       "\"ASSETS\"},"
		       "\"r2_buckets\":[{\"binding\":\"ASSETS\",\"bucket_name\":\"abc\"}]}",
		       "r2_buckets[0] binding 'ASSETS' is also the assets binding");

	/* Across files: the message names each binding's own file. */
	put("wrangler.jsonc", "{\"main\":\"app.py\",\"kv_namespaces\":[{\"binding\":\"SAME\"}]}");
	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"services\":[{\"binding\":\"SAME\","
			      "\"service\":\"s\"}]}}}");
	char err[512];
	assert_null(read_dir(err, sizeof err));
	if (!strstr(err, "pyproject.toml [tool.thaw]: services[0] binding 'SAME' is also "
			 "kv_namespaces[0] (wrangler.jsonc)"))
		fail_msg("%s", err);
	/* A var from pyproject against a binding from wrangler. */
	put("pyproject.toml", "{\"tool\":{\"thaw\":{\"vars\":{\"SAME\":\"v\"}}}}");
	assert_null(read_dir(err, sizeof err));
	assert_non_null(strstr(err, "kv_namespaces[0].binding 'SAME' has the name of a var"));
}

static void test_bindings_unknown_keys_are_notes_not_errors(void **state)
{
	put("app.py", "");
	put("wrangler.jsonc",
	    "{\"main\":\"app.py\",\"kv_namespaces\":[{\"binding\":\"KV\",\"remote\":true}],"
	    "\"r2_buckets\":[{\"binding\":\"B\",\"bucket_name\":\"abc\",\"preview_bucket_name\":"
	    "\"x\"}],"
	    "\"durable_objects\":{\"bindings\":[{\"name\":\"R\",\"class_name\":\"Room\"}],"
	    "\"other\":1},"
	    "\"migrations\":[{\"tag\":\"v1\",\"new_sqlite_classes\":[\"Room\"],"
	    "\"transferred_classes\":[]}],"
	    "\"queues\":{\"consumers\":[{\"queue\":\"q\",\"type\":\"worker\"}]},"
	    "\"services\":[{\"binding\":\"S\",\"service\":\"s\",\"environment\":\"x\"}],"
	    "\"hyperdrive\":[]}");
	char err[512], *text = NULL;
	size_t len = 0;
	FILE *notes = open_memstream(&text, &len);
	struct project *p = project_read(dir, json_as_toml, notes, err, sizeof err);
	fclose(notes);
	if (!p)
		fail_msg("%s", err);
	project_free(p);
	const char *want[] = {
		"note: wrangler.jsonc: 'kv_namespaces[0].remote' is not used",
		"note: wrangler.jsonc: 'r2_buckets[0].preview_bucket_name' is not used",
		"note: wrangler.jsonc: 'durable_objects.other' is not used",
		"note: wrangler.jsonc: 'migrations[0].transferred_classes' is not used",
		"note: wrangler.jsonc: 'queues.consumers[0].type' is not used",
		"note: wrangler.jsonc: 'services[0].environment' is not used",
		"note: wrangler.jsonc: 'hyperdrive' is not supported", /* still ignored */
	};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++)
		if (!strstr(text, want[i]))
			fail_msg("notes do not say '%s':\n%s", want[i], text);
	/* Binding keys that are read are no longer "not supported". */
	assert_null(strstr(text, "'kv_namespaces' is not supported"));
	assert_null(strstr(text, "'migrations' is not supported"));
	assert_null(strstr(text, "'queues' is not supported"));
	free(text);

	/* A Durable Object class no migration creates: a note with the fix. */
	put("wrangler.jsonc",
	    "{\"main\":\"app.py\",\"durable_objects\":{\"bindings\":"
	    "[{\"name\":\"R\",\"class_name\":\"Room\"},"
	    "{\"name\":\"X\",\"class_name\":\"Ext\",\"script_name\":\"other\"}]}}");
	text = NULL;
	notes = open_memstream(&text, &len);
	p = project_read(dir, json_as_toml, notes, err, sizeof err);
	fclose(notes);
	if (!p)
		fail_msg("%s", err);
	project_free(p);
	assert_non_null(strstr(text, "durable_objects.bindings[0] uses class 'Room', which no "
				     "migration creates"));
	assert_null(strstr(text, "'Ext'")); /* another worker's class: its migrations */
	free(text);
}

static void test_bindings_migrations_dir_stays_inside_through_symlinks(void **state)
{
	put("app.py", "");
	char link[512];
	snprintf(link, sizeof link, "%s/out", dir);
	assert_int_equal(symlink("/tmp", link), 0);
	assert_refused("{\"main\":\"app.py\",\"d1_databases\":[{\"binding\":\"DB\",\"database_"
		       "name\":\"db\","
		       "\"migrations_dir\":\"out/migrations\"}]}",
		       "migrations_dir 'out/migrations' must be a folder inside the project");
	assert_refused("{\"main\":\"app.py\",\"d1_databases\":[{\"binding\":\"DB\",\"database_"
		       "name\":\"db\","
		       "\"migrations_dir\":\"out\"}]}",
		       "migrations_dir 'out' must be a folder inside the project");
	/* A folder that does not exist yet is fine (`thaw d1 migrations create` makes it). */
	put("wrangler.jsonc", "{\"main\":\"app.py\",\"d1_databases\":[{\"binding\":\"DB\","
			      "\"database_name\":\"db\",\"migrations_dir\":\"db/not/yet\"}]}");
	char err[512];
	struct project *p = read_dir(err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_string_equal(p->d1_databases[0].migrations_dir, "db/not/yet");
	project_free(p);
}

static void test_bindings_environments_do_not_inherit_bindings_but_do_migrations(void **state)
{
	put("app.py", "");
	put("wrangler.jsonc",
	    "{\"name\":\"shop\",\"main\":\"app.py\",\"kv_namespaces\":[{\"binding\":\"KV\",\"id\":"
	    "\"prod\"}],"
	    "\"queues\":{\"producers\":[{\"binding\":\"Q\",\"queue\":\"q\"}]},"
	    "\"durable_objects\":{\"bindings\":[{\"name\":\"ROOMS\",\"class_name\":\"Room\"}]},"
	    "\"migrations\":[{\"tag\":\"v1\",\"new_sqlite_classes\":[\"Room\"]}],"
	    "\"env\":{\"staging\":{\"kv_namespaces\":[{\"binding\":\"KV\",\"id\":\"staging\"}]},"
	    "        \"bare\":{}}}");
	char err[512];
	struct project *p = project_read_env(dir, "staging", json_as_toml, NULL, err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_string_equal(p->name, "shop-staging");
	assert_int_equal(p->nkv_namespaces, 1);
	assert_string_equal(p->kv_namespaces[0].id, "staging");
	assert_int_equal(p->nqueue_producers, 0); /* not inherited */
	assert_int_equal(p->ndurable_objects, 0); /* not inherited */
	assert_int_equal(p->nmigrations, 1);      /* inherited, as wrangler does */
	assert_round_trip(p);
	project_free(p);

	p = project_read_env(dir, "bare", json_as_toml, NULL, err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(project_bindings_count(p), 0);
	project_free(p);

	p = project_read_env(dir, NULL, json_as_toml, NULL, err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_string_equal(p->kv_namespaces[0].id, "prod");
	assert_int_equal(project_bindings_count(p), 3);
	project_free(p);

	/* The environment's own bindings are checked like the top level's. */
	put("wrangler.jsonc", "{\"main\":\"app.py\",\"env\":{\"bad\":{\"vars\":{\"KV\":1},"
			      "\"kv_namespaces\":[{\"binding\":\"KV\"}]}}}");
	assert_null(project_read_env(dir, "bad", json_as_toml, NULL, err, sizeof err));
	assert_non_null(strstr(err, "kv_namespaces[0].binding 'KV' has the name of a var"));
}

static void test_bindings_malformed_answers_are_refused(void **state)
{
	static const char head[] = "{\"ok\":true,\"project\":{\"name\":\"hi\",\"main\":\"a.py\","
				   "\"vars\":{\"V\":1},\"dependencies\":[],";
	static const struct {
		const char *members, *want;
	} cases[] = {
		{"\"kv_namespaces\":[{\"binding\":\"KV\",\"extra\":1}]",
		 "malformed project description: kv_namespaces[0].extra is not a key thaw knows"},
		{"\"kv_namespaces\":7",
		 "malformed project description: kv_namespaces must be a list"},
		{"\"kv_namespaces\":[{\"binding\":\"V\"}]", "has the name of a var"},
		{"\"d1_databases\":[{\"binding\":\"DB\",\"database_name\":\"db\",\"migrations_"
		 "dir\":\"./m\","
		 "\"migrations_table\":\"t\"}]",
		 "d1_databases[0].migrations_dir './m' must be a folder inside the project"},
		{"\"d1_databases\":[{\"binding\":\"DB\",\"database_name\":\"db\",\"migrations_"
		 "dir\":\"m/\","
		 "\"migrations_table\":\"t\"}]",
		 "migrations_dir 'm/' must be a folder"},
		{"\"d1_databases\":[{\"binding\":\"DB\",\"database_name\":\"db\",\"migrations_"
		 "dir\":\"../m\","
		 "\"migrations_table\":\"t\"}]",
		 "migrations_dir '../m' must be a folder"},
		{"\"durable_objects\":{\"bindings\":[],\"more\":[]}",
		 "malformed project description: durable_objects.more is not a key thaw knows"},
		{"\"queues\":{\"consumers\":[{\"queue\":\"q\",\"max_batch_size\":1000,"
		 "\"max_batch_timeout\":5,\"max_retries\":3}]}",
		 "queues.consumers[0].max_batch_size must be a whole number from 1 to 100"},
		{"\"migrations\":[{\"tag\":\"v1\",\"new_classes\":[\"A\"]},{\"tag\":\"v1\"}]",
		 "migrations[1].tag 'v1' is also migrations[0]'s"},
		{"\"migrations\":[{\"tag\":\"v1\",\"renamed_classes\":[{\"from\":\"A\",\"to\":"
		 "\"B\",\"x\":1}]}]",
		 "migrations[0].renamed_classes[0].x is not a key thaw knows"},
		{"\"services\":[{\"binding\":\"S\",\"service\":\"../x\"}]",
		 "services[0].service '../x'"},
		{"\"assets\":{\"directory\":\"p\",\"binding\":\"S\"},\"services\":[{\"binding\":"
		 "\"S\","
		 "\"service\":\"x\"}]",
		 "services[0] binding 'S' is also the assets binding"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char text[2048], err[512];
		snprintf(text, sizeof text, "%s%s}}", head, cases[i].members);
		struct project *p = parse(text, err, sizeof err);
		if (p)
			fail_msg("accepted: %s", text);
		if (!strstr(err, cases[i].want))
			fail_msg("%s: error '%s' does not say '%s'", text, err, cases[i].want);
	}
	/* Absent defaults in an answer are filled in the same way. */
	char text[1024], err[512];
	snprintf(text, sizeof text,
		 "%s\"d1_databases\":[{\"binding\":\"DB\",\"database_name\":\"db\"}]}}", head);
	struct project *p = parse(text, err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_string_equal(p->d1_databases[0].migrations_dir, "migrations");
	assert_string_equal(p->d1_databases[0].migrations_table, "d1_migrations");
	project_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_rule),
		cmocka_unit_test(test_main_rule),
		cmocka_unit_test(test_answer_round_trip),
		cmocka_unit_test(test_malformed_answers),
		cmocka_unit_test_setup_teardown(test_read_pyproject, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_wrangler_jsonc_without_toml, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_read_pyproject_over_wrangler, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_outbound, setup, teardown),
		cmocka_unit_test(test_requires_python),
		cmocka_unit_test_setup_teardown(
			test_read_notes_a_requires_python_that_excludes_the_embedded_one, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_bindings_every_kind_read_with_defaults, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bindings_pyproject_wins_list_by_list, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_bindings_malformed_entries_are_refused_naming_file_and_key, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_bindings_counts_are_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_bindings_names_collide_across_kinds_vars_and_assets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bindings_unknown_keys_are_notes_not_errors,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_bindings_migrations_dir_stays_inside_through_symlinks, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_bindings_environments_do_not_inherit_bindings_but_do_migrations, setup,
			teardown),
		cmocka_unit_test(test_bindings_malformed_answers_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
