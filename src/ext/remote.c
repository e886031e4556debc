/*
 * `thaw deploy`, `thaw versions list|delete`, `thaw rollout`, `thaw rollback`
 * and `thaw tail`: the client of a `thaw serve` host's control API
 * (docs/control-api.md), over libcurl. Answers are read and printed by
 * remote_fmt.c (see remote.h).
 *
 * Where the host is: --host URL, else $THAW_HOST, else http://127.0.0.1:8788.
 * The token: the trimmed content of --token-file FILE, else $THAW_TOKEN. It
 * goes out only in the Authorization header and is never printed, not even by
 * -v (which prints our own account of the exchange, not curl's, so nothing
 * can echo the header). Redirects are not followed.
 *
 * An answer is hostile: bodies are capped at REMOTE_MAX_ANSWER, ndjson lines
 * at REMOTE_MAX_LINE, and everything goes through jansson and the printers
 * in remote_fmt.c. A stream (tail) may run forever, one bounded line at a time.
 *
 * Everything here blocks: these are one-shot commands.
 */
#include "ext/ext.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <termios.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "project/project.h"
#include "cli/install.h"
#include "ext/remote.h"
#include "common/buf.h"
#include "ext/bundle.h"
#include "common/util.h"

#define DEFAULT_HOST "http://127.0.0.1:8788"
#define MAX_TOKEN_FILE (64u << 10)
#define MAX_TOKEN 4096
#define MAX_MESSAGE 1024
#define MAX_ERROR_BODY (64u << 10)
/* Uploads at least this large show their progress. */
#define BIG_UPLOAD (1u << 20)

/* What every remote command takes. */
struct remote_opts {
	const char *host;
	const char *token_file;
	int verbose;
};

#define REMOTE_COMMON_OPTIONS                                                  \
	{"host", required_argument, NULL, 'H'},                                \
	{"token-file", required_argument, NULL, 'T'},                          \
	{"verbose", no_argument, NULL, 'v'},                                   \
	{"help", no_argument, NULL, 'h'}

#define REMOTE_COMMON_HELP                                                                    \
	"  --host URL           the thaw host's control address (default: $THAW_HOST, else\n"  \
	"                       " DEFAULT_HOST ")\n"                                          \
	"  --token-file FILE    read the control token from FILE (default: $THAW_TOKEN);\n"   \
	"                       `thaw serve` prints where it wrote one when given none\n"      \
	"  -v, --verbose        show the requests and the answers' headers (never the token)\n" \
	"  -h, --help           this help\n"

/* 1 when c was a common option (recorded in o), 0 otherwise. */
static int common_opt(struct remote_opts *o, int c, const char *arg)
{
	switch (c) {
	case 'H':
		o->host = arg;
		return 1;
	case 'T':
		o->token_file = arg;
		return 1;
	case 'v':
		o->verbose = 1;
		return 1;
	}
	return 0;
}

struct remote {
	const char *cmd; /* "thaw deploy", for messages */
	char *host;      /* base URL, no trailing '/' */
	struct curl_slist *auth; /* the Authorization header, alone */
	int verbose;
};

/* One request and what came back. */
struct call {
	struct remote *r;
	CURL *curl;
	char errbuf[CURL_ERROR_SIZE];
	long status;
	char status_line[256];
	int got_header;
	/* Whole answers (and error answers of streams). */
	struct buf body;
	size_t max_body;
	/* ndjson: on_line for each line of a 2xx answer; -1 aborts with call.err. */
	int (*on_line)(struct call *c, char *line, size_t len);
	void *arg;
	struct buf line;
	uint64_t received;
	uint64_t max_total; /* 0: unbounded (tail) */
	char err[1024];
	int aborted;
	int quiet;          /* print no failure (best-effort requests) */
	int interrupt_ok;   /* Ctrl-C is how this one ends: say nothing */
	/* A KV value's answer (thaw_remote_request). */
	char *kv_metadata;
	long long kv_expiration;
	/* Upload from a file. */
	int upload_fd;
	uint64_t upload_size, uploaded;
	int show_progress, progress_tty, progress_done;
	uint64_t progress_last_ns, upload_start_ns;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	interrupted = 1;
}

/* --- setting up --- */

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

/* The token, checked; 0 or -1 with a message (that never shows the token). */
static int load_token(const char *cmd, const char *file, char **out)
{
	char *raw = NULL, *tok;
	const char *from;
	if (file) {
		size_t len;
		raw = read_file(file, MAX_TOKEN_FILE, &len);
		if (!raw) {
			fprintf(stderr, "%s: cannot read the token file %s: %s\n", cmd, file,
				errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
			return -1;
		}
		if (strlen(raw) != len) {
			fprintf(stderr, "%s: the token file %s holds a NUL byte\n", cmd, file);
			free(raw);
			return -1;
		}
		tok = trim(raw);
		from = file;
	} else {
		const char *env = getenv("THAW_TOKEN");
		if (!env) {
			fprintf(stderr,
				"%s: no control token: pass --token-file FILE or set THAW_TOKEN\n"
				"(`thaw serve` prints the path of the token file it wrote, e.g. DATA/token)\n",
				cmd);
			return -1;
		}
		raw = xstrdup(env);
		tok = trim(raw);
		from = "THAW_TOKEN";
	}
	if (!*tok) {
		fprintf(stderr, "%s: the token in %s is empty\n", cmd, from);
		free(raw);
		return -1;
	}
	if (strlen(tok) > MAX_TOKEN) {
		fprintf(stderr, "%s: the token in %s is longer than %d bytes\n", cmd, from, MAX_TOKEN);
		free(raw);
		return -1;
	}
	for (const char *p = tok; *p; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			fprintf(stderr,
				"%s: the token in %s holds a space, control or non-ASCII character, "
				"which cannot go in an HTTP header\n",
				cmd, from);
			free(raw);
			return -1;
		}
	}
	*out = xstrdup(tok);
	explicit_bzero(raw, strlen(raw));
	free(raw);
	return 0;
}

/* The host's base URL, checked: http or https, no query or fragment. */
static int check_host(const char *cmd, const char *url, char **out)
{
	if (strlen(url) > 2048) {
		fprintf(stderr, "%s: the host URL is too long\n", cmd);
		return -1;
	}
	CURLU *u = curl_url();
	char *scheme = NULL, *query = NULL, *fragment = NULL;
	int ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		 curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		 (!strcmp(scheme, "http") || !strcmp(scheme, "https")) &&
		 curl_url_get(u, CURLUPART_QUERY, &query, 0) != CURLUE_OK &&
		 curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) != CURLUE_OK;
	curl_free(scheme);
	curl_free(query);
	curl_free(fragment);
	curl_url_cleanup(u);
	/* curl would guess a scheme for "localhost:8788"; we want it said. */
	if (!ok || (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)) {
		fprintf(stderr,
			"%s: '%s' is not a host URL: give http://ADDR:PORT (or https://...), "
			"without a query\n",
			cmd, url);
		return -1;
	}
	char *h = xstrdup(url);
	size_t n = strlen(h);
	while (n && h[n - 1] == '/')
		h[--n] = '\0';
	*out = h;
	return 0;
}

