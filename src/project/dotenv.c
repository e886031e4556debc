/*
 * dotenv files (dotenv.h): one pass over the text, line by line, with a
 * cursor that never reads past len.
 */
#include "project/dotenv.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"

struct cur {
	const char *p, *end;
	int line;
};

static int at_end(const struct cur *c)
{
	return c->p >= c->end;
}

static void skip_blanks(struct cur *c)
{
	while (!at_end(c) && (*c->p == ' ' || *c->p == '\t'))
		c->p++;
}

static void skip_line(struct cur *c)
{
	while (!at_end(c) && *c->p != '\n')
		c->p++;
	if (!at_end(c)) {
		c->p++;
		c->line++;
	}
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		char m_[256];                                                                      \
		snprintf(m_, sizeof m_, __VA_ARGS__);                                              \
		snprintf(err, errlen, "line %d: %s", c.line, m_);                                  \
		goto fail;                                                                         \
	} while (0)

json_t *dotenv_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct cur c = {text, text + len, 1};
	json_t *out = json_object();
	struct buf v = {0};
	if (len > DOTENV_MAX_BYTES) {
		snprintf(err, errlen, "larger than %u bytes", DOTENV_MAX_BYTES);
		goto fail_quiet;
	}
	if (memchr(text, 0, len)) {
		snprintf(err, errlen, "a NUL byte: is it a text file?");
		goto fail_quiet;
	}
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3))
		c.p += 3; /* a UTF-8 byte order mark */
	while (!at_end(&c)) {
		skip_blanks(&c);
		if (at_end(&c))
			break;
		if (*c.p == '\n' || *c.p == '\r' || *c.p == '#') {
			skip_line(&c);
			continue;
		}
		if (c.end - c.p > 7 && !strncmp(c.p, "export", 6) && (c.p[6] == ' ' || c.p[6] == '\t')) {
			c.p += 7;
			skip_blanks(&c);
		}
		const char *name = c.p;
		if (at_end(&c) || !(((*c.p | 32) >= 'a' && (*c.p | 32) <= 'z') || *c.p == '_'))
			FAIL("expected NAME=value");
		while (!at_end(&c) && (((*c.p | 32) >= 'a' && (*c.p | 32) <= 'z') || *c.p == '_' ||
				       (*c.p >= '0' && *c.p <= '9')))
			c.p++;
		size_t nlen = (size_t)(c.p - name);
		if (nlen > 255)
			FAIL("a name longer than 255 characters");
		skip_blanks(&c);
		if (at_end(&c) || *c.p != '=')
			FAIL("'%.*s' has no '=' (expected NAME=value)", (int)(nlen < 64 ? nlen : 64), name);
		c.p++;
		skip_blanks(&c);
		buf_reset(&v);
		int start_line = c.line;
		if (!at_end(&c) && (*c.p == '"' || *c.p == '\'')) {
			char q = *c.p++;
			for (;;) {
				if (at_end(&c)) {
					c.line = start_line;
					FAIL("the %s quote of %.*s is never closed",
					     q == '"' ? "double" : "single", (int)(nlen < 64 ? nlen : 64), name);
				}
				char ch = *c.p++;
				if (ch == q)
					break;
				if (ch == '\n')
					c.line++;
				if (ch == '\\' && q == '"' && !at_end(&c)) {
					char e = *c.p++;
					ch = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
					if (e != 'n' && e != 'r' && e != 't' && e != '"' && e != '\\') {
						buf_append(&v, "\\", 1); /* unknown escapes stay as written */
						if (e == '\n')
							c.line++;
					}
				}
				buf_append(&v, &ch, 1);
			}
			skip_blanks(&c);
			if (!at_end(&c) && *c.p != '#' && *c.p != '\n' && *c.p != '\r')
				FAIL("text after the closing quote of %.*s", (int)(nlen < 64 ? nlen : 64),
				     name);
		} else {
			const char *s = c.p, *e = c.p;
			while (!at_end(&c) && *c.p != '\n') {
				if (*c.p == '#' && c.p > s && (c.p[-1] == ' ' || c.p[-1] == '\t'))
					break;
				c.p++;
				e = c.p;
			}
			while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
				e--;
			buf_append(&v, s, (size_t)(e - s));
		}
		skip_line(&c);
		if (json_object_size(out) >= DOTENV_MAX_ENTRIES) {
			c.line = start_line;
			FAIL("more than %d entries", DOTENV_MAX_ENTRIES);
		}
		char key[256];
		memcpy(key, name, nlen);
		key[nlen] = 0;
		json_t *s = json_stringn(buf_used(&v) ? (const char *)buf_head(&v) : "", buf_used(&v));
		if (!s) {
			c.line = start_line;
			FAIL("the value of %.64s is not valid UTF-8", key);
		}
		json_object_set_new(out, key, s);
	}
	buf_free(&v);
	return out;
fail:
fail_quiet:
	buf_free(&v);
	json_decref(out);
	return NULL;
}

json_t *dotenv_load_dev(const char *dir, const char *env, char *which, size_t whichlen, char *err,
			size_t errlen)
{
	char envfile[2][80];
	const char *candidates[4];
	int n = 0;
	err[0] = 0;
	if (env) {
		snprintf(envfile[0], sizeof envfile[0], ".dev.vars.%.63s", env);
		candidates[n++] = envfile[0];
	}
	candidates[n++] = ".dev.vars";
	if (env) {
		snprintf(envfile[1], sizeof envfile[1], ".env.%.63s", env);
		candidates[n++] = envfile[1];
	}
	candidates[n++] = ".env";
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		size_t len;
		if (path_join(path, sizeof path, dir, candidates[i]) < 0)
			continue;
		char *text = read_file(path, DOTENV_MAX_BYTES, &len);
		if (!text) {
			if (errno == ENOENT)
				continue;
			snprintf(err, errlen, "%s: %s", candidates[i],
				 errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
			return NULL;
		}
		char why[300];
		json_t *j = dotenv_parse(text, len, why, sizeof why);
		free(text);
		if (!j) {
			snprintf(err, errlen, "%s: %s", candidates[i], why);
			return NULL;
		}
		snprintf(which, whichlen, "%s", candidates[i]);
		return j;
	}
	return NULL;
}
