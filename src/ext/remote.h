/*
 * The client side of a `thaw serve` host's control API (docs/control-api.md):
 * reading its answers and turning them into what `thaw deploy`, `thaw versions
 * list`, `thaw rollout`, `thaw rollback` and `thaw tail` print.
 *
 * Everything a host sends is hostile. These functions take the bytes of one
 * answer (or one ndjson line), parse them with jansson, check every field's
 * type before use, and never print a string from the host as it came: control
 * characters (C0 except tab and, where allowed, newline; DEL; C1) are shown as
 * \xNN, so an answer cannot move the cursor or retitle the terminal. They do
 * no I/O other than writing to the FILE they are given; the HTTP side lives in
 * remote.c.
 */
#ifndef THAW_EXT_REMOTE_H
#define THAW_EXT_REMOTE_H

#include <jansson.h>
#include <stdio.h>

/* Largest answer body read (whole answers and a deployment's progress). */
#define REMOTE_MAX_ANSWER (16u << 20)
/* Largest ndjson line (a failed build's traceback fits easily). */
#define REMOTE_MAX_LINE (1u << 20)
/* Longest version id accepted from a host. */
#define REMOTE_MAX_ID 64

/* Write s (length n) to f with control characters escaped; with one_line, a
 * newline too. At most max bytes of s (0: all), cut at a UTF-8 boundary and
 * marked with "...". */
void thaw_remote_put_safe(FILE *f, const char *s, size_t n, size_t max, int one_line);

/* Parse len bytes as one JSON object. Returns new, or NULL with err. */
json_t *thaw_remote_parse_object(const char *p, size_t len, char *err, size_t errlen);

/* Is s a version id as a host hands them out (1..64 of [A-Za-z0-9-])? */
int thaw_remote_id_valid(const char *s);

/* "3 at 10%, 2 at 90%" for a deployment object: each version by its number
 * when versions (an array of version objects, may be NULL) knows it, else by
 * the first 8 characters of its id. Borrows both. */
void thaw_remote_put_deployment(FILE *f, const json_t *deployment, const json_t *versions);

/* A deployment's progress as `thaw deploy` reads it. */
struct thaw_deploy_progress {
	int done;                    /* 1 live, -1 failed, 0 still going */
	char version[REMOTE_MAX_ID + 1]; /* from "stored" */
	long long number;            /* from "stored"; 0 before */
	json_t *deployment;          /* "live": new reference */
	char *error;                 /* "failed": malloc'd, may be multi-line */
};

/* Read one line of the POST .../versions stream (without its newline):
 * prints the human line for stored/building/built/validated (and unknown
 * stages) on out, records live/failed in p for the caller to report.
 * 0, or -1 with err when the line is not a progress object. A line after
 * live/failed is an error too. */
int thaw_remote_stage_line(struct thaw_deploy_progress *p, const char *line, size_t len,
			   FILE *out, char *err, size_t errlen);
void thaw_remote_progress_dispose(struct thaw_deploy_progress *p);

/* Print one tail line as "HH:MM:SS.mmm VERSION8 REQID stream: message"
 * (local time). 0, or -1 with err. */
int thaw_remote_tail_line(const char *line, size_t len, FILE *out, char *err, size_t errlen);

/* Print a GET .../versions answer as a table: number, id (8), created (local
 * time), state, share of the current deployment, message; a failed version's
 * error (first line) beneath it. 0, or -1 with err. */
int thaw_remote_versions_table(const char *body, size_t len, FILE *out, char *err,
			       size_t errlen);

/* Print a GET .../crons answer: the triggers, runs in progress, then the runs
 * (due time in local time, cron, outcome, duration, version, error). 0, or -1
 * with err. */
int thaw_remote_crons_table(const char *body, size_t len, FILE *out, char *err, size_t errlen);

/* --- one request, for `thaw kv key` and `thaw d1` with --host (remote.c) --- */

#include "common/buf.h"

struct thaw_remote_conn;
/* The host (NULL: $THAW_HOST, else the default) and its token, as every
 * remote command finds them. NULL with the reason printed (as cmd). */
struct thaw_remote_conn *thaw_remote_connect(const char *cmd, const char *host,
					     const char *token_file, int verbose);
void thaw_remote_disconnect(struct thaw_remote_conn *conn); /* accepts NULL */

struct thaw_remote_answer {
	long status;
	struct buf body;      /* a 2xx's up to max_body, an error's up to 64 KiB */
	char *kv_metadata;    /* X-Thaw-KV-Metadata, as sent (NULL: none) */
	long long kv_expiration; /* X-Thaw-KV-Expiration (0: none) */
};
void thaw_remote_answer_dispose(struct thaw_remote_answer *a);
/* method path (under the host), with len bytes of body (NULL: none) of
 * content_type. 0 with *a filled, whatever the status; -1 with err when no
 * answer came (unreachable, broken, 2xx body over max_body). */
int thaw_remote_request(struct thaw_remote_conn *conn, const char *method, const char *path,
			const void *body, size_t len, const char *content_type, size_t max_body,
			struct thaw_remote_answer *a, char *err, size_t errlen);
/* Percent-encoding of n bytes of s (returns new). */
char *thaw_remote_escape(const char *s, size_t n);
/* "/v1/workers/NAME" + rest, NAME escaped (returns new). */
char *thaw_remote_worker_path(const char *name, const char *rest);

#endif
