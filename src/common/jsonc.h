/*
 * JSON with comments (wrangler.jsonc): strip // and block comments and
 * trailing commas outside strings, then parse with jansson.
 */
#ifndef THAW_COMMON_JSONC_H
#define THAW_COMMON_JSONC_H

#include <stddef.h>
#include <jansson.h>

/*
 * Rewrite in[0..len) into out (which must hold len bytes): comments become
 * spaces (newlines kept, so jansson's line numbers stay right), a comma
 * followed only by whitespace/comments before '}' or ']' becomes a space.
 * Text inside strings, escapes included, is left untouched. Returns 0, or -1
 * with *err set for an unterminated block comment or string.
 */
int jsonc_strip(const char *in, size_t len, char *out, const char **err);

/* Parse JSONC text. Returns a new reference or NULL with errbuf filled. */
json_t *jsonc_parse(const char *text, size_t len, char *errbuf, size_t errlen);

#endif
