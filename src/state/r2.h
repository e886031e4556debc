/*
 * The R2 engine: one Cloudflare R2 bucket as files by content address plus
 * an SQLite index, with no transport (src/ext/r2_binding.c serves it).
 *
 * ON DISK, for a bucket B under a worker's state directory STATE:
 *   STATE/r2/B.sqlite          the index (WAL, synchronous=FULL):
 *     objects (key BLOB PK, blob, size, etag, version, uploaded ms,
 *              http_metadata JSON, custom_metadata JSON, checksums JSON)
 *     uploads (upload_id PK, key, http_metadata, custom_metadata, created)
 *     parts   (upload_id, part_number, blob, size, etag)  PK (upload_id, n)
 *   STATE/r2/B/blobs/XY/HEX    an object's or a part's bytes, named by the
 *                              SHA-256 (HEX) of its content; XY = HEX[0..2]
 *   STATE/r2/B/tmp/            unnamed spool files (O_TMPFILE) of bodies
 *                              being received, and of multipart completions
 * Equal contents share one blob. A blob is linked into place (fsynced, and
 * its directory) before the row naming it commits, so a committed row never
 * names a missing or partial file. A blob no row names is garbage: it is
 * unlinked after the commit that dropped its last reference, and r2_open
 * removes any left by a crash between the two (and every file in tmp/).
 *
 * LIMITS AND ERRORS are Cloudflare's (docs/bindings.md, "## R2"): a refusal
 * is R2_REFUSED with err->code the v4 code Cloudflare's runtime reports and
 * err->text its message; anything else that fails is R2_ERR with the detail
 * in err->text (for the log; the worker sees an internal error).
 *
 * THREADS: everything here blocks on the disk; a store is used by one
 * thread at a time (the host's state executor). The parsers (r2_*_parse)
 * touch no store and are pure.
 */
#ifndef THAW_STATE_R2_H
#define THAW_STATE_R2_H

#include <stddef.h>
#include <stdint.h>

#define R2_KEY_MAX 1024
/* An object's metadata, custom and HTTP together (Cloudflare's "object
 * metadata size"): custom keys and values plus HTTP string values, bytes. */
#define R2_METADATA_MAX 8192
#define R2_VALUE_MAX (5368709120ull - 5242880ull) /* 5 GiB - 5 MiB, one put or part */
#define R2_PART_MIN (5ull << 20)                 /* every part but the last */
#define R2_PARTS_MAX 10000
#define R2_LIST_MAX 1000
#define R2_ETAG_LIST_MAX 64 /* etags in one condition */

/* Cloudflare's v4 error codes. */
#define R2_E_INTERNAL 10001
#define R2_E_TOO_LARGE 100100
#define R2_E_TOO_SMALL 10011
#define R2_E_METADATA_TOO_LARGE 10012
#define R2_E_INVALID_KEY 10020
#define R2_E_INVALID_MAX_KEYS 10022
#define R2_E_NO_SUCH_UPLOAD 10024
#define R2_E_INVALID_PART 10025
#define R2_E_INVALID_ARGUMENT 10029
#define R2_E_PRECONDITION 10031
#define R2_E_BAD_DIGEST 10037
#define R2_E_INVALID_RANGE 10039

enum {
	R2_OK = 0,
	R2_NOT_FOUND = 1,
	R2_PRECONDITION = 2, /* an only_if did not hold */
	R2_ERR = -1,
	R2_REFUSED = -2,
};

struct r2_err {
	int code; /* v4 code of a refusal; 0 for R2_ERR */
	char text[512];
};

/* --- what a call's arguments say (parsed from JSON text; pure) --- */

struct r2_etag_cond {
	int wildcard;
	int weak; /* W/"..." */
	char value[130];
};

struct r2_conditional {
	int present;
	struct r2_etag_cond matches[R2_ETAG_LIST_MAX], not_matches[R2_ETAG_LIST_MAX];
	unsigned nmatches, nnot_matches;
	int has_matches, has_not_matches;
	int has_before, has_after;
	int64_t uploaded_before_ms, uploaded_after_ms;
	int seconds_granularity;
};

struct r2_range {
	int present;
	int has_offset, has_length, has_suffix;
	uint64_t offset, length, suffix;
};

/* {"etagMatches": S|[S..], "etagDoesNotMatch": .., "uploadedBefore": ms,
 * "uploadedAfter": ms, "secondsGranularity": bool}; an etag S is *, "x",
 * W/"x" or x. R2_OK, or R2_REFUSED with err (code R2_E_INVALID_ARGUMENT). */
int r2_conditional_parse(const char *json, size_t len, struct r2_conditional *out,
			 struct r2_err *err);
/* {"offset": n, "length": n} (either), {"suffix": n}, or {"header":
 * "bytes=a-b"} (a header range that is not one simple range means the whole
 * object, as on Cloudflare). */
int r2_range_parse(const char *json, size_t len, struct r2_range *out, struct r2_err *err);
/* Resolve r against an object of size: *offset, *length. R2_OK or
 * R2_REFUSED (R2_E_INVALID_RANGE). */
int r2_range_resolve(const struct r2_range *r, uint64_t size, uint64_t *offset, uint64_t *length,
		     struct r2_err *err);