static int remote_open(struct remote *r, const char *cmd, const struct remote_opts *o)
{
	memset(r, 0, sizeof *r);
	r->cmd = cmd;
	r->verbose = o->verbose;
	const char *host = o->host;
	if (!host) {
		host = getenv("THAW_HOST");
		if (!host || !*host)
			host = DEFAULT_HOST;
	}
	if (check_host(cmd, host, &r->host) < 0)
		return -1;
	char *token;
	if (load_token(cmd, o->token_file, &token) < 0) {
		free(r->host);
		r->host = NULL;
		return -1;
	}
	char *h = xasprintf("Authorization: Bearer %s", token);
	r->auth = curl_slist_append(NULL, h);
	explicit_bzero(h, strlen(h));
	explicit_bzero(token, strlen(token));
	free(h);
	free(token);
	if (!r->auth)
		fatal("out of memory");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "%s: cannot initialise libcurl\n", cmd);
		curl_slist_free_all(r->auth);
		free(r->host);
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static void remote_close(struct remote *r)
{
	curl_slist_free_all(r->auth);
	free(r->host);
	curl_global_cleanup();
}

/* --- one request --- */

static void write_lines(struct call *c, const char *p, size_t n)
{
	buf_append(&c->line, p, n);
	for (;;) {
		uint8_t *head = buf_head(&c->line);
		size_t used = buf_used(&c->line);
		uint8_t *nl = memchr(head, '\n', used);
		if (!nl)
			break;
		size_t len = (size_t)(nl - head);
		*nl = '\0';
		if (len && head[len - 1] == '\r')
			head[--len] = '\0';
		int rc = len ? c->on_line(c, (char *)head, len) : 0;
		buf_consume(&c->line, (size_t)(nl - head) + 1);
		if (rc < 0) {
			c->aborted = 1;
			return;
		}
	}
	if (buf_used(&c->line) > REMOTE_MAX_LINE) {
		snprintf(c->err, sizeof c->err, "the host sent a line longer than %u KiB",
			 REMOTE_MAX_LINE >> 10);
		c->aborted = 1;
	}
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct call *c = arg;
	size_t n = size * nmemb;
	if (!c->status)
		curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &c->status);
	c->received += n;
	int ok2xx = c->status >= 200 && c->status < 300;
	if (c->on_line && ok2xx) {
		if (c->max_total && c->received > c->max_total) {
			snprintf(c->err, sizeof c->err, "the host's answer is larger than %u MiB",
				 (unsigned)(c->max_total >> 20));
			c->aborted = 1;
			return 0;
		}
		write_lines(c, p, n);
		return c->aborted ? 0 : n;
	}
	size_t max = ok2xx ? c->max_body : MAX_ERROR_BODY;
	if (buf_used(&c->body) + n > max) {
		if (!ok2xx) /* an error page: what we have is enough */
			return n;
		snprintf(c->err, sizeof c->err, "the host's answer is larger than %zu MiB", max >> 20);
		c->aborted = 1;
		return 0;
	}
	buf_append(&c->body, p, n);
	return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct call *c = arg;
	size_t n = size * nmemb;
	c->got_header = 1;
	if (n >= 5 && !memcmp(p, "HTTP/", 5)) {
		size_t k = n;
		while (k && (p[k - 1] == '\r' || p[k - 1] == '\n'))
			k--;
		if (k >= sizeof c->status_line)
			k = sizeof c->status_line - 1;
		memcpy(c->status_line, p, k);
		c->status_line[k] = '\0';
	}
	static const char meta[] = "x-thaw-kv-metadata:", exp[] = "x-thaw-kv-expiration:";
	if (n > sizeof meta - 1 && !strncasecmp(p, meta, sizeof meta - 1)) {
		size_t k = n, o = sizeof meta - 1;
		while (k > o && (p[k - 1] == '\r' || p[k - 1] == '\n' || p[k - 1] == ' '))
			k--;
		while (o < k && p[o] == ' ')
			o++;
		free(c->kv_metadata);
		c->kv_metadata = xasprintf("%.*s", (int)(k - o), p + o);
	} else if (n > sizeof exp - 1 && !strncasecmp(p, exp, sizeof exp - 1)) {
		c->kv_expiration = strtoll(p + sizeof exp - 1, NULL, 10);
	}
	if (c->r->verbose) {
		size_t k = n;
		while (k && (p[k - 1] == '\r' || p[k - 1] == '\n'))
			k--;
		if (k) {
			fputs("< ", stderr);
			thaw_remote_put_safe(stderr, p, k, 1024, 1);
			fputc('\n', stderr);
		}
	}
	return n;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *arg)
{
	struct call *c = arg;
	size_t want = size * nmemb;
	for (;;) {
		ssize_t n = read(c->upload_fd, p, want);
		if (n >= 0) {
			c->uploaded += (uint64_t)n;
			return (size_t)n;
		}
		if (errno != EINTR) {
			snprintf(c->err, sizeof c->err, "cannot read the bundle: %s", strerror(errno));
			c->aborted = 1;
			return CURL_READFUNC_ABORT;
		}
	}
}

static int on_seek(void *arg, curl_off_t off, int origin)
{
	struct call *c = arg;
	if (origin != SEEK_SET || lseek(c->upload_fd, (off_t)off, SEEK_SET) < 0)
		return CURL_SEEKFUNC_CANTSEEK;
	c->uploaded = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct call *c = arg;
	if (interrupted)
		return 1;
	if (!c->show_progress || c->progress_done || ultotal <= 0)
		return 0;
	uint64_t now = now_ns();
	int finished = ulnow >= ultotal;
	if (!finished && (!c->progress_tty || now - c->progress_last_ns < 100000000ull))
		return 0;
	c->progress_last_ns = now;
	if (finished) {
		double secs = (double)(now - c->upload_start_ns) / 1e9;
		fprintf(stderr, "%sUploaded %.1f MB in %.1f s\n", c->progress_tty ? "\r\033[K" : "",
			(double)ultotal / 1e6, secs);
		c->progress_done = 1;
	} else {
		fprintf(stderr, "\r\033[KUploading %.1f / %.1f MB (%d%%)", (double)ulnow / 1e6,
			(double)ultotal / 1e6, (int)(100.0 * (double)ulnow / (double)ultotal));
	}
	return 0;
}

static void call_init(struct call *c, struct remote *r)
{
	memset(c, 0, sizeof *c);
	c->r = r;
	c->upload_fd = -1;
	c->max_body = REMOTE_MAX_ANSWER;
	c->curl = curl_easy_init();
	if (!c->curl)
		fatal("cannot initialise libcurl");
}

static void call_dispose(struct call *c)
{
	free(c->kv_metadata);
	curl_easy_cleanup(c->curl);
	buf_free(&c->body);
	buf_free(&c->line);
}

static int connect_failure(CURLcode res)
{
	switch (res) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return 1;
	default:
		return 0;
	}
}

/* Print why a request failed at the HTTP level: the answer's "error" field,
 * else its status line. */
