/*
 * The R2 engine's parsers of what a worker sends (r2.h): conditions,
 * ranges, metadata, keys and complete()'s part list. Every byte is hostile:
 * JSON through jansson with a depth and size bound, every string length
 * checked before it is copied into a fixed buffer, every number range-
 * checked before it is converted. Pure: no store, no I/O (the fuzz target
 * fuzz_r2 drives all of them).
 */
#include "state/r2.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ARGS_JSON_MAX (64u * 1024u)

__attribute__((format(printf, 3, 4))) static int refuse(struct r2_err *err, int code,
							const char *fmt, ...)
{
	err->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof err->text, fmt, ap);
	va_end(ap);
	return R2_REFUSED;
}

static json_t *load_object(const char *json, size_t len)
{
	if (len > ARGS_JSON_MAX)
		return NULL;
	json_t *v = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
	if (v && !json_is_object(v)) {
		json_decref(v);
		return NULL;
	}
	return v;
}

static int utf8_ok(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = p[i];
		size_t len;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

int r2_key_check(const uint8_t *key, size_t len, struct r2_err *err)
{
	if (len == 0 || len > R2_KEY_MAX || !utf8_ok(key, len))
		return refuse(err, R2_E_INVALID_KEY, "The specified object name is not valid.");
	return R2_OK;
}

/* --- conditions --- */

static int etag_parse(const char *s, struct r2_etag_cond *out)
{
	memset(out, 0, sizeof *out);
	size_t n = strlen(s);
	if (n == 1 && s[0] == '*') {
		out->wildcard = 1;
		return 0;
	}
	if (n >= 2 && s[0] == 'W' && s[1] == '/') {
		out->weak = 1;
		s += 2;
		n -= 2;
	}
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s++;
		n -= 2;
	} else if (out->weak) {
		return -1;
	}
	if (n == 0 || n >= sizeof out->value || memchr(s, '"', n))
		return -1;
	memcpy(out->value, s, n);
	out->value[n] = 0;
	return 0;
}

/* A string, or an array of strings (or one string of comma-separated etags,
 * as in an If-Match header). */
static int etag_list(json_t *v, struct r2_etag_cond *list, unsigned *count)
{
	*count = 0;
	if (json_is_string(v)) {
		char *copy = strdup(json_string_value(v));
		if (!copy)
			return -1;
		int rc = 0;
		char *save = NULL;
		for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			while (*tok == ' ' || *tok == '\t')
				tok++;
			size_t l = strlen(tok);
			while (l && (tok[l - 1] == ' ' || tok[l - 1] == '\t'))
				tok[--l] = 0;
			if (*count == R2_ETAG_LIST_MAX || etag_parse(tok, &list[*count]) < 0) {
				rc = -1;
				break;
			}
			(*count)++;
		}
		free(copy);
		return rc == 0 && *count ? 0 : -1;
	}
	if (!json_is_array(v) || json_array_size(v) > R2_ETAG_LIST_MAX)
		return -1;
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e) {
		if (!json_is_string(e) || etag_parse(json_string_value(e), &list[*count]) < 0)
			return -1;
		(*count)++;
	}
	return 0;
}

/* The bound on a date in ms, either way: past any real upload time (a JS
 * Date ends at 8.64e15), and far enough from INT64's ends that nothing done
 * with it overflows. */
#define MS_BOUND 9000000000000000ll

static int ms_value(json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		/* Clamped, not refused: 2**63 still means "after everything". */
		json_int_t i = json_integer_value(v);
		*out = i > MS_BOUND ? MS_BOUND : i < -MS_BOUND ? -MS_BOUND : (int64_t)i;
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!(d > -(double)MS_BOUND && d < (double)MS_BOUND))
			return -1;
		*out = (int64_t)d;
		return 0;
	}
	return -1;
}

