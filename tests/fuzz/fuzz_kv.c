/*
 * libFuzzer target for the KV engine (src/state/kv.c): the input is a
 * sequence of operations (put, get, delete, list with paging, the clock
 * moving, sweep, reopen, and raw keys, prefixes and cursors taken from the
 * input) run against a fresh namespace file, beside a model of what it must
 * hold. Invariants:
 * - a put succeeds exactly when the model's rules say it must, and a refused
 *   one changes nothing; its refusal is KV_ERR_TYPE or KV_ERR_REQUEST with a
 *   message, never a storage error;
 * - what was put is got (value, metadata, expiration) until it is deleted,
 *   replaced or expired, also across a reopen;
 * - list, page by page through its cursors with any limit and prefix, gives
 *   exactly the model's live keys with that prefix, in byte order, each once,
 *   with their metadata and expiration; a cursor from the input is refused
 *   or, if empty, lists from the start;
 * - a sweep never deletes more than asked, and never a live key.
 * The file lives in /dev/shm when there is one, so fsyncs cost little.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "state/kv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

#define MAX_OPS 64
#define MAX_ENTRIES (8 + MAX_OPS)
#define RAW_KEY_MAX 24
#define VALUE_MAX 64
#define START_MS 1700000000123LL

struct input {
	const uint8_t *p;
	size_t n;
};

static unsigned take(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static size_t take_bytes(struct input *in, uint8_t *out, size_t max)
{
	size_t n = take(in) % (max + 1);
	if (n > in->n)
		n = in->n;
	memcpy(out, in->p, n);
	in->p += n;
	in->n -= n;
	return n;
}

struct entry {
	uint8_t key[RAW_KEY_MAX];
	size_t key_len;
	uint8_t value[VALUE_MAX];
	size_t value_len;
	const char *metadata; /* one of metadata_menu, or NULL */
	int64_t expiration;
};

struct model {
	struct entry e[MAX_ENTRIES];
	size_t n;
	int64_t now_ms;
};

static const char big_metadata[] =
	"\""
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"x"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"x"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"x"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"x"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"x"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"x"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"x"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"x"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"x"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"x"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	"x"
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\""; /* over 1024 bytes */

/* Metadata a put may carry, and whether it is valid. */
static const struct {
	const char *text;
	int valid;
} metadata_menu[] = {
	{NULL, 1}, {"{\"a\":1}", 1},  {"[1,\"\\u0000\",null]", 1}, {"{bad", 0},
	{"", 0},   {big_metadata, 0}, {"\"\xc3\xa9\"", 1},         {"\"\xff\"", 0},
};

static int64_t now_s(const struct model *m)
{
	return m->now_ms / 1000;
}

static int live(const struct model *m, const struct entry *e)
{
	return !e->expiration || e->expiration * 1000 > m->now_ms;
}

static struct entry *find(struct model *m, const uint8_t *key, size_t n)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->e[i].key_len == n && !memcmp(m->e[i].key, key, n))
			return &m->e[i];
	return NULL;
}

static void forget(struct model *m, struct entry *e)
{
	*e = m->e[--m->n];
}

static int key_valid(const uint8_t *k, size_t n)
{
	if (n == 0 || n > KV_KEY_MAX || (n == 1 && k[0] == '.') ||
	    (n == 2 && k[0] == '.' && k[1] == '.'))
		return 0;
	for (size_t i = 0; i < n;) {
		size_t len = utf8_decode(k + i, n - i, NULL);
		if (!len)
			return 0;
		i += len;
	}
	return 1;
}

static int bytes_compare(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}

static void check_get(struct kv_store *kv, struct model *m, const uint8_t *key, size_t n)
{
	char err[KV_ERR_LEN] = "";
	struct kv_entry got;
	int r = kv_get(kv, key, n, m->now_ms, &got, err, sizeof err);
	if (!key_valid(key, n)) {
		CHECK((r == KV_ERR_TYPE || r == KV_ERR_REQUEST) && err[0]);
		CHECK(!got.value && !got.metadata);
		return;
	}
	struct entry *e = find(m, key, n);
	if (!e || !live(m, e)) {
		CHECK(r == KV_MISSING);
		CHECK(!got.value && !got.metadata);
		return;
	}
	CHECK(r == KV_FOUND);
	CHECK(got.value && got.value_len == e->value_len);
	CHECK(!memcmp(got.value, e->value, e->value_len));
	CHECK(got.expiration == e->expiration);
	CHECK(!e->metadata == !got.metadata);
	if (e->metadata)
		CHECK(got.metadata_len == strlen(e->metadata) &&
		      !strcmp(got.metadata, e->metadata));
	kv_entry_dispose(&got);
}

