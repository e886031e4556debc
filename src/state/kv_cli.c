/*
 * `thaw kv key ...` on one namespace file (usage and output in kv_cli.h).
 * Options are parsed by hand, not with getopt, so that nothing here keeps
 * state between calls (tests call it many times in one process). What a
 * store holds came from a worker: it is written as JSON with every
 * non-ASCII and control character escaped, except get's raw bytes, which
 * the user asked for as they are.
 */
#include "state/kv_cli.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "state/kv.h"

#define JSON_OUT (JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY)

static const char usage_text[] =
	"usage: thaw kv key put KEY (VALUE | --path FILE) [--ttl S] [--expiration T] "
	"[--metadata JSON]\n"
	"       thaw kv key get KEY [--text | --json]\n"
	"       thaw kv key list [--prefix P] [--limit N]\n"
	"       thaw kv key delete KEY\n";

struct cli {
	const char *verb;
	FILE *out, *errout;
	const struct kv_cli_backend *b;
};

__attribute__((format(printf, 2, 3))) static int fail(struct cli *c, const char *fmt, ...)
{
	fprintf(c->errout, "thaw kv key %s: ", c->verb);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(c->errout, fmt, ap);
	va_end(ap);
	fputc('\n', c->errout);
	return 1;
}

__attribute__((format(printf, 2, 3))) static int usage(struct cli *c, const char *fmt, ...)
{
	fprintf(c->errout, "thaw kv key %s: ", c->verb);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(c->errout, fmt, ap);
	va_end(ap);
	fprintf(c->errout, "\n%s", usage_text);
	return 2;
}

/* A whole decimal integer, optionally negative. 0 or -1. */
static int parse_int64(const char *s, int64_t *out)
{
	if (!*s)
		return -1;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || end == s)
		return -1;
	*out = v;
	return 0;
}

static int utf8_valid(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t len = utf8_decode(p + i, n - i, NULL);
		if (!len)
			return 0;
		i += len;
	}
	return 1;
}

/* Metadata as a JSON value for output (returns new): parsed, or as a string
 * when jansson cannot hold it (an integer beyond 64 bits), or null. */
static json_t *metadata_json(const char *m, size_t n)
{
	if (!m)
		return json_null();
	json_t *j = json_loadb(m, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	return j ? j : json_stringn(m, n);
}

/* Standard base64 (what other tools decode) of p, as a JSON string (returns new). */
static json_t *base64_json(const uint8_t *p, size_t n)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				     "0123456789+/";
	char *s = xmalloc((n + 2) / 3 * 4 + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		s[o++] = digits[v >> 18];
		s[o++] = digits[(v >> 12) & 63];
		s[o++] = i + 1 < n ? digits[(v >> 6) & 63] : '=';
		s[o++] = i + 2 < n ? digits[v & 63] : '=';
	}
	s[o] = 0;
	json_t *j = json_string(s);
	free(s);
	return j;
}

static int print_json(struct cli *c, json_t *j)
{
	char *line = json_dumps(j, JSON_OUT);
	json_decref(j);
	if (!line)
		fatal("out of memory");
	fprintf(c->out, "%s\n", line);
	free(line);
	return 0;
}

static int engine_fail(struct cli *c, const char *err)
{
	return fail(c, "%s", err);
}

/* The local backend: the store at a path, opened at the first operation
 * (once the arguments are good, so a typo makes no file). */
struct local {
	const char *path;
	struct kv_store *kv;
};

static struct kv_store *local_store(struct local *l, char *err, size_t errlen)
{
	if (!l->kv)
		l->kv = kv_open(l->path, err, errlen);
	return l->kv;
}

static int local_get(void *arg, const void *key, size_t key_len, int64_t now_ms,
		     struct kv_entry *out, char *err, size_t errlen)
{
	struct kv_store *kv = local_store(arg, err, errlen);
	return kv ? kv_get(kv, key, key_len, now_ms, out, err, errlen) : KV_ERR;
}

static int local_put(void *arg, const void *key, size_t key_len, const void *value,
		     size_t value_len, const struct kv_put_options *o, int64_t now_ms, char *err,
		     size_t errlen)
{
	struct kv_store *kv = local_store(arg, err, errlen);
	return kv ? kv_put(kv, key, key_len, value, value_len, o, now_ms, err, errlen) : KV_ERR;
}