int r2_conditional_parse(const char *json, size_t len, struct r2_conditional *out,
			 struct r2_err *err)
{
	memset(out, 0, sizeof *out);
	json_t *o = load_object(json, len);
	if (!o)
		return refuse(err, R2_E_INVALID_ARGUMENT, "onlyIf must be an object of conditions");
	int rc = R2_OK;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		if (json_is_null(v))
			continue;
		if (!strcmp(k, "etagMatches")) {
			out->has_matches = 1;
			if (etag_list(v, out->matches, &out->nmatches) < 0)
				rc = refuse(err, R2_E_INVALID_ARGUMENT, "onlyIf.etagMatches is not an etag "
									"or a list of etags");
		} else if (!strcmp(k, "etagDoesNotMatch")) {
			out->has_not_matches = 1;
			if (etag_list(v, out->not_matches, &out->nnot_matches) < 0)
				rc = refuse(err, R2_E_INVALID_ARGUMENT, "onlyIf.etagDoesNotMatch is not "
									"an etag or a list of etags");
		} else if (!strcmp(k, "uploadedBefore")) {
			out->has_before = 1;
			if (ms_value(v, &out->uploaded_before_ms) < 0)
				rc = refuse(err, R2_E_INVALID_ARGUMENT, "onlyIf.uploadedBefore is not a date");
		} else if (!strcmp(k, "uploadedAfter")) {
			out->has_after = 1;
			if (ms_value(v, &out->uploaded_after_ms) < 0)
				rc = refuse(err, R2_E_INVALID_ARGUMENT, "onlyIf.uploadedAfter is not a date");
		} else if (!strcmp(k, "secondsGranularity")) {
			if (!json_is_boolean(v))
				rc = refuse(err, R2_E_INVALID_ARGUMENT,
					    "onlyIf.secondsGranularity is not a boolean");
			out->seconds_granularity = json_is_true(v);
		} else {
			rc = refuse(err, R2_E_INVALID_ARGUMENT, "onlyIf has no condition '%.64s'", k);
		}
		if (rc != R2_OK)
			break;
	}
	json_decref(o);
	out->present = rc == R2_OK;
	return rc;
}

static int etag_in(const struct r2_etag_cond *list, unsigned n, const char *etag, int strong)
{
	for (unsigned i = 0; i < n; i++) {
		if (list[i].wildcard)
			return 1;
		if (!strcmp(list[i].value, etag) && (!list[i].weak || !strong))
			return 1;
	}
	return 0;
}

/* ms rounded down to a whole second; INT64_MIN's second is below INT64_MIN,
 * so the bottom saturates (an upload time from the store is not bounded). */
static int64_t floor_s(int64_t ms)
{
	int64_t rem = ms % 1000;
	if (rem < 0)
		rem += 1000;
	return ms < INT64_MIN + rem ? INT64_MIN : ms - rem;
}

int r2_conditional_holds(const struct r2_conditional *c, int exists, const char *etag,
			 int64_t uploaded_ms)
{
	if (!c || !c->present)
		return 1;
	if (!exists)
		return !c->has_matches && !c->has_after;
	/* RFC 9110 13.2.2: If-Match before If-Unmodified-Since, If-None-Match
	 * before If-Modified-Since (a date condition yields to its etag one). */
	int match = !c->has_matches || etag_in(c->matches, c->nmatches, etag, 1);
	int none_match = !c->has_not_matches || !etag_in(c->not_matches, c->nnot_matches, etag, 0);
	int64_t up = c->seconds_granularity ? floor_s(uploaded_ms) : uploaded_ms;
	int64_t before = c->seconds_granularity ? floor_s(c->uploaded_before_ms) : c->uploaded_before_ms;
	int64_t after = c->seconds_granularity ? floor_s(c->uploaded_after_ms) : c->uploaded_after_ms;
	int modified_since = !c->has_after || after < up || (c->has_not_matches && none_match);
	int unmodified_since = !c->has_before || up < before || (c->has_matches && match);
	return match && none_match && modified_since && unmodified_since;
}

/* --- ranges --- */

static int u64_value(json_t *v, uint64_t *out)
{
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (d >= 0 && d < 9e15 && d == (double)(uint64_t)d) {
			*out = (uint64_t)d;
			return 0;
		}
	}
	return -1;
}

