/*
 * Reading a thaw host's control-API answers (docs/control-api.md) and turning
 * them into the lines the deployment commands print. See remote.h.
 *
 * Invariants: every value is type-checked before use (a field of the wrong
 * type prints as "?"); every string from the host goes out through
 * thaw_remote_put_safe or safe_cell; every loop over a host's array is bounded
 * by the answer's size, which the caller has already limited.
 */
#include "ext/remote.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

/* Bytes of s[0..n) to copy so as not to split a UTF-8 sequence, at most max. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
	if (n <= max)
		return n;
	size_t k = max;
	while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80)
		k--;
	return k;
}

void thaw_remote_put_safe(FILE *f, const char *s, size_t n, size_t max, int one_line)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t m = max ? utf8_cut(s, n, max) : n;
	for (size_t i = 0; i < m;) {
		uint32_t cp;
		size_t k = utf8_decode(u + i, m - i, &cp);
		if (k == 0) { /* not UTF-8: show the byte */
			fprintf(f, "\\x%02x", u[i]);
			i++;
		} else if (cp == '\t' || (cp == '\n' && !one_line) ||
			   (cp >= 0x20 && cp != 0x7f && !(cp >= 0x80 && cp <= 0x9f))) {
			fwrite(u + i, 1, k, f);
			i += k;
		} else { /* C0, DEL, C1 (CSI among them) */
			fprintf(f, "\\x%02x", cp);
			i += k;
		}
	}
	if (m < n)
		fputs("...", f);
}

/* A table cell: s made safe and cut to max bytes, into dst. */
static void safe_cell(char *dst, size_t dstlen, const char *s, size_t max)
{
	char *p = NULL;
	size_t plen = 0;
	FILE *f = open_memstream(&p, &plen);
	if (!f)
		fatal("out of memory");
	if (s)
		thaw_remote_put_safe(f, s, strlen(s), max, 1);
	else
		fputc('?', f);
	fclose(f);
	snprintf(dst, dstlen, "%s", p);
	free(p);
}

json_t *thaw_remote_parse_object(const char *p, size_t len, char *err, size_t errlen)
{
	json_error_t je;
	if (len > REMOTE_MAX_ANSWER) {
		snprintf(err, errlen, "the answer is larger than %u MiB", REMOTE_MAX_ANSWER >> 20);
		return NULL;
	}
	json_t *j = json_loadb(p, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		snprintf(err, errlen, "the answer is not valid JSON (%s at byte %d)", je.text,
			 je.position);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(err, errlen, "the answer is not a JSON object");
		return NULL;
	}
	return j;
}

int thaw_remote_id_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > REMOTE_MAX_ID)
		return 0;
	for (const char *c = s; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
		      (*c >= 'A' && *c <= 'Z') || *c == '-'))
			return 0;
	return 1;
}

/* The first 8 characters of a version id, the short form people read. */
static void put_id8(FILE *f, const char *id)
{
	if (!id)
		fputc('?', f);
	else if (thaw_remote_id_valid(id))
		fprintf(f, "%.8s", id);
	else
		thaw_remote_put_safe(f, id, strlen(id), 8, 1);
}

static const char *str_field(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A number field, or NAN when missing or not a finite number. */
static double num_field(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_number(v))
		return NAN;
	double d = json_number_value(v);
	return isfinite(d) ? d : NAN;
}

static void put_percent(FILE *f, double p)
{
	if (isnan(p) || p < 0 || p > 100)
		fputs("?%", f);
	else if (p == (double)(long long)p)
		fprintf(f, "%.0f%%", p);
	else
		fprintf(f, "%.1f%%", p);
}

/* The number of the version with this id in versions, or 0. */
static long long number_of(const json_t *versions, const char *id)
{
	size_t i;
	const json_t *v;
	if (!json_is_array(versions) || !id)
		return 0;
	json_array_foreach(versions, i, v) {
		const char *vid = str_field(v, "id");
		const json_t *num = json_object_get(v, "number");
		if (vid && !strcmp(vid, id) && json_is_integer(num) && json_integer_value(num) > 0)
			return (long long)json_integer_value(num);
	}
	return 0;
}