static int local_delete(void *arg, const void *key, size_t key_len, char *err, size_t errlen)
{
	struct kv_store *kv = local_store(arg, err, errlen);
	return kv ? kv_delete(kv, key, key_len, err, errlen) : KV_ERR;
}

static int local_list(void *arg, const struct kv_list_options *o, int64_t now_ms,
		      struct kv_list *out, char *err, size_t errlen)
{
	struct kv_store *kv = local_store(arg, err, errlen);
	return kv ? kv_list(kv, o, now_ms, out, err, errlen) : KV_ERR;
}

static int cmd_put(struct cli *c, int argc, char **argv, int64_t now_ms)
{
	const char *key = NULL, *value = NULL, *path = NULL;
	struct kv_put_options o = {0};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--path") || !strcmp(a, "--ttl") || !strcmp(a, "--expiration") ||
		    !strcmp(a, "--metadata")) {
			if (!next)
				return usage(c, "%s needs a value", a);
			i++;
			if (!strcmp(a, "--path")) {
				path = next;
			} else if (!strcmp(a, "--metadata")) {
				o.metadata = next;
				o.metadata_len = strlen(next);
			} else if (!strcmp(a, "--ttl")) {
				if (parse_int64(next, &o.expiration_ttl) < 0)
					return usage(c, "--ttl needs a whole number of seconds");
				o.has_expiration_ttl = 1;
			} else {
				if (parse_int64(next, &o.expiration) < 0)
					return usage(c,
						     "--expiration needs seconds since the epoch");
				o.has_expiration = 1;
			}
		} else if (!strncmp(a, "--", 2)) {
			return usage(c, "unknown option %s", a);
		} else if (!key) {
			key = a;
		} else if (!value) {
			value = a;
		} else {
			return usage(c, "too many arguments");
		}
	}
	if (!key)
		return usage(c, "a KEY is needed");
	if (!value == !path)
		return usage(c, "give the value either as an argument or with --path FILE");

	char err[KV_ERR_LEN];
	char *data = NULL;
	size_t len;
	if (path) {
		data = read_file(path, KV_VALUE_MAX, &len);
		if (!data) {
			struct stat st;
			if (errno == EFBIG && stat(path, &st) == 0)
				return fail(c,
					    "KV PUT failed: 413 Value length of %lld exceeds "
					    "limit of %d.",
					    (long long)st.st_size, KV_VALUE_MAX);
			return fail(c, "%s: %s", path,
				    errno == EINVAL ? "not a regular file" : strerror(errno));
		}
	} else {
		len = strlen(value);
	}
	int r = c->b->put(c->b->arg, key, strlen(key), data ? data : value, len, &o, now_ms, err,
			  sizeof err);
	free(data);
	return r < 0 ? engine_fail(c, err) : 0;
}

static int cmd_get(struct cli *c, int argc, char **argv, int64_t now_ms)
{
	const char *key = NULL;
	int text = 0, json = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--text"))
			text = 1;
		else if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strncmp(argv[i], "--", 2))
			return usage(c, "unknown option %s", argv[i]);
		else if (!key)
			key = argv[i];
		else
			return usage(c, "too many arguments");
	}
	if (!key)
		return usage(c, "a KEY is needed");
	if (text && json)
		return usage(c, "--text and --json do not go together");

	char err[KV_ERR_LEN];
	struct kv_entry e;
	int r = c->b->get(c->b->arg, key, strlen(key), now_ms, &e, err, sizeof err);
	if (r < 0)
		return engine_fail(c, err);
	if (r == KV_MISSING)
		return fail(c, "not found");
	int utf8 = utf8_valid(e.value, e.value_len);
	int status = 0;
	if (json) {
		json_t *j = json_pack("{s:s%}", "key", key, strlen(key));
		if (!j)
			fatal("out of memory");
		if (utf8)
			json_object_set_new(j, "value",
					    json_stringn((const char *)e.value, e.value_len));
		else
			json_object_set_new(j, "value_base64", base64_json(e.value, e.value_len));
		json_object_set_new(j, "metadata", metadata_json(e.metadata, e.metadata_len));
		json_object_set_new(j, "expiration",
				    e.expiration ? json_integer(e.expiration) : json_null());
		print_json(c, j);
	} else if (text && !utf8) {
		status = fail(c, "the value is not UTF-8 text; leave out --text for its bytes");
	} else if (e.value_len && fwrite(e.value, 1, e.value_len, c->out) != e.value_len) {
		status = fail(c, "writing the value: %s", strerror(errno));
	}
	kv_entry_dispose(&e);
	return status;
}

