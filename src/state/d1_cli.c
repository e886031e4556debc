/*
 * `thaw d1 execute` and `thaw d1 migrations` (see d1_cli.h): argument
 * parsing and wrangler-like output over the engine in d1.c.
 *
 * Everything printed that came from a database or a file (values, names,
 * error texts quoting SQL) goes through cell_text, which replaces control
 * characters: a value must not be able to drive the user's terminal.
 *
 * Blocks on the database for as long as the SQL runs (no time limit here: a
 * large import is the point of --file).
 */
#include "state/d1_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "state/d1.h"

#define CELL_MAX 256 /* bytes of a value shown in a table cell */

/* Printable text for a value: strings as they are, other values as JSON,
 * control characters and invalid UTF-8 replaced by '?', long values cut.
 * Returns new. */
static char *cell_text(json_t *v)
{
	char *raw;
	if (json_is_string(v))
		raw = xstrdup(json_string_value(v));
	else if (json_is_null(v))
		raw = xstrdup("null");
	else
		raw = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!raw)
		fatal("out of memory");
	size_t n = strlen(raw), o = 0;
	char *out = xmalloc(n + 4);
	const unsigned char *p = (const unsigned char *)raw;
	for (size_t i = 0; i < n && o < CELL_MAX;) {
		size_t len = utf8_decode(p + i, n - i, NULL);
		uint32_t cp = 0;
		if (len)
			utf8_decode(p + i, n - i, &cp);
		if (!len || cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
			out[o++] = '?';
			i += len ? len : 1;
			continue;
		}
		memcpy(out + o, p + i, len);
		o += len;
		i += len;
	}
	if (o >= CELL_MAX && o < n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = 0;
	free(raw);
	return out;
}

/* Display width: one column per code point, two for the emoji and symbols
 * the tables print (wide CJK characters are rare in SQL values; a
 * misaligned border is the worst that happens). */
static size_t width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), w = 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp = 0;
		size_t len = utf8_decode(p + i, n - i, &cp);
		if (!len)
			len = 1;
		w += (cp >= 0x2600 && cp < 0x27c0) || cp >= 0x1f000 ? 2 : 1;
		i += len;
	}
	return w;
}

static void rule(const size_t *widths, size_t n, const char *left, const char *mid,
		 const char *right)
{
	fputs(left, stdout);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < widths[i] + 2; k++)
			fputs("─", stdout);
		fputs(i + 1 < n ? mid : right, stdout);
	}
	fputc('\n', stdout);
}

static void row_print(char **cells, const size_t *widths, size_t n)
{
	fputs("│", stdout);
	for (size_t i = 0; i < n; i++)
		printf(" %s%*s │", cells[i], (int)(widths[i] - width(cells[i])), "");
	fputc('\n', stdout);
}

/* A box table of header (array of names) and rows (arrays of values). */
static void table_print(json_t *header, json_t *rows)
{
	size_t n = json_array_size(header), nrows = json_array_size(rows);
	if (!n)
		return;
	char **cells = xcalloc((nrows + 1) * n, sizeof *cells);
	size_t *widths = xcalloc(n, sizeof *widths);
	for (size_t r = 0; r <= nrows; r++) {
		json_t *row = r ? json_array_get(rows, r - 1) : header;
		for (size_t c = 0; c < n; c++) {
			char *t = cell_text(json_array_get(row, c));
			cells[r * n + c] = t;
			if (width(t) > widths[c])
				widths[c] = width(t);
		}
	}
	rule(widths, n, "┌", "┬", "┐");
	row_print(cells, widths, n);
	rule(widths, n, "├", "┼", "┤");
	for (size_t r = 1; r <= nrows; r++)
		row_print(cells + r * n, widths, n);
	rule(widths, n, "└", "┴", "┘");
	for (size_t i = 0; i < (nrows + 1) * n; i++)
		free(cells[i]);
	free(cells);
	free(widths);
}