static void report_http_error(struct call *c)
{
	const char *cmd = c->r->cmd;
	if (c->quiet)
		return;
	char err[256];
	json_t *j = NULL;
	if (buf_used(&c->body))
		j = thaw_remote_parse_object((const char *)buf_head(&c->body), buf_used(&c->body), err,
					     sizeof err);
	const json_t *e = json_object_get(j, "error");
	fprintf(stderr, "%s: ", cmd);
	if (json_is_string(e) && json_string_length(e))
		thaw_remote_put_safe(stderr, json_string_value(e), json_string_length(e), 4096, 0);
	else if (c->status_line[0])
		thaw_remote_put_safe(stderr, c->status_line, strlen(c->status_line), 256, 1);
	else
		fprintf(stderr, "the host answered %ld", c->status);
	fprintf(stderr, " (HTTP %ld)\n", c->status);
	if (c->status == 401)
		fprintf(stderr, "%s: check the token (--token-file or THAW_TOKEN) against the host's\n",
			cmd);
	json_decref(j);
}

/* Run a request: method to path (under the host), with a JSON body, or the
 * upload set up in c, or none. 0 on a 2xx answer read to its end; -1 with the
 * reason printed. With stream_msg, a 2xx answer that breaks off is reported
 * as that message (for streams whose end the caller checks itself: it gets 1). */
static int call_perform(struct call *c, const char *method, const char *path, const char *json,
			const char *stream_msg)
{
	struct remote *r = c->r;
	char *url = xasprintf("%s%s", r->host, path);
	struct curl_slist *headers = NULL;
	for (struct curl_slist *s = r->auth; s; s = s->next)
		headers = curl_slist_append(headers, s->data);
	headers = curl_slist_append(headers, "Accept: application/json, application/x-ndjson");
	if (json)
		headers = curl_slist_append(headers, "Content-Type: application/json");
	if (c->upload_fd >= 0)
		headers = curl_slist_append(headers, "Content-Type: application/zstd");
	if (!headers)
		fatal("out of memory");

	CURL *h = c->curl;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "thaw/0.1.0");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	if (!c->on_line)
		curl_easy_setopt(h, CURLOPT_TIMEOUT, 300L);
	if (strcmp(method, "GET") && strcmp(method, "POST"))
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		if (c->upload_fd >= 0) {
			curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(h, CURLOPT_READDATA, c);
			curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
			curl_easy_setopt(h, CURLOPT_SEEKDATA, c);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->upload_size);
		} else {
			const char *b = json ? json : "";
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(b));
			curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, b);
		}
	}
	if (r->verbose) {
		fprintf(stderr, "> %s %s\n> Authorization: Bearer (hidden)\n", method, url);
		if (c->upload_fd >= 0)
			fprintf(stderr, "> Content-Length: %llu\n", (unsigned long long)c->upload_size);
		else if (json)
			fprintf(stderr, "> %s\n", json);
	}
	c->upload_start_ns = now_ns();
	CURLcode res = curl_easy_perform(h);
	if (c->on_line && !c->aborted && c->status >= 200 && c->status < 300 &&
	    buf_used(&c->line) && (res == CURLE_OK)) {
		/* The last line without its newline. */
		size_t len = buf_used(&c->line);
		buf_append(&c->line, "", 1);
		if (c->on_line(c, (char *)buf_head(&c->line), len) < 0)
			c->aborted = 1;
		buf_reset(&c->line);
	}
	if (c->show_progress && c->progress_tty && !c->progress_done)
		fputs("\r\033[K", stderr);
	curl_slist_free_all(headers);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status)
		c->status = status;

	int rc = -1;
	const char *reason = c->errbuf[0] ? c->errbuf : curl_easy_strerror(res);
	FILE *e = c->quiet ? NULL : stderr;
	if (interrupted) {
		if (e && !c->interrupt_ok)
			fprintf(e, "%s: interrupted\n", r->cmd);
	} else if (c->aborted && c->err[0]) {
		if (e)
			fprintf(e, "%s: %s\n", r->cmd, c->err);
	} else if (c->status && (c->status < 200 || c->status >= 300)) {
		report_http_error(c);
	} else if (res == CURLE_OK) {
		rc = 0;
	} else if (!c->got_header && (connect_failure(res) || !c->status)) {
		if (e)
			fprintf(e, "%s: cannot reach the thaw host at %s: %s\n", r->cmd, r->host,
				reason);
	} else if (stream_msg) {
		rc = 1; /* the caller decides whether the stream had ended */
		snprintf(c->err, sizeof c->err, "%s", reason);
	} else if (e) {
		fprintf(e, "%s: the connection to the thaw host at %s broke: %s\n", r->cmd,
			r->host, reason);
	}
	free(url);
	return rc;
}

/* GET path and parse the answer as an object. New reference, or NULL with the
 * reason printed. When raw is not NULL, the answer's bytes too (malloc'd). */
static json_t *get_json(struct remote *r, const char *path, char **raw, int quiet)
{
	struct call c;
	call_init(&c, r);
	c.quiet = quiet; /* best effort: a failure is not worth a message */
	json_t *j = NULL;
	if (call_perform(&c, "GET", path, NULL, NULL) == 0) {
		char err[256];
		j = thaw_remote_parse_object((const char *)buf_head(&c.body), buf_used(&c.body), err,
					     sizeof err);
		if (!j && !quiet)
			fprintf(stderr, "%s: %s\n", r->cmd, err);
		else if (j && raw)
			*raw = xasprintf("%.*s", (int)buf_used(&c.body), (const char *)buf_head(&c.body));
	}
	call_dispose(&c);
	return j;
}

/* POST a JSON body (or DELETE, body NULL); returns the answer object (new)
 * or NULL, reason printed. */
static json_t *send_json(struct remote *r, const char *method, const char *path, json_t *body)
{
	char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (body && !s)
		fatal("out of memory");
	struct call c;
	call_init(&c, r);
	json_t *j = NULL;
	if (call_perform(&c, method, path, s, NULL) == 0) {
		char err[256];
		j = thaw_remote_parse_object((const char *)buf_head(&c.body), buf_used(&c.body), err,
					     sizeof err);
		if (!j)
			fprintf(stderr, "%s: %s\n", r->cmd, err);
	}
	call_dispose(&c);
	free(s);
	return j;
}

static json_t *post_json(struct remote *r, const char *path, json_t *body)
{
	return send_json(r, "POST", path, body);
}

/* "/v1/workers/NAME" + rest, NAME escaped. */
static char *worker_path(struct remote *r, const char *name, const char *rest)
{
	CURL *h = curl_easy_init();
	char *e = h ? curl_easy_escape(h, name, 0) : NULL;
	if (!e)
		fatal("out of memory");
	char *p = xasprintf("/v1/workers/%s%s", e, rest);
	curl_free(e);
	curl_easy_cleanup(h);
	return p;
}

/* The worker's name: given, else the project's in the current directory. */
static char *resolve_name(const char *cmd, const char *given)
{
	if (given) {
		if (!project_name_valid(given)) {
			fprintf(stderr,
				"%s: '%s' is not a worker name: use 1-63 lowercase letters, digits, "
				"'-' or '_'\n",
				cmd, given);
			return NULL;
		}
		return xstrdup(given);
	}
	char err[1024];
	struct project *c = project_load(".", err, sizeof err);
	if (!c) {
		fprintf(stderr, "%s: no worker named (--name NAME) and no project here: %s\n", cmd,
			err);
		return NULL;
	}
	char *n = xstrdup(c->name);
	project_free(c);
	return n;
}