/* "bytes=a-b", "bytes=a-", "bytes=-n": 1 when it is one such range, else 0. */
static int header_range(const char *h, struct r2_range *r)
{
	if (strncasecmp(h, "bytes=", 6) != 0)
		return 0;
	h += 6;
	while (*h == ' ')
		h++;
	if (strchr(h, ','))
		return 0;
	uint64_t a = 0, b = 0;
	int has_a = 0, has_b = 0;
	while (*h >= '0' && *h <= '9') {
		if (a > (UINT64_MAX - 9) / 10)
			return 0;
		a = a * 10 + (uint64_t)(*h++ - '0');
		has_a = 1;
	}
	if (*h++ != '-')
		return 0;
	while (*h >= '0' && *h <= '9') {
		if (b > (UINT64_MAX - 9) / 10)
			return 0;
		b = b * 10 + (uint64_t)(*h++ - '0');
		has_b = 1;
	}
	while (*h == ' ')
		h++;
	if (*h || (!has_a && !has_b))
		return 0;
	if (!has_a) {
		r->has_suffix = 1;
		r->suffix = b;
	} else {
		if (has_b && b < a)
			return 0;
		r->has_offset = 1;
		r->offset = a;
		if (has_b) {
			r->has_length = 1;
			r->length = b - a + 1;
		}
	}
	return 1;
}

int r2_range_parse(const char *json, size_t len, struct r2_range *out, struct r2_err *err)
{
	memset(out, 0, sizeof *out);
	json_t *o = load_object(json, len);
	if (!o)
		return refuse(err, R2_E_INVALID_ARGUMENT, "range must be an object");
	int rc = R2_OK;
	json_t *header = json_object_get(o, "header");
	if (header) {
		if (!json_is_string(header))
			rc = refuse(err, R2_E_INVALID_ARGUMENT, "a range header is a string");
		else
			out->present = header_range(json_string_value(header), out);
		json_decref(o);
		return rc;
	}
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		if (json_is_null(v))
			continue;
		uint64_t *dst;
		int *has;
		if (!strcmp(k, "offset")) {
			dst = &out->offset;
			has = &out->has_offset;
		} else if (!strcmp(k, "length")) {
			dst = &out->length;
			has = &out->has_length;
		} else if (!strcmp(k, "suffix")) {
			dst = &out->suffix;
			has = &out->has_suffix;
		} else {
			rc = refuse(err, R2_E_INVALID_ARGUMENT, "range has no field '%.64s'", k);
			break;
		}
		if (u64_value(v, dst) < 0) {
			rc = refuse(err, R2_E_INVALID_RANGE, "The requested range is not satisfiable");
			break;
		}
		*has = 1;
	}
	json_decref(o);
	if (rc == R2_OK && out->has_suffix && (out->has_offset || out->has_length))
		rc = refuse(err, R2_E_INVALID_ARGUMENT, "a range has a suffix or an offset and a "
							"length, not both");
	out->present = rc == R2_OK && (out->has_offset || out->has_length || out->has_suffix);
	return rc;
}

int r2_range_resolve(const struct r2_range *r, uint64_t size, uint64_t *offset, uint64_t *length,
		     struct r2_err *err)
{
	*offset = 0;
	*length = size;
	if (!r || !r->present)
		return R2_OK;
	uint64_t off, len;
	if (r->has_suffix) {
		if (r->suffix == 0)
			return refuse(err, R2_E_INVALID_RANGE, "The requested range is not satisfiable");
		len = r->suffix > size ? size : r->suffix;
		off = size - len;
	} else {
		off = r->has_offset ? r->offset : 0;
		if (off > size)
			return refuse(err, R2_E_INVALID_RANGE, "The requested range is not satisfiable");
		len = r->has_length ? r->length : size - off;
		if (len == 0 && (r->has_length || size > 0))
			return refuse(err, R2_E_INVALID_RANGE, "The requested range is not satisfiable");
		if (len > size - off)
			len = size - off;
	}
	*offset = off;
	*length = len;
	return R2_OK;
}

/* --- metadata --- */

static char *dump(json_t *o)
{
	return json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
}

/* What an object of metadata counts: its string values (and, custom, its
 * keys); a cacheExpiry, a number, counts nothing. */
static size_t metadata_bytes(json_t *o, int keys)
{
	size_t total = 0;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		if (json_is_string(v))
			total += json_string_length(v) + (keys ? strlen(k) : 0);
	}
	return total;
}

static int metadata_too_large(struct r2_err *err)
{
	return refuse(err, R2_E_METADATA_TOO_LARGE,
		      "Your metadata headers exceed the maximum allowed metadata size.");
}

size_t r2_metadata_size(const char *http, const char *custom)
{
	size_t total = 0;
	json_t *o = http ? json_loads(http, 0, NULL) : NULL;
	if (json_is_object(o))
		total += metadata_bytes(o, 0);
	json_decref(o);
	o = custom ? json_loads(custom, 0, NULL) : NULL;
	if (json_is_object(o))
		total += metadata_bytes(o, 1);
	json_decref(o);
	return total;
}