/* A D1 result's rows (objects) as a table. */
static void result_print(json_t *result)
{
	json_t *rows = json_object_get(result, "results");
	json_t *first = json_array_get(rows, 0);
	if (!json_is_object(first))
		return;
	json_t *header = json_array(), *values = json_array();
	const char *key;
	json_t *v;
	json_object_foreach(first, key, v) {
		json_array_append_new(header, json_string(key));
	}
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row) {
		json_t *line = json_array();
		json_object_foreach(row, key, v) {
			json_array_append(line, v);
		}
		json_array_append_new(values, line);
	}
	table_print(header, values);
	json_decref(header);
	json_decref(values);
}

static int fail(int json, const char *message)
{
	json_t *text = json_string(message);
	if (!text)
		text = json_string("(the error message is not valid UTF-8)");
	char *safe = cell_text(text);
	if (json) {
		json_t *j = json_pack("{s:{s:s}}", "error", "text", safe);
		char *out = json_dumps(j, JSON_INDENT(2));
		printf("%s\n", out ? out : "{}");
		free(out);
		json_decref(j);
	} else {
		fprintf(stderr, "✘ [ERROR] %s\n", safe);
	}
	free(safe);
	json_decref(text);
	return 1;
}

static int usage(void)
{
	fputs("usage: thaw d1 execute DB (--command SQL | --file FILE) [--json]\n"
	      "       thaw d1 migrations list|apply DB\n"
	      "       thaw d1 migrations create DB NAME\n",
	      stderr);
	return 2;
}

/* The local backend: the database file, opened at the first operation. */
struct local {
	const char *path;
	struct d1_db *db;
};

static struct d1_db *local_db(struct local *l, char *err, size_t errlen)
{
	if (!l->db) {
		struct d1_options opt = {.timeout_ms = -1};
		l->db = d1_open(l->path, &opt, err, errlen);
	}
	return l->db;
}

static json_t *local_execute(void *arg, const char *sql, const char *file, char *err,
			     size_t errlen)
{
	struct d1_db *d = local_db(arg, err, errlen);
	if (!d)
		return NULL;
	return sql ? d1_execute(d, sql, err, errlen) : d1_execute_file(d, file, err, errlen);
}

static json_t *local_list(void *arg, const char *dir, const char *table, char *err,
			  size_t errlen)
{
	struct d1_db *d = local_db(arg, err, errlen);
	return d ? d1_migrations_list(d, dir, table, err, errlen) : NULL;
}

static int local_apply(void *arg, const char *dir, const char *table, json_t **applied, char *err,
		       size_t errlen)
{
	struct d1_db *d = local_db(arg, err, errlen);
	if (!d) {
		*applied = json_array();
		return -1;
	}
	return d1_migrations_apply(d, dir, table, applied, err, errlen);
}

static int execute(int argc, char **argv, const struct d1_cli_backend *b)
{
	const char *command = NULL, *file = NULL;
	int json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--command") && i + 1 < argc)
			command = argv[++i];
		else if (!strncmp(argv[i], "--command=", 10))
			command = argv[i] + 10;
		else if (!strcmp(argv[i], "--file") && i + 1 < argc)
			file = argv[++i];
		else if (!strncmp(argv[i], "--file=", 7))
			file = argv[i] + 7;
		else
			return usage();
	}
	if (!command == !file) {
		fputs("thaw d1 execute: give either --command SQL or --file FILE\n", stderr);
		return 2;
	}
	char err[2048];
	uint64_t t0 = now_ns();
	json_t *results = b->execute(b->arg, command, file, err, sizeof err);
	double ms = ns_to_ms(now_ns() - t0);
	if (!results)
		return fail(json, err);
	if (json) {
		char *out = json_dumps(results, JSON_INDENT(2));
		printf("%s\n", out ? out : "[]");
		free(out);
	} else {
		json_t *name = json_string(b->name);
		char *safe = cell_text(name);
		printf("🌀 Executing on %s database %s:\n", b->where, safe);
		printf("🚣 %zu command%s executed successfully in %.0f ms.\n",
		       json_array_size(results), json_array_size(results) == 1 ? "" : "s", ms);
		free(safe);
		json_decref(name);
		size_t i;
		json_t *r;
		json_array_foreach(results, i, r) {
			result_print(r);
		}
	}
	json_decref(results);
	return 0;
}

