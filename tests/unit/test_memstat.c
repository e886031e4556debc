/*
 * Tests for instances' memory figures (src/host/memstat.c).
 *   - memstat_parse on smaps_rollup texts: this kernel's (6.18) whole text;
 *     an older kernel's without Pss_Dirty; fields missing but Pss (own and
 *     shared unknown: split 0, unless all three parts are there); the
 *     refusals: no Pss, a field twice, a number without " kB", junk after
 *     it, a number over 2^40 kB, an empty number, a NUL byte, a text over
 *     MEMSTAT_MAX_TEXT, parts that do not add up to Pss. Every input sits
 *     right before an inaccessible page (fenced.h), without a NUL after it.
 *   - memstat_read on this process: Pss > 0, own + shared = Pss within the
 *     kernel's rounding; on a pid that is gone: -1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* after the four above */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fenced.h"
#include "host/memstat.h"

static const char rollup_6_18[] =
	"55dea8ead000-7ffe0fbed000 ---p 00000000 00:00 0                          [rollup]\n"
	"Rss:                1736 kB\n"
	"Pss:                 527 kB\n"
	"Pss_Dirty:           112 kB\n"
	"Pss_Anon:            112 kB\n"
	"Pss_File:            415 kB\n"
	"Pss_Shmem:             0 kB\n"
	"Shared_Clean:       1576 kB\n"
	"Shared_Dirty:          0 kB\n"
	"Private_Clean:        48 kB\n"
	"Private_Dirty:       112 kB\n"
	"Referenced:         1736 kB\n"
	"Anonymous:           112 kB\n"
	"KSM:                   0 kB\n"
	"LazyFree:              0 kB\n"
	"AnonHugePages:         0 kB\n"
	"ShmemPmdMapped:        0 kB\n"
	"FilePmdMapped:         0 kB\n"
	"Shared_Hugetlb:        0 kB\n"
	"Private_Hugetlb:       0 kB\n"
	"Swap:                  0 kB\n"
	"SwapPss:               4 kB\n"
	"Locked:                0 kB\n";

static int parse(const char *text, size_t n, struct memstat *m)
{
	struct fenced fc;
	const char *p = fenced_copy(&fc, text, n);
	int rc = memstat_parse(p, n, m);
	fenced_free(&fc);
	return rc;
}

static int parse_str(const char *text, struct memstat *m)
{
	return parse(text, strlen(text), m);
}

static void test_this_kernels_rollup_is_read_whole(void **state)
{
	struct memstat m;
	assert_int_equal(parse_str(rollup_6_18, &m), 0);
	assert_int_equal(m.rss, 1736 * 1024);
	assert_int_equal(m.pss, 527 * 1024);
	assert_int_equal(m.pss_dirty, 112 * 1024);
	assert_int_equal(m.pss_anon, 112 * 1024);
	assert_int_equal(m.pss_file, 415 * 1024);
	assert_int_equal(m.pss_shmem, 0);
	assert_int_equal(m.swap_pss, 4 * 1024);
	assert_int_equal(m.split, 1);
	/* The last line need not end with a newline. */
	assert_int_equal(parse(rollup_6_18, strlen(rollup_6_18) - 1, &m), 0);
	assert_int_equal(m.swap_pss, 4 * 1024);
}

static void test_an_older_kernels_rollup_without_pss_dirty(void **state)
{
	struct memstat m;
	const char *t = "00400000-7fff ---p 00000000 00:00 0 [rollup]\n"
			"Rss:\t2048 kB\nPss:\t1000 kB\nPss_Anon:\t600 kB\nPss_File:\t400 kB\n"
			"Pss_Shmem:\t0 kB\n";
	assert_int_equal(parse_str(t, &m), 0);
	assert_int_equal(m.pss, 1000 * 1024);
	assert_int_equal(m.pss_dirty, 0);
	assert_int_equal(m.pss_anon + m.pss_file, m.pss);
}

