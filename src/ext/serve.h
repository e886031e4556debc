/*
 * `thaw serve`: a host for many deployed workers. serve.c holds the state
 * (workers, versions, deployments, their pools), the router and the deploy
 * pipeline; control.c is the control API's HTTP side (docs/control-api.md).
 *
 * A deploy, from the upload to live:
 *   upload    control.c streams the body into a blob writer (size-limited);
 *   stored    a child `thaw unpack-bundle` checks and unpacks it into
 *             DIR/tmp, renamed to DIR/versions/ID; the version is recorded
 *             in state "building";
 *   building  the version's pool builds its snapshot;
 *   built     the image is adopted into the blob store;
 *   validated a request through the data plane (override header plus a
 *             secret probe header) is answered by an instance restored from
 *             the image with a status below 500;
 *   live      the version becomes "ready" and enters the deployment.
 * Any failure marks the version "failed" with the reason; it never serves.
 */
#ifndef THAW_EXT_SERVE_H
#define THAW_EXT_SERVE_H

#include <stdint.h>
#include <jansson.h>

#include "ext/bundle.h"
#include "host/host.h"
#include "ext/store.h"

struct serve;
struct ctl;
struct ctl_stream;

/* control.c */
/* An ndjson response being streamed: the deploy's progress, or a tail. */
void ctl_stream_line(struct ctl_stream *cs, json_t *line); /* steals line */
void ctl_stream_end(struct ctl_stream *cs);
/* Before any line: answer status with {"error": msg} instead of a stream. */
void ctl_stream_refuse(struct ctl_stream *cs, unsigned status, const char *msg);
/* Start the control API on ip:port. */
struct ctl *ctl_start(struct serve *s, struct loop *l, const char *ip, unsigned port,
		      unsigned *bound, char *err, size_t errlen);
void ctl_stop(struct ctl *c);

/* serve.c, for control.c */
struct store *serve_store(struct serve *s);
const struct bundle_limits *serve_bundle_limits(struct serve *s);
int serve_token_ok(struct serve *s, const char *authorization);
/* A stored bundle (blob hex) for worker: unpack, record, build, validate,
 * deploy. The answer goes to cs: a refusal (ctl_stream_refuse) when the
 * bundle is refused, else progress lines and the end. cs may go away
 * meanwhile (serve_stream_gone); the deploy goes on. */
void serve_deploy(struct serve *s, const char *worker, const char *hex, const char *message,
		  double percentage, struct ctl_stream *cs);
/* Answer for GET/POST on the worker API; returns the HTTP status and sets
 * *out (a JSON object). */
unsigned serve_api(struct serve *s, const char *method, const char *worker, const char *what,
		   json_t *body, json_t **out);
/* Subscribe cs to worker's log lines (0), or 404. */
unsigned serve_tail(struct serve *s, const char *worker, struct ctl_stream *cs);
/* The client of cs went away: forget it. */
void serve_stream_gone(struct serve *s, struct ctl_stream *cs);



#endif