static void do_put(struct kv_store *kv, struct model *m, struct input *in, const uint8_t *key,
		   size_t key_len)
{
	uint8_t value[VALUE_MAX];
	size_t value_len = take_bytes(in, value, VALUE_MAX);
	unsigned how = take(in);
	struct kv_put_options o = {0};
	int valid = key_valid(key, key_len);
	static const int64_t ttls[] = {0, 30, 59, 60, 61, 3600, -1};
	static const int64_t exps[] = {0, 59, 60, 61, 7200, -100000};
	int ttl_valid = 1;
	if (how & 1) {
		o.has_expiration_ttl = 1;
		o.expiration_ttl = ttls[take(in) % ARRAY_SIZE(ttls)];
		ttl_valid = o.expiration_ttl >= KV_EXPIRATION_TTL_MIN;
	}
	if (how & 2) {
		o.has_expiration = 1;
		o.expiration = now_s(m) + exps[take(in) % ARRAY_SIZE(exps)];
	}
	if (o.has_expiration_ttl)
		valid = valid && ttl_valid;
	else if (o.has_expiration)
		valid = valid && o.expiration - now_s(m) >= KV_EXPIRATION_TTL_MIN;
	unsigned mi = (how >> 2) % ARRAY_SIZE(metadata_menu);
	o.metadata = metadata_menu[mi].text;
	o.metadata_len = o.metadata ? strlen(o.metadata) : 0;
	valid = valid && metadata_menu[mi].valid;

	char err[KV_ERR_LEN] = "";
	int r = kv_put(kv, key, key_len, value, value_len, &o, m->now_ms, err, sizeof err);
	if (!valid) {
		CHECK((r == KV_ERR_TYPE || r == KV_ERR_REQUEST) && err[0]);
		return;
	}
	CHECK(r == 0);
	struct entry *e = find(m, key, key_len);
	if (!e) {
		CHECK(m->n < MAX_ENTRIES && key_len <= RAW_KEY_MAX);
		e = &m->e[m->n++];
		memcpy(e->key, key, key_len);
		e->key_len = key_len;
	}
	memcpy(e->value, value, value_len);
	e->value_len = value_len;
	e->metadata = o.metadata;
	e->expiration = o.has_expiration_ttl ? now_s(m) + o.expiration_ttl
			: o.has_expiration   ? o.expiration
					     : 0;
}

static void do_delete(struct kv_store *kv, struct model *m, const uint8_t *key, size_t n)
{
	char err[KV_ERR_LEN] = "";
	int r = kv_delete(kv, key, n, err, sizeof err);
	if (!key_valid(key, n)) {
		CHECK((r == KV_ERR_TYPE || r == KV_ERR_REQUEST) && err[0]);
		return;
	}
	CHECK(r == 0);
	struct entry *e = find(m, key, n);
	if (e)
		forget(m, e);
}

/* List every page with limit and prefix; compare with the model. */
static void check_list(struct kv_store *kv, struct model *m, const uint8_t *prefix,
		       size_t prefix_len, int64_t limit)
{
	/* The model's answer: live keys with the prefix, sorted. */
	const struct entry *want[MAX_ENTRIES];
	size_t nwant = 0;
	for (size_t i = 0; i < m->n; i++) {
		const struct entry *e = &m->e[i];
		if (live(m, e) && e->key_len >= prefix_len &&
		    (!prefix_len || !memcmp(e->key, prefix, prefix_len)))
			want[nwant++] = e;
	}
	for (size_t i = 1; i < nwant; i++) /* insertion sort: a few dozen at most */
		for (size_t j = i; j > 0 && bytes_compare(want[j - 1]->key, want[j - 1]->key_len,
							  want[j]->key, want[j]->key_len) > 0;
		     j--) {
			const struct entry *t = want[j];
			want[j] = want[j - 1];
			want[j - 1] = t;
		}

	size_t seen = 0;
	char *cursor = NULL;
	for (int pages = 0;; pages++) {
		CHECK(pages <= MAX_ENTRIES + 1);
		struct kv_list_options o = {.prefix = prefix,
					    .prefix_len = prefix_len,
					    .limit = limit,
					    .cursor = cursor,
					    .cursor_len = cursor ? strlen(cursor) : 0};
		struct kv_list l;
		char err[KV_ERR_LEN] = "";
		int r = kv_list(kv, &o, m->now_ms, &l, err, sizeof err);
		free(cursor);
		cursor = NULL;
		CHECK(r == 0);
		CHECK(l.count <= (size_t)limit);
		for (size_t i = 0; i < l.count; i++) {
			const struct kv_list_key *k = &l.keys[i];
			CHECK(seen < nwant);
			const struct entry *e = want[seen++];
			CHECK(k->name_len == e->key_len && !memcmp(k->name, e->key, e->key_len));
			CHECK(k->name[k->name_len] == 0);
			CHECK(k->expiration == e->expiration);
			CHECK(!k->metadata == !e->metadata);
			if (e->metadata)
				CHECK(!strcmp(k->metadata, e->metadata));
		}
		if (l.list_complete) {
			CHECK(!l.cursor);
			kv_list_dispose(&l);
			break;
		}
		CHECK(l.cursor && l.count == (size_t)limit);
		cursor = xstrdup(l.cursor);
		kv_list_dispose(&l);
	}
	CHECK(seen == nwant);
}