/* Normalise http metadata ({"contentType": S, "contentLanguage": S,
 * "contentDisposition": S, "contentEncoding": S, "cacheControl": S,
 * "cacheExpiry": ms}) and custom metadata ({S: S}) into compact JSON text
 * (*out, malloc'd; "{}" when len is 0). Each alone is refused past
 * R2_METADATA_MAX (R2_E_METADATA_TOO_LARGE); r2_metadata_check bounds the
 * two together. */
int r2_http_metadata_parse(const char *json, size_t len, char **out, struct r2_err *err);
int r2_custom_metadata_parse(const char *json, size_t len, char **out, struct r2_err *err);
/* The bytes of metadata that count against R2_METADATA_MAX in normalised
 * http and custom metadata (either NULL: none). */
size_t r2_metadata_size(const char *http, const char *custom);
/* R2_OK, or R2_REFUSED (R2_E_METADATA_TOO_LARGE) when the two together are
 * past R2_METADATA_MAX. */
int r2_metadata_check(const char *http, const char *custom, struct r2_err *err);
/* A key: valid UTF-8, 1..R2_KEY_MAX bytes. */
int r2_key_check(const uint8_t *key, size_t len, struct r2_err *err);
/* Does cond hold for an object with etag (bare hex) uploaded at ms (exists
 * 0: no object)? */
int r2_conditional_holds(const struct r2_conditional *cond, int exists, const char *etag,
			 int64_t uploaded_ms);

/* --- the store --- */

struct r2_store;

struct r2_object {
	uint8_t *key;
	size_t key_len;
	char version[33];
	uint64_t size;
	char etag[48];
	int64_t uploaded_ms;
	char *http_metadata;   /* JSON text */
	char *custom_metadata; /* JSON text */
	char *checksums;       /* JSON text */
	char blob[65];
};

struct r2_put_options {
	const char *http_metadata, *custom_metadata; /* normalised JSON, or NULL */
	const struct r2_conditional *only_if;        /* or NULL */
	/* Expected digests, lowercase hex, or NULL. */
	const char *md5, *sha1, *sha256, *sha384, *sha512;
};

struct r2_list_options {
	const uint8_t *prefix, *delimiter, *start_after;
	size_t prefix_len, delimiter_len, start_after_len;
	const char *cursor;
	size_t cursor_len;
	int64_t limit; /* 0: 1000 */
};

struct r2_list {
	struct r2_object *objects;
	size_t count;
	char **prefixes; /* delimited prefixes */
	size_t nprefixes;
	int truncated;
	char *cursor; /* when truncated */
};

struct r2_part {
	uint32_t number;
	char etag[48];
};

/* Open (creating) the bucket whose index is db_path and whose blobs live
 * under dir (STATE/r2/B); collects garbage. NULL with err. */
struct r2_store *r2_open(const char *db_path, const char *dir, struct r2_err *err);
void r2_close(struct r2_store *st);
/* The directory spool files go to (dir/tmp). */
const char *r2_tmp_dir(const struct r2_store *st);

void r2_object_dispose(struct r2_object *o);
void r2_list_dispose(struct r2_list *l);

int r2_head(struct r2_store *st, const uint8_t *key, size_t klen, struct r2_object *out,
	    struct r2_err *err);
/* R2_OK with *fd (opened, the caller's) and the range to send, R2_NOT_FOUND,
 * R2_PRECONDITION (out filled, no fd), R2_REFUSED (a bad range). */
int r2_get(struct r2_store *st, const uint8_t *key, size_t klen, const struct r2_conditional *cond,
	   const struct r2_range *range, struct r2_object *out, int *fd, uint64_t *offset,
	   uint64_t *length, struct r2_err *err);
/* Store the len bytes of fd (borrowed; -1: empty) under key. R2_OK with
 * out, R2_PRECONDITION, R2_REFUSED. */
int r2_put(struct r2_store *st, const uint8_t *key, size_t klen, int fd, uint64_t len,
	   const struct r2_put_options *opt, int64_t now_ms, struct r2_object *out,
	   struct r2_err *err);
int r2_delete(struct r2_store *st, const uint8_t *const *keys, const size_t *klens, size_t n,
	      struct r2_err *err);
int r2_list(struct r2_store *st, const struct r2_list_options *opt, struct r2_list *out,
	    struct r2_err *err);

/* Multipart: upload_id is 32 lowercase hex digits. */
int r2_upload_create(struct r2_store *st, const uint8_t *key, size_t klen, const char *http_metadata,
		     const char *custom_metadata, int64_t now_ms, char upload_id[33],
		     struct r2_err *err);
int r2_upload_part(struct r2_store *st, const uint8_t *key, size_t klen, const char *upload_id,
		   int64_t part_number, int fd, uint64_t len, char etag[48], struct r2_err *err);
int r2_upload_complete(struct r2_store *st, const uint8_t *key, size_t klen, const char *upload_id,
		       const struct r2_part *parts, size_t nparts, int64_t now_ms,
		       struct r2_object *out, struct r2_err *err);
int r2_upload_abort(struct r2_store *st, const uint8_t *key, size_t klen, const char *upload_id,
		    struct r2_err *err);
/* Parse complete()'s parts: [{"partNumber": n, "etag": S}..]. */
int r2_parts_parse(const char *json, size_t len, struct r2_part **out, size_t *n,
		   struct r2_err *err);

#endif