/* Print "LABEL: 3 at 10%, 2 at 90%" for a deployment, numbering versions by
 * a fresh list from the host (best effort) and by known_id = known_number
 * when given (the version just deployed). */
static void print_deployment(struct remote *r, const char *name, const char *label,
			     const json_t *dep, const char *known_id, long long known_number)
{
	char *path = worker_path(r, name, "/versions");
	json_t *list = get_json(r, path, NULL, 1);
	free(path);
	json_t *versions = json_array();
	json_t *got = json_object_get(list, "versions");
	if (json_is_array(got))
		json_array_extend(versions, got);
	if (known_id && known_number > 0)
		json_array_append_new(versions, json_pack("{s:s, s:I}", "id", known_id, "number",
							  (json_int_t)known_number));
	printf("%s: ", label);
	thaw_remote_put_deployment(stdout, dep, versions);
	putchar('\n');
	const json_t *id = json_object_get(dep, "id");
	if (json_is_string(id) && thaw_remote_id_valid(json_string_value(id)))
		printf("deployment: %s\n", json_string_value(id));
	else if (json_is_integer(id))
		printf("deployment: %lld\n", (long long)json_integer_value(id));
	json_decref(versions);
	json_decref(list);
}

static int parse_percentage(const char *cmd, const char *v, int *out)
{
	uint64_t p;
	if (parse_u64(v, 100, &p) < 0 || p < 1) {
		fprintf(stderr, "%s: --percentage expects a whole number from 1 to 100, not '%s'\n",
			cmd, v);
		return -1;
	}
	*out = (int)p;
	return 0;
}

/* --- thaw deploy --- */

static const char deploy_usage[] =
	"usage: thaw deploy [DIR] [options]\n"
	"\n"
	"Pack the worker project in DIR (default: the current directory) and deploy it to a\n"
	"thaw host as a new version. Installs the project's dependencies first when\n"
	"python_modules/ is missing or older than pyproject.toml. Files that .gitignore or\n"
	".thawignore name are left out. Shows the host's progress: stored, snapshot built,\n"
	"validated (restored and health-checked), live. A version that fails never takes\n"
	"traffic. Ends with a line \"version: ID\" on stdout.\n"
	"\n"
	"Options:\n"
	"  --percentage P       send P % of the traffic to the new version (1..100, default\n"
	"                       100); the current main version keeps the rest\n"
	"  --message M          a note kept with the version\n"
	"  --name NAME          deploy under this worker name instead of the project's\n"
	"  --no-install         do not run the installer\n"
	"  --index-url U        installer: the package index\n"
	"  --extra-index-url U  installer: another index (repeatable)\n"
	"  --find-links P       installer: a wheel directory or page (repeatable)\n"
	"  --no-index           installer: no index, only --find-links\n"
	"  --env NAME           deploy the environment NAME of the configuration\n"
	"                       ([env.NAME] in wrangler.toml; its worker is NAME-ENV unless\n"
	"                       the section names it)\n" REMOTE_COMMON_HELP;

struct deploy_state {
	struct thaw_deploy_progress p;
};

static int deploy_line(struct call *c, char *line, size_t len)
{
	struct deploy_state *d = c->arg;
	if (thaw_remote_stage_line(&d->p, line, len, stdout, c->err, sizeof c->err) < 0)
		return -1;
	fflush(stdout);
	return 0;
}

static void pack_progress(const struct bundle_stats *st, void *arg)
{
	if (*(int *)arg)
		fprintf(stderr, "\r\033[KPacking: %llu files, %.1f MB", (unsigned long long)st->files,
			(double)st->bytes / 1e6);
}

/* An unnamed temporary file, gone when closed. */
static int temp_file(void)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	char *path = xasprintf("%s/thaw-bundle-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	free(path);
	return fd;
}