/* A one-column table of names, with a status column when statuses is set. */
static void names_print(json_t *names, const char *status_ok, json_t *failed_name)
{
	json_t *header = status_ok ? json_pack("[s,s]", "Name", "Status")
				   : json_pack("[s]", "Name");
	json_t *rows = json_array();
	size_t i;
	json_t *n;
	json_array_foreach(names, i, n) {
		json_t *row = json_array();
		json_array_append(row, n);
		if (status_ok)
			json_array_append_new(row, json_string(status_ok));
		json_array_append_new(rows, row);
	}
	if (failed_name)
		json_array_append_new(rows, json_pack("[O,s]", failed_name, "❌"));
	table_print(header, rows);
	json_decref(header);
	json_decref(rows);
}

static int migrations(int argc, char **argv, const struct d1_cli_backend *b, const char *dir,
		      const char *table)
{
	if (argc < 2)
		return usage();
	const char *verb = argv[1];
	char err[2048];
	if (!strcmp(verb, "create")) {
		if (argc != 3)
			return usage();
		char path[4096];
		if (d1_migrations_create(dir, argv[2], path, sizeof path, err, sizeof err) < 0)
			return fail(0, err);
		const char *slash = strrchr(path, '/');
		printf("✅ Successfully created Migration '%s'!\n\n", slash ? slash + 1 : path);
		printf("The migration is available for editing here\n%s\n", path);
		return 0;
	}
	if (argc != 2 || (strcmp(verb, "list") && strcmp(verb, "apply")))
		return usage();
	int status = 0;
	json_t *state = b->migrations_list(b->arg, dir, table, err, sizeof err);
	json_t *pending = json_object_get(state, "pending");
	if (!state) {
		status = fail(0, err);
	} else if (json_array_size(pending) == 0) {
		printf("✅ No migrations to apply!\n");
	} else if (!strcmp(verb, "list")) {
		printf("Migrations to be applied:\n");
		names_print(pending, NULL, NULL);
	} else {
		printf("Migrations to be applied:\n");
		names_print(pending, NULL, NULL);
		json_t *applied = NULL;
		int r = b->migrations_apply(b->arg, dir, table, &applied, err, sizeof err);
		json_t *failed = r < 0 ? json_array_get(pending, json_array_size(applied)) : NULL;
		names_print(applied, "✅", failed);
		if (r < 0)
			status = fail(0, err);
		json_decref(applied);
	}
	json_decref(state);
	return status;
}

int d1_cli_with(int argc, char **argv, const struct d1_cli_backend *b, const char *migrations_dir,
		const char *migrations_table)
{
	if (argc < 1)
		return usage();
	if (!strcmp(argv[0], "execute"))
		return execute(argc, argv, b);
	if (!strcmp(argv[0], "migrations"))
		return migrations(argc, argv, b, migrations_dir ? migrations_dir : "migrations",
				  migrations_table);
	return usage();
}

int d1_cli(int argc, char **argv, const char *db_path, const char *migrations_dir,
	   const char *migrations_table)
{
	if (!db_path)
		return usage();
	struct local l = {.path = db_path};
	const struct d1_cli_backend b = {
		.arg = &l,
		.where = "local",
		.name = db_path,
		.execute = local_execute,
		.migrations_list = local_list,
		.migrations_apply = local_apply,
	};
	int status = d1_cli_with(argc, argv, &b, migrations_dir, migrations_table);
	d1_close(l.db);
	return status;
}