void thaw_remote_put_deployment(FILE *f, const json_t *deployment, const json_t *versions)
{
	const json_t *list = json_object_get(deployment, "versions");
	if (!json_is_array(list) || json_array_size(list) == 0) {
		fputs("(no versions)", f);
		return;
	}
	size_t i;
	const json_t *v;
	json_array_foreach(list, i, v) {
		if (i == 16) {
			fprintf(f, ", and %zu more", json_array_size(list) - i);
			break;
		}
		if (i)
			fputs(", ", f);
		const char *id = str_field(v, "id");
		long long num = number_of(versions, id);
		if (num)
			fprintf(f, "%lld", num);
		else
			put_id8(f, id);
		fputs(" at ", f);
		put_percent(f, num_field(v, "percentage"));
	}
}

static void put_mb(FILE *f, double bytes)
{
	if (isnan(bytes) || bytes < 0)
		fputs("? MB", f);
	else if (bytes < 1e6)
		fprintf(f, "%.1f KB", bytes / 1e3);
	else
		fprintf(f, "%.1f MB", bytes / 1e6);
}

static void put_ms(FILE *f, double ms)
{
	if (isnan(ms) || ms < 0)
		fputs("? ms", f);
	else if (ms < 10)
		fprintf(f, "%.1f ms", ms);
	else
		fprintf(f, "%.0f ms", ms);
}

void thaw_remote_progress_dispose(struct thaw_deploy_progress *p)
{
	json_decref(p->deployment);
	free(p->error);
	p->deployment = NULL;
	p->error = NULL;
}

int thaw_remote_stage_line(struct thaw_deploy_progress *p, const char *line, size_t len,
			   FILE *out, char *err, size_t errlen)
{
	char jerr[256];
	if (p->done) {
		snprintf(err, errlen, "the host sent progress after the deployment ended");
		return -1;
	}
	json_t *j = thaw_remote_parse_object(line, len, jerr, sizeof jerr);
	if (!j) {
		snprintf(err, errlen, "unreadable progress from the host: %s", jerr);
		return -1;
	}
	int rc = 0;
	const char *stage = str_field(j, "stage");
	if (!stage) {
		snprintf(err, errlen, "unreadable progress from the host: a line without a stage");
		rc = -1;
	} else if (!strcmp(stage, "stored")) {
		const char *id = str_field(j, "version");
		const json_t *num = json_object_get(j, "number");
		if (!id || !thaw_remote_id_valid(id) || !json_is_integer(num) ||
		    json_integer_value(num) <= 0) {
			snprintf(err, errlen, "the host named the stored version with an invalid id or number");
			rc = -1;
			goto out;
		}
		snprintf(p->version, sizeof p->version, "%s", id);
		p->number = (long long)json_integer_value(num);
		fprintf(out, "stored version %lld (%.8s", p->number, id);
		double files = num_field(j, "files");
		if (!isnan(files) && files >= 0)
			fprintf(out, ", %.0f files", files);
		double bytes = num_field(j, "bytes");
		if (!isnan(bytes)) {
			fputs(", ", out);
			put_mb(out, bytes);
		}
		fputs(")\n", out);
	} else if (!strcmp(stage, "building")) {
		fputs("building snapshot...\n", out);
	} else if (!strcmp(stage, "built")) {
		fputs("snapshot built: ", out);
		put_mb(out, num_field(j, "snapshot_bytes"));
		fputs(" in ", out);
		put_ms(out, num_field(j, "ms"));
		fputc('\n', out);
	} else if (!strcmp(stage, "validated")) {
		fputs("validated: restored in ", out);
		put_ms(out, num_field(j, "restore_ms"));
		const json_t *st = json_object_get(j, "status");
		if (json_is_integer(st))
			fprintf(out, ", health check %lld", (long long)json_integer_value(st));
		fputc('\n', out);
	} else if (!strcmp(stage, "live")) {
		const json_t *dep = json_object_get(j, "deployment");
		if (!json_is_object(dep)) {
			snprintf(err, errlen, "the host said live without a deployment");
			rc = -1;
			goto out;
		}
		p->deployment = json_incref((json_t *)dep);
		p->done = 1;
	} else if (!strcmp(stage, "failed")) {
		const char *e = str_field(j, "error");
		p->error = xstrdup(e && *e ? e : "(the host gave no reason)");
		p->done = -1;
	} else {
		/* A stage this client does not know: show it, keep going. */
		thaw_remote_put_safe(out, stage, strlen(stage), 64, 1);
		fputc('\n', out);
	}
out:
	json_decref(j);
	return rc;
}