int cmd_deploy(int argc, char **argv)
{
	static const struct option opts[] = {
		{"percentage", required_argument, NULL, 'p'},
		{"message", required_argument, NULL, 'm'},
		{"name", required_argument, NULL, 'n'},
		{"no-install", no_argument, NULL, 'N'},
		{"index-url", required_argument, NULL, 'i'},
		{"extra-index-url", required_argument, NULL, 'e'},
		{"find-links", required_argument, NULL, 'f'},
		{"no-index", no_argument, NULL, 'X'},
		{"env", required_argument, NULL, 'E'},
		REMOTE_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const char *cmd = "thaw deploy";
	const char *env = NULL;
	struct remote_opts ro = {0};
	struct thaw_install_options io = {0};
	io.stdout_to_stderr = 1; /* stdout is for the deployment's lines */
	const char *message = NULL, *name = NULL;
	int percentage = 0, no_install = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (common_opt(&ro, c, optarg))
			continue;
		switch (c) {
		case 'p':
			if (parse_percentage(cmd, optarg, &percentage) < 0)
				return 2;
			break;
		case 'E':
			env = optarg;
			break;
		case 'm':
			if (strlen(optarg) > MAX_MESSAGE) {
				fprintf(stderr, "%s: --message is longer than %d bytes\n", cmd,
					MAX_MESSAGE);
				return 2;
			}
			message = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'N':
			no_install = 1;
			break;
		case 'i':
		case 'e':
		case 'f':
			if (thaw_install_option(&io,
						c == 'i'   ? "index-url"
						: c == 'e' ? "extra-index-url"
							   : "find-links",
						optarg) < 0)
				return 2;
			break;
		case 'X':
			io.no_index = 1;
			break;
		case 'h':
			fputs(deploy_usage, stdout);
			return 0;
		default:
			fputs(deploy_usage, stderr);
			return 2;
		}
	}
	if (argc - optind > 1) {
		fputs(deploy_usage, stderr);
		return 2;
	}
	const char *dir = optind < argc ? argv[optind] : ".";
	if (name && !project_name_valid(name)) {
		fprintf(stderr,
			"%s: '%s' is not a worker name: use 1-63 lowercase letters, digits, '-' or '_'\n",
			cmd, name);
		return 2;
	}

	struct remote r;
	if (remote_open(&r, cmd, &ro) < 0)
		return 1;
	int rc = 1, fd = -1;
	char *path = NULL;
	struct deploy_state d = {0};
	char err[1024];
	struct project *cfg = project_load_env(dir, env, err, sizeof err);
	if (!cfg) {
		fprintf(stderr, "%s: %s\n", cmd, err);
		goto out;
	}
	if (!name)
		name = cfg->name;

	if (!no_install && thaw_install_needed(cfg) > 0) {
		fprintf(stderr, "Installing the dependencies into %s/python_modules\n", cfg->dir);
		if (thaw_install_run(cfg, &io) < 0) {
			fprintf(stderr, "%s: the install failed; nothing was deployed "
					"(--no-install deploys without it)\n", cmd);
			goto out;
		}
	}

	fd = temp_file();
	if (fd < 0) {
		fprintf(stderr, "%s: cannot create a temporary file for the bundle: %s\n", cmd,
			strerror(errno));
		goto out;
	}
	struct bundle_stats st = {0};
	int tty = isatty(STDERR_FILENO);
	if (bundle_pack_keep(cfg->dir, cfg->assets.directory, fd, &st, pack_progress, &tty, err,
			     sizeof err) < 0) {
		if (tty)
			fputs("\r\033[K", stderr);
		fprintf(stderr, "%s: cannot pack %s: %s\n", cmd, cfg->dir, err);
		goto out;
	}
	if (tty)
		fputs("\r\033[K", stderr);
	struct stat sb;
	if (fstat(fd, &sb) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		fprintf(stderr, "%s: cannot read back the bundle: %s\n", cmd, strerror(errno));
		goto out;
	}
	if (sb.st_size < 1000000)
		printf("Packed %llu files (%.1f KB)\n", (unsigned long long)st.files,
		       (double)sb.st_size / 1e3);
	else
		printf("Packed %llu files (%.1f MB)\n", (unsigned long long)st.files,
		       (double)sb.st_size / 1e6);
	fflush(stdout);

	/* The query: message and percentage, escaped. */
	CURL *esc = curl_easy_init();
	if (!esc)
		fatal("out of memory");
	char *emsg = message ? curl_easy_escape(esc, message, 0) : NULL;
	char pct[32] = "";
	if (percentage)
		snprintf(pct, sizeof pct, "percentage=%d", percentage);
	char envq[80] = "";
	if (env)
		snprintf(envq, sizeof envq, "env=%s", env); /* checked: [A-Za-z0-9_-] */
	char *query = xasprintf("/versions%s%s%s%s%s%s%s", (emsg || pct[0] || envq[0]) ? "?" : "",
				emsg ? "message=" : "", emsg ? emsg : "",
				(emsg && pct[0]) ? "&" : "", pct,
				((emsg || pct[0]) && envq[0]) ? "&" : "", envq);
	curl_free(emsg);
	curl_easy_cleanup(esc);
	path = worker_path(&r, name, query);
	free(query);

	fprintf(stderr, "Deploying %s to %s\n", name, r.host);
	struct call call;
	call_init(&call, &r);
	call.upload_fd = fd;
	call.upload_size = (uint64_t)sb.st_size;
	call.show_progress = sb.st_size >= BIG_UPLOAD;
	call.progress_tty = tty;
	call.on_line = deploy_line;
	call.arg = &d;
	call.max_total = REMOTE_MAX_ANSWER;
	signal(SIGINT, on_sigint);
	int prc = call_perform(&call, "POST", path, NULL, "stream");
	signal(SIGINT, SIG_DFL);
	char reason[sizeof call.err];
	snprintf(reason, sizeof reason, "%s", call.err);
	call_dispose(&call);
	if (prc < 0)
		goto out;
	if (d.p.done == 1) {
		print_deployment(&r, name, "live", d.p.deployment, d.p.version, d.p.number);
		printf("version: %s\n", d.p.version);
		rc = 0;
	} else if (d.p.done == -1) {
		fflush(stdout);
		if (d.p.number)
			fprintf(stderr, "%s: version %lld failed; it takes no traffic:\n", cmd,
				d.p.number);
		else
			fprintf(stderr, "%s: the deployment failed:\n", cmd);
		thaw_remote_put_safe(stderr, d.p.error, strlen(d.p.error), 0, 0);
		fputc('\n', stderr);
	} else {
		fprintf(stderr, "%s: the host closed the connection before the deployment finished%s%s\n",
			cmd, prc == 1 ? ": " : "", prc == 1 ? reason : "");
		if (d.p.number)
			fprintf(stderr, "%s: `thaw versions list` shows what became of version %lld\n",
				cmd, d.p.number);
	}
out:
	fflush(stdout);
	thaw_remote_progress_dispose(&d.p);
	free(path);
	if (fd >= 0)
		close(fd);
	project_free(cfg);
	remote_close(&r);
	return rc;
}

/* --- thaw versions list, thaw versions delete --- */

static const char versions_usage[] =
	"usage: thaw versions list [NAME] [--json] [options]\n"
	"       thaw versions delete VERSION [NAME] [--json] [options]\n"
	"\n"
	"list: the versions of worker NAME (default: the project in the current directory) on a\n"
	"thaw host: number, id, when it was made, state, its share of the traffic now, what it\n"
	"holds on disk (IMAGE: its snapshot image's file; BASE: the pages that image maps from\n"
	"the host's base image, stored once for every version; WS: its working set), message.\n"
	"A failed version shows the first line of its error; the base images follow the table.\n"
	"\n"
	"delete: remove VERSION (its id, a unique prefix of 4+ characters, or its number: 3 or\n"
	"#3) from the host, with its bundle and snapshot unless another version uses them. A\n"
	"version of the current deployment is refused: roll out or roll back first. (The host\n"
	"also deletes old versions by itself: `thaw serve --keep-versions`.)\n"
	"\n"
	"Options:\n"
	"  --name NAME          the worker (same as the NAME argument)\n"
	"  --json               print the host's JSON answer as it is\n" REMOTE_COMMON_HELP;

static int ref_valid(const char *cmd, const char *v);

/* thaw versions delete VERSION: the host's answer {"deleted": version}. */
static int versions_delete(struct remote *r, const char *cmd, const char *name, const char *ref,
			   int json)
{
	CURL *h = curl_easy_init();
	char *e = h ? curl_easy_escape(h, ref, 0) : NULL;
	if (!e)
		fatal("out of memory");
	char *rest = xasprintf("/versions/%s", e);
	curl_free(e);
	curl_easy_cleanup(h);
	char *path = worker_path(r, name, rest);
	free(rest);
	json_t *ans = send_json(r, "DELETE", path, NULL);
	free(path);
	int rc = 1;
	const json_t *v = json_object_get(ans, "deleted");
	const json_t *id = json_object_get(v, "id"), *num = json_object_get(v, "number");
	if (!ans) {
		/* the reason is printed */
	} else if (json) {
		char *text = json_dumps(ans, JSON_COMPACT);
		if (!text)
			fatal("out of memory");
		puts(text);
		free(text);
		rc = 0;
	} else if (json_is_string(id) && thaw_remote_id_valid(json_string_value(id)) &&
		   json_is_integer(num)) {
		printf("deleted version %lld of %s (%s)\n", (long long)json_integer_value(num), name,
		       json_string_value(id));
		rc = 0;
	} else {
		fprintf(stderr, "%s: the host's answer names no deleted version\n", cmd);
	}
	json_decref(ans);
	return rc;
}