static void test_only_pss_is_needed_but_without_its_parts_own_and_shared_are_unknown(void **state)
{
	struct memstat m;
	assert_int_equal(parse_str("Pss: 10 kB\n", &m), 0);
	assert_int_equal(m.pss, 10240);
	assert_int_equal(m.pss_anon + m.pss_file + m.pss_shmem, 0);
	assert_int_equal(m.split, 0); /* a kernel before 5.8: not own 0, shared 0 */
	/* Parts that are all there must add up; some of them are not checked,
	 * and do not split it. */
	assert_int_equal(parse_str("Pss: 1000 kB\nPss_Anon: 10 kB\n", &m), 0);
	assert_int_equal(m.split, 0);
	assert_int_equal(parse_str("Pss: 1000 kB\nPss_Anon: 600 kB\nPss_File: 400 kB\n", &m), 0);
	assert_int_equal(m.split, 0);
	const char *all = "Pss: 1000 kB\nPss_Anon: 600 kB\nPss_File: 400 kB\nPss_Shmem: 0 kB\n";
	assert_int_equal(parse_str(all, &m), 0);
	assert_int_equal(m.split, 1);
}

static void test_malformed_texts_are_refused_and_zeroed(void **state)
{
	static const char *const bad[] = {
		"",
		"Rss: 10 kB\n",                         /* no Pss */
		"Pss: 10 kB\nPss: 10 kB\n",             /* twice */
		"Pss: 10\n",                            /* no unit */
		"Pss: 10 MB\n",                         /* another unit */
		"Pss: 10 kBx\n",                        /* junk after it */
		"Pss:  kB\n",                           /* no number */
		"Pss: -10 kB\n",                        /* a sign */
		"Pss: 1099511627777 kB\n",              /* over 2^40 kB */
		"Pss: 99999999999999999999999999 kB\n", /* over any integer */
		"Pss: 1000 kB\nPss_Anon: 1 kB\nPss_File: 1 kB\nPss_Shmem: 1 kB\n", /* short */
		"Rss: 1 kB\nPss: 0 kB\nPss_Anon: 99999 kB\nPss_File: 0 kB\nPss_Shmem: 0 kB\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct memstat m;
		memset(&m, 0xa5, sizeof m);
		if (parse_str(bad[i], &m) != -1)
			fail_msg("accepted: %s", bad[i]);
		assert_int_equal(m.pss, 0);
		assert_int_equal(m.rss, 0);
		assert_int_equal(m.split, 0);
	}
	/* A NUL inside a line. */
	struct memstat m;
	static const char nul[] = "Pss: 1\0 kB\n";
	assert_int_equal(parse(nul, sizeof nul - 1, &m), -1);
	/* Longer than any rollup. */
	size_t n = MEMSTAT_MAX_TEXT + 1;
	char *big = malloc(n);
	memset(big, ' ', n);
	memcpy(big, "Pss: 1 kB\n", 10);
	assert_int_equal(parse(big, n, &m), -1);
	assert_int_equal(parse(big, MEMSTAT_MAX_TEXT, &m), 0); /* blank lines: skipped */
	free(big);
	assert_int_equal(memstat_parse(NULL, 0, &m), -1);
}

static void test_this_process_is_read_and_its_parts_add_up(void **state)
{
	struct memstat m;
	assert_int_equal(memstat_read(getpid(), &m), 0);
	assert_true(m.pss > 0 && m.rss >= m.pss);
	uint64_t parts = m.pss_anon + m.pss_file + m.pss_shmem;
	uint64_t diff = parts > m.pss ? parts - m.pss : m.pss - parts;
	assert_true(diff <= 8 * 1024);

	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	assert_int_equal(memstat_read(pid, &m), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_this_kernels_rollup_is_read_whole),
		cmocka_unit_test(test_an_older_kernels_rollup_without_pss_dirty),
		cmocka_unit_test(
			test_only_pss_is_needed_but_without_its_parts_own_and_shared_are_unknown),
		cmocka_unit_test(test_malformed_texts_are_refused_and_zeroed),
		cmocka_unit_test(test_this_process_is_read_and_its_parts_add_up),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