/* Local time of a unix-ms timestamp: "YYYY-MM-DD HH:MM:SS" (date) or
 * "HH:MM:SS.mmm". */
static void put_time(FILE *f, double ts_ms, int date)
{
	/* Up to the year 9999. */
	if (isnan(ts_ms) || ts_ms < 0 || ts_ms > 253402300799999.0) {
		fputc('?', f);
		return;
	}
	time_t t = (time_t)(ts_ms / 1000);
	struct tm tm;
	char buf[64];
	if (!localtime_r(&t, &tm) ||
	    !strftime(buf, sizeof buf, date ? "%Y-%m-%d %H:%M:%S" : "%H:%M:%S", &tm)) {
		fputc('?', f);
		return;
	}
	fputs(buf, f);
	if (!date)
		fprintf(f, ".%03lld", (long long)ts_ms % 1000);
}

int thaw_remote_tail_line(const char *line, size_t len, FILE *out, char *err, size_t errlen)
{
	char jerr[256];
	json_t *j = thaw_remote_parse_object(line, len, jerr, sizeof jerr);
	if (!j) {
		snprintf(err, errlen, "unreadable log line from the host: %s", jerr);
		return -1;
	}
	put_time(out, num_field(j, "ts"), 0);
	fputc(' ', out);
	const char *v = str_field(j, "version");
	const json_t *num = json_object_get(j, "version");
	if (v)
		put_id8(out, v);
	else if (json_is_integer(num))
		fprintf(out, "%lld", (long long)json_integer_value(num));
	else
		fputc('?', out);
	fputc(' ', out);
	const char *rid = str_field(j, "request_id");
	if (rid && *rid)
		thaw_remote_put_safe(out, rid, strlen(rid), 64, 1);
	else
		fputc('-', out);
	fputc(' ', out);
	const char *stream = str_field(j, "stream");
	if (stream)
		thaw_remote_put_safe(out, stream, strlen(stream), 16, 1);
	else
		fputc('?', out);
	fputs(": ", out);
	const json_t *msg = json_object_get(j, "message");
	if (json_is_string(msg))
		thaw_remote_put_safe(out, json_string_value(msg), json_string_length(msg), 0, 0);
	fputc('\n', out);
	json_decref(j);
	return 0;
}

/* The share of version id in the deployment, or NAN when it takes none. */
static double share_of(const json_t *deployment, const char *id)
{
	const json_t *list = json_object_get(deployment, "versions");
	size_t i;
	const json_t *v;
	if (!json_is_array(list) || !id)
		return NAN;
	json_array_foreach(list, i, v) {
		const char *vid = str_field(v, "id");
		if (vid && !strcmp(vid, id))
			return num_field(v, "percentage");
	}
	return NAN;
}

/* A size for a table's cell: "2.3 MB", "11.7 KB", "1.5 GB", or "-" when not
 * known; at most 8 characters (the columns are %8s): the unit grows before
 * the figure, as printed, would reach 1000.0. */