int cmd_versions(int argc, char **argv)
{
	static const struct option opts[] = {
		{"name", required_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},
		REMOTE_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	struct remote_opts ro = {0};
	const char *name = NULL;
	int json = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (common_opt(&ro, c, optarg))
			continue;
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			fputs(versions_usage, stdout);
			return 0;
		default:
			fputs(versions_usage, stderr);
			return 2;
		}
	}
	int npos = argc - optind;
	int del = npos >= 1 && !strcmp(argv[optind], "delete");
	const char *cmd = del ? "thaw versions delete" : "thaw versions list";
	/* list [NAME] | delete VERSION [NAME] */
	int need = del ? 2 : 1;
	if (npos < 1 || (!del && strcmp(argv[optind], "list") != 0) || npos < need ||
	    npos > need + 1 || (npos == need + 1 && name)) {
		fputs(versions_usage, stderr);
		return 2;
	}
	if (npos == need + 1)
		name = argv[optind + need];
	const char *ref = del ? argv[optind + 1] : NULL;
	if (ref && !ref_valid(cmd, ref))
		return 2;
	char *n = resolve_name(cmd, name);
	if (!n)
		return 1;
	struct remote r;
	if (remote_open(&r, cmd, &ro) < 0) {
		free(n);
		return 1;
	}
	int rc = 1;
	if (del) {
		rc = versions_delete(&r, cmd, n, ref, json);
		free(n);
		remote_close(&r);
		return rc;
	}
	char *path = worker_path(&r, n, "/versions");
	char *raw = NULL;
	json_t *j = get_json(&r, path, &raw, 0);
	if (j) {
		char err[256];
		if (json) {
			fputs(raw, stdout);
			if (!*raw || raw[strlen(raw) - 1] != '\n')
				putchar('\n');
			rc = 0;
		} else if (thaw_remote_versions_table(raw, strlen(raw), stdout, err, sizeof err) < 0) {
			fprintf(stderr, "%s: %s\n", cmd, err);
		} else {
			rc = 0;
		}
	}
	json_decref(j);
	free(raw);
	free(path);
	free(n);
	remote_close(&r);
	return rc;
}

/* --- thaw rollout, thaw rollback --- */

static const char rollout_usage[] =
	"usage: thaw rollout VERSION --percentage P [NAME] [options]\n"
	"\n"
	"Send P % of worker NAME's traffic (default: the project in the current directory) to\n"
	"VERSION (its id, a unique prefix of 4+ characters, or its number: 3 or #3); the\n"
	"current main version keeps the rest. --percentage 100 makes VERSION the only one.\n"
	"\n"
	"Options:\n"
	"  --percentage P       1..100 (required)\n"
	"  --name NAME          the worker (same as the NAME argument)\n" REMOTE_COMMON_HELP;

static const char rollback_usage[] =
	"usage: thaw rollback [VERSION] [--name NAME] [options]\n"
	"\n"
	"Send all of the worker's traffic to VERSION (its id, a unique prefix, or its number),\n"
	"or, without one, back to the main version of the deployment before the current one.\n"
	"The worker is --name NAME, else the project in the current directory.\n"
	"\n"
	"Options:\n"
	"  --name NAME          the worker\n" REMOTE_COMMON_HELP;

static int ref_valid(const char *cmd, const char *v)
{
	const char *p = v[0] == '#' ? v + 1 : v;
	if (!thaw_remote_id_valid(p)) {
		fprintf(stderr,
			"%s: '%s' does not name a version: give its id, a prefix of it, or its number\n",
			cmd, v);
		return 0;
	}
	return 1;
}

