/*
 * libFuzzer target for the readers of a thaw host's control-API answers
 * (src/ext/remote_fmt.c): what `thaw deploy`, `thaw versions list` and
 * `thaw tail` do with bytes a host sends.
 *
 * The first byte picks the reader; the rest is the answer. For deploy, the
 * answer is split at newlines and fed line by line as the stream is.
 * Invariants: no crash or leak; a failure leaves a NUL-terminated message; a
 * deployment that ended takes no more lines; a recorded version id is one
 * thaw_remote_id_valid accepts; and what is printed holds no terminal control
 * character (C0 other than tab and newline, DEL, or a C1 control) and is
 * valid UTF-8, whatever the host sent.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ext/remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

/* Valid UTF-8 without C0 (but tab and newline), DEL or C1 controls. */
static void check_printable(const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	for (size_t i = 0; i < n;) {
		unsigned char c = u[i];
		if (c < 0x80) {
			CHECK(c >= 0x20 || c == '\n' || c == '\t');
			CHECK(c != 0x7f);
			i++;
			continue;
		}
		size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
		CHECK(len != 0 && i + len <= n);
		uint32_t cp = c & (0x7f >> len);
		for (size_t k = 1; k < len; k++) {
			CHECK((u[i + k] & 0xc0) == 0x80);
			cp = (cp << 6) | (u[i + k] & 0x3f);
		}
		CHECK(cp > 0x9f);
		i += len;
	}
}

static void check_err(const char *err, size_t len)
{
	CHECK(memchr(err, '\0', len) != NULL);
	CHECK(err[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int mode = data[0] % 5;
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	char *text = NULL;
	size_t text_len = 0;
	FILE *out = open_memstream(&text, &text_len);
	CHECK(out != NULL);
	char err[256];
	memset(err, 'x', sizeof err);

	if (mode == 0) {
		struct thaw_deploy_progress p = {0};
		size_t start = 0;
		while (start < len) {
			const char *nl = memchr(in + start, '\n', len - start);
			size_t n = nl ? (size_t)(nl - (in + start)) : len - start;
			int was_done = p.done;
			int r = thaw_remote_stage_line(&p, in + start, n, out, err, sizeof err);
			CHECK(r == 0 || r == -1);
			if (r < 0) {
				check_err(err, sizeof err);
				break;
			}
			CHECK(!was_done);
			start += n + 1;
		}
		if (p.number)
			CHECK(thaw_remote_id_valid(p.version));
		if (p.done == 1) {
			CHECK(p.deployment != NULL);
			thaw_remote_put_deployment(out, p.deployment, NULL);
		}
		if (p.done == -1) {
			CHECK(p.error != NULL);
			thaw_remote_put_safe(out, p.error, strlen(p.error), 0, 0);
		}
		thaw_remote_progress_dispose(&p);
	} else if (mode == 1) {
		if (thaw_remote_tail_line(in, len, out, err, sizeof err) < 0)
			check_err(err, sizeof err);
	} else if (mode == 2) {
		if (thaw_remote_versions_table(in, len, out, err, sizeof err) < 0)
			check_err(err, sizeof err);
	} else if (mode == 4) {
		if (thaw_remote_crons_table(in, len, out, err, sizeof err) < 0)
			check_err(err, sizeof err);
	} else {
		/* A deployment answer (rollout, rollback) printed with its versions. */
		json_t *j = thaw_remote_parse_object(in, len, err, sizeof err);
		if (!j) {
			check_err(err, sizeof err);
		} else {
			thaw_remote_put_deployment(out, json_object_get(j, "deployment"),
						   json_object_get(j, "versions"));
			json_decref(j);
		}
		/* And the raw bytes through the sanitiser, cut anywhere. */
		thaw_remote_put_safe(out, in, len, len / 2, size & 1);
	}
	CHECK(fclose(out) == 0);
	check_printable(text, text_len);
	free(text);
	return 0;
}