static void size_cell(char *out, size_t n, double bytes)
{
	static const char *const units[] = {"KB", "MB", "GB", "TB", "PB", "EB"};
	if (isnan(bytes) || bytes < 0 || bytes > 1e18) {
		snprintf(out, n, "-");
		return;
	}
	double v = bytes / 1e3;
	size_t u = 0;
	while (v >= 999.95 && u + 1 < sizeof units / sizeof units[0]) {
		v /= 1e3;
		u++;
	}
	snprintf(out, n, "%.1f %s", v, units[u]);
}

/* Under the versions: the base images their images are built on, each
 * once, with its size and how many versions use it. */
static void put_bases(FILE *out, const json_t *bases)
{
	size_t i;
	const json_t *b;
	if (!json_is_array(bases))
		return;
	json_array_foreach(bases, i, b) {
		if (i == 16)
			break;
		char size[16];
		size_cell(size, sizeof size, num_field(b, "bytes"));
		const char *blob = str_field(b, "blob");
		double n = num_field(b, "versions");
		fputs("base image ", out);
		size_t bn = blob ? strlen(blob) : 0;
		thaw_remote_put_safe(out, blob ? blob : "?", blob ? (bn > 8 ? 8 : bn) : 1, 0, 1);
		fprintf(out, "%s: %s on disk, shared by %.0f version%s of this host\n",
			json_is_true(json_object_get(b, "current")) ? " (current)" : "", size,
			isnan(n) ? 0 : n, n == 1 ? "" : "s");
	}
}

int thaw_remote_versions_table(const char *body, size_t len, FILE *out, char *err,
			       size_t errlen)
{
	json_t *j = thaw_remote_parse_object(body, len, err, errlen);
	if (!j)
		return -1;
	const json_t *versions = json_object_get(j, "versions");
	const json_t *dep = json_object_get(j, "deployment");
	if (!json_is_array(versions)) {
		snprintf(err, errlen, "the answer has no versions list");
		json_decref(j);
		return -1;
	}
	if (json_array_size(versions) == 0) {
		fputs("no versions yet\n", out);
		json_decref(j);
		return 0;
	}
	fprintf(out, "%5s  %-8s  %-19s  %-9s  %7s  %8s  %8s  %8s  %s\n", "#", "ID", "CREATED",
		"STATE", "TRAFFIC", "IMAGE", "BASE", "WS", "MESSAGE");
	size_t i;
	const json_t *v;
	json_array_foreach(versions, i, v) {
		char num[24] = "?", id[64], state[64], traffic[16] = "-";
		const json_t *n = json_object_get(v, "number");
		if (json_is_integer(n))
			snprintf(num, sizeof num, "%lld", (long long)json_integer_value(n));
		const char *vid = str_field(v, "id");
		if (vid && thaw_remote_id_valid(vid))
			snprintf(id, sizeof id, "%.8s", vid);
		else
			safe_cell(id, sizeof id, vid, 8);
		safe_cell(state, sizeof state, str_field(v, "state"), 9);
		double share = json_is_object(dep) ? share_of(dep, str_field(v, "id")) : NAN;
		if (!isnan(share)) {
			char *p = NULL;
			size_t plen = 0;
			FILE *m = open_memstream(&p, &plen);
			if (!m)
				fatal("out of memory");
			put_percent(m, share);
			fclose(m);
			snprintf(traffic, sizeof traffic, "%s", p);
			free(p);
		}
		fprintf(out, "%5s  %-8s  ", num, id);
		char when[32];
		FILE *m = fmemopen(when, sizeof when, "w");
		if (!m)
			fatal("out of memory");
		put_time(m, num_field(v, "created"), 1);
		fputc('\0', m);
		fclose(m);
		when[sizeof when - 1] = '\0';
		fprintf(out, "%-19s  %-9s  %7s  ", when, state, traffic);
		/* What it holds on disk: its image (own pages), the pages it
		 * maps from the base, its working set. */
		const json_t *disk = json_object_get(v, "disk");
		char image[16], base[16], ws[16];
		double base_pages = num_field(disk, "image_base_pages");
		size_cell(image, sizeof image,
			  str_field(v, "snapshot") ? num_field(disk, "image") : NAN);
		size_cell(base, sizeof base, base_pages * 4096);
		size_cell(ws, sizeof ws, num_field(disk, "working_set"));
		fprintf(out, "%8s  %8s  %8s  ", image, base, ws);
		const char *msg = str_field(v, "message");
		if (msg)
			thaw_remote_put_safe(out, msg, strlen(msg), 60, 1);
		fputc('\n', out);
		const char *e = str_field(v, "error");
		const char *st = str_field(v, "state");
		if (e && *e && st && !strcmp(st, "failed")) {
			const char *nl = strchr(e, '\n');
			fputs("       error: ", out);
			thaw_remote_put_safe(out, e, nl ? (size_t)(nl - e) : strlen(e), 120, 1);
			fputc('\n', out);
		}
	}
	put_bases(out, json_object_get(j, "bases"));
	json_decref(j);
	return 0;
}