static int cmd_list(struct cli *c, int argc, char **argv, int64_t now_ms)
{
	const char *prefix = NULL;
	int64_t limit = 0; /* 0: all */
	for (int i = 1; i < argc; i++) {
		const char *next = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(argv[i], "--prefix")) {
			if (!next)
				return usage(c, "--prefix needs a value");
			prefix = next;
			i++;
		} else if (!strcmp(argv[i], "--limit")) {
			if (!next || parse_int64(next, &limit) < 0 || limit < 1)
				return usage(c, "--limit needs a number of keys, 1 or more");
			i++;
		} else {
			return usage(c, "unknown argument %s", argv[i]);
		}
	}

	char err[KV_ERR_LEN];
	char *cursor = NULL;
	int64_t printed = 0;
	int status = 0;
	for (;;) {
		struct kv_list_options o = {
			.prefix = prefix,
			.prefix_len = prefix ? strlen(prefix) : 0,
			.limit = limit && limit - printed < KV_LIST_LIMIT_MAX ? limit - printed : 0,
			.cursor = cursor,
			.cursor_len = cursor ? strlen(cursor) : 0,
		};
		struct kv_list page;
		int r = c->b->list(c->b->arg, &o, now_ms, &page, err, sizeof err);
		free(cursor);
		cursor = NULL;
		if (r < 0) {
			status = engine_fail(c, err);
			break;
		}
		for (size_t i = 0; i < page.count; i++) {
			const struct kv_list_key *k = &page.keys[i];
			json_t *j = json_pack("{s:s%}", "name", (const char *)k->name, k->name_len);
			if (!j)
				fatal("out of memory");
			if (k->expiration)
				json_object_set_new(j, "expiration", json_integer(k->expiration));
			if (k->metadata)
				json_object_set_new(j, "metadata",
						    metadata_json(k->metadata, k->metadata_len));
			print_json(c, j);
		}
		printed += (int64_t)page.count;
		int more = !page.list_complete && (!limit || printed < limit);
		if (more)
			cursor = xstrdup(page.cursor);
		kv_list_dispose(&page);
		if (!more)
			break;
	}
	return status;
}

static int cmd_delete(struct cli *c, int argc, char **argv)
{
	if (argc != 2 || !strncmp(argv[1], "--", 2))
		return usage(c, "delete takes one KEY");
	char err[KV_ERR_LEN];
	int r = c->b->del(c->b->arg, argv[1], strlen(argv[1]), err, sizeof err);
	return r < 0 ? engine_fail(c, err) : 0;
}

int kv_cli_with(int argc, char **argv, const struct kv_cli_backend *b, int64_t now_ms, FILE *out,
		FILE *errout)
{
	struct cli c = {.verb = argc > 0 ? argv[0] : "", .out = out, .errout = errout, .b = b};
	if (argc < 1) {
		fputs(usage_text, errout);
		return 2;
	}
	if (strcmp(c.verb, "put") && strcmp(c.verb, "get") && strcmp(c.verb, "list") &&
	    strcmp(c.verb, "delete")) {
		fprintf(errout, "thaw kv key: unknown command '%s'\n%s", c.verb, usage_text);
		return 2;
	}
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage_text, out);
		return 0;
	}
	int status;
	if (!strcmp(c.verb, "put"))
		status = cmd_put(&c, argc, argv, now_ms);
	else if (!strcmp(c.verb, "get"))
		status = cmd_get(&c, argc, argv, now_ms);
	else if (!strcmp(c.verb, "list"))
		status = cmd_list(&c, argc, argv, now_ms);
	else
		status = cmd_delete(&c, argc, argv);
	if (fflush(out) != 0 && status == 0)
		status = fail(&c, "writing the output: %s", strerror(errno));
	return status;
}

int kv_cli_run(int argc, char **argv, const char *store_path, int64_t now_ms, FILE *out,
	       FILE *errout)
{
	struct local l = {.path = store_path};
	const struct kv_cli_backend b = {
		.arg = &l,
		.get = local_get,
		.put = local_put,
		.del = local_delete,
		.list = local_list,
	};
	int status = kv_cli_with(argc, argv, &b, now_ms, out, errout);
	kv_close(l.kv);
	return status;
}

int kv_cli(int argc, char **argv, const char *store_path)
{
	return kv_cli_run(argc, argv, store_path, wall_ms(), stdout, stderr);
}