static int deployment_command(int argc, char **argv, int rollout)
{
	static const struct option opts[] = {
		{"percentage", required_argument, NULL, 'p'},
		{"name", required_argument, NULL, 'n'},
		REMOTE_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const char *cmd = rollout ? "thaw rollout" : "thaw rollback";
	const char *usage = rollout ? rollout_usage : rollback_usage;
	struct remote_opts ro = {0};
	const char *name = NULL;
	int percentage = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (common_opt(&ro, c, optarg))
			continue;
		switch (c) {
		case 'p':
			if (!rollout) {
				fputs(usage, stderr);
				return 2;
			}
			if (parse_percentage(cmd, optarg, &percentage) < 0)
				return 2;
			break;
		case 'n':
			name = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	int npos = argc - optind;
	const char *version = npos > 0 ? argv[optind] : NULL;
	if (rollout) {
		if (npos < 1 || npos > 2 || (npos == 2 && name)) {
			fputs(usage, stderr);
			return 2;
		}
		if (!percentage) {
			fprintf(stderr, "%s: --percentage P is required (1..100)\n", cmd);
			return 2;
		}
		if (npos == 2)
			name = argv[optind + 1];
	} else if (npos > 1) {
		fputs(usage, stderr);
		return 2;
	}
	if (version && !ref_valid(cmd, version))
		return 2;
	char *n = resolve_name(cmd, name);
	if (!n)
		return 1;
	struct remote r;
	if (remote_open(&r, cmd, &ro) < 0) {
		free(n);
		return 1;
	}
	json_t *body = json_object();
	if (version)
		json_object_set_new(body, "version", json_string(version));
	if (rollout)
		json_object_set_new(body, "percentage", json_integer(percentage));
	char *path = worker_path(&r, n, rollout ? "/rollout" : "/rollback");
	json_t *ans = post_json(&r, path, body);
	int rc = 1;
	if (ans) {
		const json_t *dep = json_object_get(ans, "deployment");
		if (json_is_object(dep)) {
			print_deployment(&r, n, rollout ? "rolled out" : "rolled back", dep, NULL, 0);
			rc = 0;
		} else {
			fprintf(stderr, "%s: the host's answer has no deployment\n", cmd);
		}
	}
	json_decref(ans);
	json_decref(body);
	free(path);
	free(n);
	remote_close(&r);
	return rc;
}

int cmd_rollout(int argc, char **argv)
{
	return deployment_command(argc, argv, 1);
}

int cmd_rollback(int argc, char **argv)
{
	return deployment_command(argc, argv, 0);
}

/* --- thaw tail --- */

static const char tail_usage[] =
	"usage: thaw tail [NAME] [--json] [options]\n"
	"\n"
	"Print the log lines of worker NAME's instances (default: the project in the current\n"
	"directory) as they happen: what the worker prints, its logging and its uncaught\n"
	"exceptions, as \"HH:MM:SS.mmm VERSION REQUEST-ID stream: message\". Runs until\n"
	"Ctrl-C, or until the host closes the stream (then exits 1).\n"
	"\n"
	"Options:\n"
	"  --name NAME          the worker (same as the NAME argument)\n"
	"  --json               print each line as the host's JSON object\n" REMOTE_COMMON_HELP;

static int tail_line(struct call *c, char *line, size_t len)
{
	int json = *(int *)c->arg;
	if (json) {
		char err[256];
		json_t *j = thaw_remote_parse_object(line, len, err, sizeof err);
		if (!j) {
			snprintf(c->err, sizeof c->err, "unreadable log line from the host: %s", err);
			return -1;
		}
		json_decref(j);
		/* Valid JSON holds no raw control characters: safe as it is. */
		fwrite(line, 1, len, stdout);
		putchar('\n');
	} else if (thaw_remote_tail_line(line, len, stdout, c->err, sizeof c->err) < 0) {
		return -1;
	}
	if (fflush(stdout) != 0) {
		/* stdout went away (`thaw tail | head`): stop quietly. */
		interrupted = 1;
		return -1;
	}
	return 0;
}

/* The arguments of a command on one worker: [NAME] [--name NAME] [--json] and
 * the common options. -1 when the command goes on (*name, *json, *ro filled),
 * else the exit status (help printed, or usage on bad arguments). */
static int parse_worker_args(int argc, char **argv, const char *usage, struct remote_opts *ro,
			     const char **name, int *json)
{
	static const struct option opts[] = {
		{"name", required_argument, NULL, 'n'},
		{"json", no_argument, NULL, 'j'},
		REMOTE_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	int c;
	*name = NULL;
	*json = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (common_opt(ro, c, optarg))
			continue;
		switch (c) {
		case 'n':
			*name = optarg;
			break;
		case 'j':
			*json = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (argc - optind > 1 || (argc - optind == 1 && *name)) {
		fputs(usage, stderr);
		return 2;
	}
	if (argc - optind == 1)
		*name = argv[optind];
	return -1;
}

int cmd_tail(int argc, char **argv)
{
	const char *cmd = "thaw tail";
	struct remote_opts ro = {0};
	const char *name;
	int json;
	int st = parse_worker_args(argc, argv, tail_usage, &ro, &name, &json);
	if (st >= 0)
		return st;
	char *n = resolve_name(cmd, name);
	if (!n)
		return 1;
	struct remote r;
	if (remote_open(&r, cmd, &ro) < 0) {
		free(n);
		return 1;
	}
	char *path = worker_path(&r, n, "/tail");
	fprintf(stderr, "Tailing %s on %s (Ctrl-C stops)\n", n, r.host);
	struct call call;
	call_init(&call, &r);
	call.on_line = tail_line;
	call.arg = &json;
	call.interrupt_ok = 1;
	signal(SIGINT, on_sigint);
	signal(SIGTERM, on_sigint);
	int prc = call_perform(&call, "GET", path, NULL, "stream");
	int rc = 1;
	if (interrupted) {
		rc = 0; /* Ctrl-C, or nobody reads our output any more: how tail ends */
	} else if (prc >= 0) {
		fprintf(stderr, "%s: the host closed the log stream%s%s\n", cmd,
			prc == 1 ? ": " : "", prc == 1 ? call.err : "");
	}
	call_dispose(&call);
	free(path);
	free(n);
	remote_close(&r);
	return rc;
}

/* --- thaw secret --- */

static const char secret_usage[] =
	"usage: thaw secret put NAME [--name WORKER] [options]\n"
	"       thaw secret list [--name WORKER] [options]\n"
	"       thaw secret delete NAME [--name WORKER] [options]\n"
	"\n"
	"Manage a deployed worker's secrets on a host (default worker: the project in the\n"
	"current directory). `put` reads the value from stdin (a prompt without echo on a\n"
	"terminal; else all of stdin, one trailing newline dropped), never from the command\n"
	"line. The worker reads a secret as env.NAME inside its handlers. Changing a secret\n"
	"makes a new version, deployed at 100 % once it is validated; `put` and `delete` wait\n"
	"for it. `list` prints the names only: a value is never shown again.\n"
	"\n"
	"Options:\n"
	"  --name WORKER        the worker (default: the project's name here)\n"
	"  --no-wait            do not wait for the new version\n" REMOTE_COMMON_HELP;

/* The secret's value from stdin: at most STORE_SECRET_MAX bytes. Returns new. */
static char *read_secret_value(const char *cmd)
{
	size_t cap = 5121 + 2, n = 0;
	char *v = xmalloc(cap + 1);
	int tty = isatty(STDIN_FILENO);
	struct termios old, quiet;
	/* While echo is off, a signal that ends us must not leave the terminal
	 * so: it interrupts the read (no SA_RESTART) and we put echo back. */
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
	struct sigaction sa = {.sa_handler = on_sigint}, saved[4];
	sigemptyset(&sa.sa_mask);
	if (tty) {
		fputs("Enter a secret value: ", stderr);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			interrupted = 0;
			for (int i = 0; i < 4; i++)
				sigaction(sigs[i], &sa, &saved[i]);
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
		} else {
			tty = 0;
		}
	}
	for (;;) {
		ssize_t got = read(STDIN_FILENO, v + n, cap - n);
		if (got < 0 && errno == EINTR && !interrupted)
			continue;
		if (got <= 0)
			break;
		n += (size_t)got;
		if (n == cap || (isatty(STDIN_FILENO) && memchr(v, '\n', n)))
			break;
	}
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSANOW, &old);
		for (int i = 0; i < 4; i++)
			sigaction(sigs[i], &saved[i], NULL);
		fputc('\n', stderr);
		if (interrupted) {
			fprintf(stderr, "%s: interrupted\n", cmd);
			explicit_bzero(v, cap + 1);
			free(v);
			return NULL;
		}
	}
	if (isatty(STDIN_FILENO)) {
		char *nl = memchr(v, '\n', n);
		if (nl)
			n = (size_t)(nl - v);
	} else if (n && v[n - 1] == '\n') {
		n--;
		if (n && v[n - 1] == '\r')
			n--;
	}
	v[n] = 0;
	if (n > 5120) {
		fprintf(stderr, "%s: the value is longer than 5120 bytes\n", cmd);
		free(v);
		return NULL;
	}
	if (memchr(v, 0, n)) {
		fprintf(stderr, "%s: the value has a NUL byte\n", cmd);
		free(v);
		return NULL;
	}
	return v;
}

/* Wait for a version numbered above `after` to be ready or failed. */
static int wait_new_version(struct remote *r, const char *cmd, const char *name, long long after)
{
	char *path = worker_path(r, name, "/versions");
	int rc = 1;
	for (int i = 0; i < 3000 && !interrupted; i++) {
		json_t *j = get_json(r, path, NULL, 1);
		const json_t *list = json_object_get(j, "versions");
		size_t k;
		const json_t *v;
		const json_t *found = NULL;
		json_array_foreach(list, k, v) {
			const json_t *num = json_object_get(v, "number");
			if (json_is_integer(num) && json_integer_value(num) > after &&
			    (!found || json_integer_value(num) >
					   json_integer_value(json_object_get(found, "number"))))
				found = v;
		}
		const char *state = found ? json_string_value(json_object_get(found, "state")) : NULL;
		if (state && strcmp(state, "building") != 0) {
			long long num = (long long)json_integer_value(json_object_get(found, "number"));
			if (!strcmp(state, "ready")) {
				printf("Deployed version %lld with the new secrets\n", num);
				rc = 0;
			} else {
				const char *e = json_string_value(json_object_get(found, "error"));
				fprintf(stderr, "%s: version %lld failed: %s\n", cmd, num, e ? e : state);
			}
			json_decref(j);
			free(path);
			return rc;
		}
		json_decref(j);
		usleep(200000); /* polling a remote host: nothing here to wait on */
	}
	fprintf(stderr, "%s: no new version became ready in 10 minutes\n", cmd);
	free(path);
	return rc;
}

int cmd_secret(int argc, char **argv)
{
	static const struct option opts[] = {
		{"name", required_argument, NULL, 'n'},
		{"no-wait", no_argument, NULL, 'W'},
		REMOTE_COMMON_OPTIONS,
		{NULL, 0, NULL, 0},
	};
	const char *cmd = "thaw secret";
	struct remote_opts ro = {0};
	const char *name = NULL;
	int no_wait = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
		if (common_opt(&ro, c, optarg))
			continue;
		switch (c) {
		case 'n':
			name = optarg;
			break;
		case 'W':
			no_wait = 1;
			break;
		case 'h':
			fputs(secret_usage, stdout);
			return 0;
		default:
			fputs(secret_usage, stderr);
			return 2;
		}
	}
	int npos = argc - optind;
	const char *verb = npos > 0 ? argv[optind] : "";
	int list = !strcmp(verb, "list"), put = !strcmp(verb, "put"), del = !strcmp(verb, "delete");
	if (!(list && npos == 1) && !((put || del) && npos == 2)) {
		fputs(secret_usage, stderr);
		return 2;
	}
	const char *secret = npos == 2 ? argv[optind + 1] : NULL;
	char *n = resolve_name(cmd, name);
	if (!n)
		return 1;
	char *value = NULL;
	if (put && !(value = read_secret_value(cmd))) {
		free(n);
		return 1;
	}
	struct remote r;
	if (remote_open(&r, cmd, &ro) < 0) {
		free(n);
		free(value);
		return 1;
	}
	char *path = worker_path(&r, n, "/secrets");
	int rc = 1;
	if (list) {
		json_t *j = get_json(&r, path, NULL, 0);
		const json_t *names = json_object_get(j, "secrets");
		if (json_is_array(names)) {
			size_t i;
			const json_t *e;
			json_array_foreach(names, i, e) {
				const char *s = json_string_value(e);
				if (s)
					thaw_remote_put_safe(stdout, s, strlen(s), 255, 1), putchar('\n');
			}
			rc = 0;
		}
		json_decref(j);
	} else {
		json_t *body = put ? json_pack("{s:s, s:s}", "name", secret, "value", value)
				   : json_pack("{s:s, s:b}", "name", secret, "delete", 1);
		if (!body) {
			fprintf(stderr, "%s: the value is not valid UTF-8\n", cmd);
		} else {
			json_t *ans = post_json(&r, path, body);
			json_decref(body);
			if (ans) {
				printf("Secret %s %s on %s\n", secret, put ? "stored" : "deleted", n);
				fflush(stdout);
				rc = 0;
				if (json_is_true(json_object_get(ans, "deploying")) && !no_wait) {
					fprintf(stderr, "Deploying a new version of %s with it\n", n);
					rc = wait_new_version(&r, cmd, n,
							      (long long)json_integer_value(
								      json_object_get(ans, "after")));
				}
			}
			json_decref(ans);
		}
	}
	if (value) {
		memset(value, 0, strlen(value));
		free(value);
	}
	free(path);
	free(n);
	remote_close(&r);
	return rc;
}