int thaw_remote_crons_table(const char *body, size_t len, FILE *out, char *err, size_t errlen)
{
	json_t *j = thaw_remote_parse_object(body, len, err, errlen);
	if (!j)
		return -1;
	const json_t *triggers = json_object_get(j, "triggers");
	const json_t *running = json_object_get(j, "running");
	const json_t *runs = json_object_get(j, "runs");
	if (!json_is_array(triggers) || !json_is_array(runs)) {
		snprintf(err, errlen, "the answer has no triggers or runs");
		json_decref(j);
		return -1;
	}
	size_t i;
	const json_t *v;
	fputs("triggers (UTC):", out);
	if (json_array_size(triggers) == 0)
		fputs(" none", out);
	json_array_foreach(triggers, i, v) {
		const char *t = json_string_value(v);
		fputs(i ? ", \"" : " \"", out);
		if (t)
			thaw_remote_put_safe(out, t, strlen(t), 64, 1);
		fputc('"', out);
	}
	fputc('\n', out);
	json_array_foreach(running, i, v) {
		const char *t = str_field(v, "cron");
		fputs("running: \"", out);
		if (t)
			thaw_remote_put_safe(out, t, strlen(t), 64, 1);
		fputs("\" due ", out);
		put_time(out, num_field(v, "scheduled"), 1);
		fputc('\n', out);
	}
	if (json_array_size(runs) == 0) {
		fputs("no runs yet\n", out);
		json_decref(j);
		return 0;
	}
	fprintf(out, "%-19s  %-20s  %-9s  %10s  %-8s  %s\n", "DUE", "CRON", "OUTCOME", "DURATION",
		"VERSION", "ERROR");
	json_array_foreach(runs, i, v) {
		char cron[64], outcome[64], id[64];
		safe_cell(cron, sizeof cron, str_field(v, "cron"), 20);
		safe_cell(outcome, sizeof outcome, str_field(v, "outcome"), 9);
		const char *vid = str_field(v, "version");
		if (vid && thaw_remote_id_valid(vid))
			snprintf(id, sizeof id, "%.8s", vid);
		else
			safe_cell(id, sizeof id, vid, 8);
		char when[32];
		FILE *m = fmemopen(when, sizeof when, "w");
		if (!m)
			fatal("out of memory");
		put_time(m, num_field(v, "scheduled"), 1);
		fputc('\0', m);
		fclose(m);
		when[sizeof when - 1] = '\0';
		double ms = num_field(v, "duration_ms");
		fprintf(out, "%-19s  %-20s  %-9s  %8.1fms  %-8s  ", when, cron, outcome,
			isnan(ms) ? 0.0 : ms, id);
		const char *e = str_field(v, "error");
		if (e)
			thaw_remote_put_safe(out, e, strlen(e), 80, 1);
		fputc('\n', out);
	}
	json_decref(j);
	return 0;
}