static void check_raw_cursor(struct kv_store *kv, struct model *m, struct input *in)
{
	uint8_t raw[64];
	size_t n = take_bytes(in, raw, sizeof raw);
	struct kv_list_options o = {.cursor = (const char *)raw, .cursor_len = n, .limit = 3};
	struct kv_list l;
	char err[KV_ERR_LEN] = "";
	int r = kv_list(kv, &o, m->now_ms, &l, err, sizeof err);
	if (n == 0) {
		CHECK(r == 0);
		kv_list_dispose(&l);
		return;
	}
	/* A forged cursor has a 2^-64 chance; a shorter one none. */
	CHECK(r == KV_ERR_REQUEST && !strcmp(err, "KV GET failed: 400 Invalid cursor."));
	CHECK(!l.keys && !l.cursor);
}

static void do_sweep(struct kv_store *kv, struct model *m, unsigned max_rows)
{
	char err[KV_ERR_LEN] = "";
	int deleted = -1;
	CHECK(kv_sweep(kv, m->now_ms, (int)max_rows, &deleted, err, sizeof err) == 0);
	CHECK(deleted >= 0 && deleted <= (int)max_rows);
	/* What it deleted was expired: the model drops those rows too, and
	 * every live key must still be there (checked by the next get/list). */
	for (size_t i = 0; i < m->n;)
		if (!live(m, &m->e[i]))
			forget(m, &m->e[i]);
		else
			i++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	char dir[64], path[96];
	snprintf(dir, sizeof dir, "%s/thaw-fuzz-kv-XXXXXX", base);
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof path, "%s/ns.sqlite", dir);
	char err[KV_ERR_LEN];
	struct kv_store *kv = kv_open(path, err, sizeof err);
	CHECK(kv != NULL);
	static struct model m; /* large; reset for every input */
	memset(&m, 0, sizeof m);
	m.now_ms = START_MS;

	struct input in = {data, size};
	for (int ops = 0; ops < MAX_OPS && in.n; ops++) {
		unsigned op = take(&in);
		uint8_t key[RAW_KEY_MAX];
		size_t key_len;
		if (op & 0x80) { /* raw key bytes from the input */
			key_len = take_bytes(&in, key, RAW_KEY_MAX);
		} else { /* one of a few names, so that operations meet */
			key_len = (size_t)snprintf((char *)key, sizeof key, "k%u", (op >> 4) & 7);
		}
		switch (op & 15) {
		case 0:
		case 1:
		case 2:
			do_put(kv, &m, &in, key, key_len);
			break;
		case 3:
		case 4:
			check_get(kv, &m, key, key_len);
			break;
		case 5:
			do_delete(kv, &m, key, key_len);
			break;
		case 6:
		case 7: {
			/* the prefix: none, "k", or the key's first bytes */
			unsigned which = take(&in);
			size_t plen = which % 3 == 0 ? 0 : which % 3 == 1 ? 1 : key_len;
			check_list(kv, &m, key, plen, 1 + take(&in) % 5);
			break;
		}
		case 8:
			m.now_ms += (int64_t)take(&in) * 997;
			break;
		case 9:
			do_sweep(kv, &m, 1 + take(&in) % 4);
			break;
		case 10:
			kv_close(kv);
			kv = kv_open(path, err, sizeof err);
			CHECK(kv != NULL);
			break;
		case 11:
			check_raw_cursor(kv, &m, &in);
			break;
		default: /* every key the model knows, one by one */
			for (size_t i = 0; i < m.n; i++)
				check_get(kv, &m, m.e[i].key, m.e[i].key_len);
			break;
		}
	}
	check_list(kv, &m, NULL, 0, KV_LIST_LIMIT_MAX);
	kv_close(kv);
	char file[128];
	const char *suffixes[] = {"", "-wal", "-shm"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(file, sizeof file, "%s%s", path, suffixes[i]);
		unlink(file);
	}
	rmdir(dir);
	return 0;
}