int r2_metadata_check(const char *http, const char *custom, struct r2_err *err)
{
	return r2_metadata_size(http, custom) > R2_METADATA_MAX ? metadata_too_large(err) : R2_OK;
}

int r2_http_metadata_parse(const char *json, size_t len, char **out, struct r2_err *err)
{
	static const char *const fields[] = {"contentType",     "contentLanguage",
					     "contentDisposition", "contentEncoding",
					     "cacheControl",    NULL};
	*out = NULL;
	json_t *o = len ? load_object(json, len) : json_object();
	if (!o)
		return refuse(err, R2_E_INVALID_ARGUMENT, "httpMetadata must be an object");
	json_t *clean = json_object();
	int rc = R2_OK;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		if (json_is_null(v))
			continue;
		int known = 0;
		for (const char *const *f = fields; *f; f++)
			known |= !strcmp(*f, k);
		if (known && json_is_string(v) &&
		    !memchr(json_string_value(v), 0, json_string_length(v)) &&
		    !strpbrk(json_string_value(v), "\r\n")) {
			json_object_set(clean, k, v);
		} else if (!strcmp(k, "cacheExpiry") && (json_is_integer(v) || json_is_real(v))) {
			int64_t ms;
			if (ms_value(v, &ms) < 0) {
				rc = refuse(err, R2_E_INVALID_ARGUMENT, "httpMetadata.cacheExpiry is not a date");
				break;
			}
			json_object_set_new(clean, k, json_integer(ms));
		} else {
			rc = refuse(err, R2_E_INVALID_ARGUMENT, "httpMetadata.%.64s is not %s", k,
				    known ? "a string on one line" : "an HTTP metadata field");
			break;
		}
	}
	if (rc == R2_OK && metadata_bytes(clean, 0) > R2_METADATA_MAX)
		rc = metadata_too_large(err);
	if (rc == R2_OK)
		*out = dump(clean);
	json_decref(clean);
	json_decref(o);
	return rc;
}

int r2_custom_metadata_parse(const char *json, size_t len, char **out, struct r2_err *err)
{
	*out = NULL;
	json_t *o = len ? load_object(json, len) : json_object();
	if (!o)
		return refuse(err, R2_E_INVALID_ARGUMENT, "customMetadata must be an object");
	int rc = R2_OK;
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) {
		if (!json_is_string(v)) {
			rc = refuse(err, R2_E_INVALID_ARGUMENT,
				    "customMetadata values are strings ('%.64s' is not)", k);
			break;
		}
	}
	if (rc == R2_OK && metadata_bytes(o, 1) > R2_METADATA_MAX)
		rc = metadata_too_large(err);
	if (rc == R2_OK)
		*out = dump(o);
	json_decref(o);
	return rc;
}

int r2_parts_parse(const char *json, size_t len, struct r2_part **out, size_t *n,
		   struct r2_err *err)
{
	*out = NULL;
	*n = 0;
	json_t *a = len <= (size_t)R2_PARTS_MAX * 128 ? json_loadb(json, len, 0, NULL) : NULL;
	if (!json_is_array(a) || json_array_size(a) > R2_PARTS_MAX) {
		json_decref(a);
		return refuse(err, R2_E_INVALID_PART,
			      "One or more of the specified parts could not be found.");
	}
	struct r2_part *parts = calloc(json_array_size(a) + 1, sizeof *parts);
	if (!parts)
		abort();
	size_t i;
	json_t *e;
	int rc = R2_OK;
	json_array_foreach(a, i, e) {
		json_t *num = json_object_get(e, "partNumber");
		json_t *etag = json_object_get(e, "etag");
		if (!json_is_integer(num) || json_integer_value(num) < 1 ||
		    json_integer_value(num) > R2_PARTS_MAX || !json_is_string(etag) ||
		    json_string_length(etag) >= sizeof parts[i].etag) {
			rc = refuse(err, R2_E_INVALID_PART,
				    "One or more of the specified parts could not be found.");
			break;
		}
		parts[i].number = (uint32_t)json_integer_value(num);
		snprintf(parts[i].etag, sizeof parts[i].etag, "%s", json_string_value(etag));
	}
	if (rc == R2_OK) {
		*out = parts;
		*n = json_array_size(a);
	} else {
		free(parts);
	}
	json_decref(a);
	return rc;
}