/* --- thaw crons --- */

static const char crons_usage[] =
	"usage: thaw crons [NAME] [--json] [options]\n"
	"\n"
	"A deployed worker's cron triggers on a host, the runs in progress and its latest\n"
	"runs (when each was due, its outcome and duration, the error's last line).\n"
	"\n"
	"Options:\n"
	"  --name NAME          the worker (same as the NAME argument)\n"
	"  --json               print the host's JSON answer\n" REMOTE_COMMON_HELP;

int cmd_crons(int argc, char **argv)
{
	const char *cmd = "thaw crons";
	struct remote_opts ro = {0};
	const char *name;
	int json;
	int st = parse_worker_args(argc, argv, crons_usage, &ro, &name, &json);
	if (st >= 0)
		return st;
	char *n = resolve_name(cmd, name);
	if (!n)
		return 1;
	struct remote r;
	if (remote_open(&r, cmd, &ro) < 0) {
		free(n);
		return 1;
	}
	char *path = worker_path(&r, n, "/crons");
	char *raw = NULL;
	json_t *j = get_json(&r, path, &raw, 0);
	int rc = 1;
	if (j) {
		char err[256];
		if (json) {
			fputs(raw, stdout);
			putchar('\n');
			rc = 0;
		} else if (thaw_remote_crons_table(raw, strlen(raw), stdout, err, sizeof err) < 0) {
			fprintf(stderr, "%s: %s\n", cmd, err);
		} else {
			rc = 0;
		}
	}
	json_decref(j);
	free(raw);
	free(path);
	free(n);
	remote_close(&r);
	return rc;
}

/* --- requests for `thaw kv key` and `thaw d1` with --host (state_remote.c) --- */

struct thaw_remote_conn {
	struct remote r;
};

struct thaw_remote_conn *thaw_remote_connect(const char *cmd, const char *host,
					     const char *token_file, int verbose)
{
	struct thaw_remote_conn *conn = xcalloc(1, sizeof *conn);
	struct remote_opts o = {.host = host, .token_file = token_file, .verbose = verbose};
	if (remote_open(&conn->r, cmd, &o) < 0) {
		free(conn);
		return NULL;
	}
	return conn;
}

void thaw_remote_disconnect(struct thaw_remote_conn *conn)
{
	if (!conn)
		return;
	remote_close(&conn->r);
	free(conn);
}

char *thaw_remote_escape(const char *s, size_t n)
{
	CURL *h = curl_easy_init();
	char *e = h ? curl_easy_escape(h, s, (int)n) : NULL;
	if (!e)
		fatal("out of memory");
	char *copy = xstrdup(e);
	curl_free(e);
	curl_easy_cleanup(h);
	return copy;
}

char *thaw_remote_worker_path(const char *name, const char *rest)
{
	char *e = thaw_remote_escape(name, strlen(name));
	char *p = xasprintf("/v1/workers/%s%s", e, rest);
	free(e);
	return p;
}

void thaw_remote_answer_dispose(struct thaw_remote_answer *a)
{
	buf_free(&a->body);
	free(a->kv_metadata);
	memset(a, 0, sizeof *a);
}

int thaw_remote_request(struct thaw_remote_conn *conn, const char *method, const char *path,
			const void *body, size_t len, const char *content_type, size_t max_body,
			struct thaw_remote_answer *a, char *err, size_t errlen)
{
	struct remote *r = &conn->r;
	memset(a, 0, sizeof *a);
	struct call c;
	call_init(&c, r);
	c.max_body = max_body;
	char *url = xasprintf("%s%s", r->host, path);
	struct curl_slist *headers = NULL;
	for (struct curl_slist *s = r->auth; s; s = s->next)
		headers = curl_slist_append(headers, s->data);
	headers = curl_slist_append(headers, "Accept: application/json, application/octet-stream");
	headers = curl_slist_append(headers, "Expect:");
	if (body) {
		char *ct = xasprintf("Content-Type: %s", content_type);
		headers = curl_slist_append(headers, ct);
		free(ct);
	}
	if (!headers)
		fatal("out of memory");
	CURL *h = c.curl;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "thaw/0.1.0");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c.errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &c);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	/* A D1 import runs under D1's time limit per statement, not per file. */
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 3600L);
	if (strcmp(method, "GET"))
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	}
	if (r->verbose)
		fprintf(stderr, "> %s %s\n> Authorization: Bearer (hidden)\n> Content-Length: %zu\n",
			method, url, body ? len : 0);
	CURLcode res = curl_easy_perform(h);
	curl_slist_free_all(headers);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	int rc = 0;
	if (c.aborted && c.err[0]) {
		snprintf(err, errlen, "%s", c.err);
		rc = -1;
	} else if (res != CURLE_OK || !status) {
		snprintf(err, errlen, "cannot reach the thaw host at %s: %s", r->host,
			 c.errbuf[0] ? c.errbuf : curl_easy_strerror(res));
		rc = -1;
	} else {
		a->status = status;
		a->body = c.body;
		memset(&c.body, 0, sizeof c.body);
		a->kv_metadata = c.kv_metadata;
		c.kv_metadata = NULL;
		a->kv_expiration = c.kv_expiration;
	}
	free(url);
	call_dispose(&c);
	return rc;
}
