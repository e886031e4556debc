#include "common/jsonc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int jsonc_strip(const char *in, size_t len, char *out, const char **err)
{
	size_t i = 0;
	size_t last_comma = (size_t)-1; /* index in out of a comma that may be trailing */
	int prev_value = 0;             /* the last significant token ended a value */
	while (i < len) {
		char c = in[i];
		if (c == '"') {
			out[i] = c;
			i++;
			for (;;) {
				if (i >= len) {
					*err = "unterminated string";
					return -1;
				}
				out[i] = in[i];
				if (in[i] == '\\') {
					if (i + 1 >= len) {
						*err = "unterminated string";
						return -1;
					}
					out[i + 1] = in[i + 1];
					i += 2;
					continue;
				}
				if (in[i] == '"') {
					i++;
					break;
				}
				i++;
			}
			last_comma = (size_t)-1;
			prev_value = 1;
			continue;
		}
		if (c == '/' && i + 1 < len && in[i + 1] == '/') {
			while (i < len && in[i] != '\n') {
				out[i] = ' ';
				i++;
			}
			continue;
		}
		if (c == '/' && i + 1 < len && in[i + 1] == '*') {
			out[i] = ' ';
			out[i + 1] = ' ';
			i += 2;
			for (;;) {
				if (i + 1 >= len) {
					*err = "unterminated /* comment";
					return -1;
				}
				if (in[i] == '*' && in[i + 1] == '/') {
					out[i] = ' ';
					out[i + 1] = ' ';
					i += 2;
					break;
				}
				out[i] = in[i] == '\n' ? '\n' : ' ';
				i++;
			}
			continue;
		}
		if (c == ',') {
			/* Only a comma after a value can be a trailing one: "[,]"
			 * stays invalid. */
			last_comma = prev_value ? i : (size_t)-1;
			prev_value = 0;
		} else if (c == '}' || c == ']') {
			if (last_comma != (size_t)-1)
				out[last_comma] = ' ';
			last_comma = (size_t)-1;
			prev_value = 1;
		} else if (c == '[' || c == '{' || c == ':') {
			last_comma = (size_t)-1;
			prev_value = 0;
		} else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			last_comma = (size_t)-1;
			prev_value = 1;
		}
		out[i] = c;
		i++;
	}
	return 0;
}

json_t *jsonc_parse(const char *text, size_t len, char *errbuf, size_t errlen)
{
	char *clean = malloc(len + 1);
	const char *err = NULL;
	if (!clean) {
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	if (jsonc_strip(text, len, clean, &err) < 0) {
		snprintf(errbuf, errlen, "%s", err);
		free(clean);
		return NULL;
	}
	json_error_t jerr;
	json_t *j = json_loadb(clean, len, JSON_REJECT_DUPLICATES, &jerr);
	free(clean);
	if (!j)
		snprintf(errbuf, errlen, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
	return j;
}
