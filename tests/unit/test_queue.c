/*
 * The Queues engine (src/state/queue.c): send, lease, ack, retry with a
 * delay, the batch trigger by size and by wait, recovery of messages in
 * flight after a restart, and a file that is not a queue refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state/queue.h"

struct fixture {
	char dir[64];
	char path[128];
	struct queue_store *q;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/thaw-queue-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/q.sqlite", f->dir);
	char err[512];
	f->q = queue_open(f->path, err, sizeof err);
	assert_non_null(f->q);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	queue_close(f->q);
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void send_n(struct queue_store *q, int n, int64_t now, int64_t delay)
{
	char err[512];
	for (int i = 0; i < n; i++) {
		char body[16];
		snprintf(body, sizeof body, "m%d", i);
		struct queue_send m = {(const uint8_t *)body, strlen(body), "text", delay};
		char ids[1][QUEUE_ID_LEN + 1];
		assert_int_equal(queue_send(q, &m, 1, now, ids, err, sizeof err), 0);
		assert_int_equal(strlen(ids[0]), QUEUE_ID_LEN);
	}
}

static void test_lease_gives_oldest_first_and_ack_deletes(void **state)
{
	struct fixture *f = *state;
	char err[512];
	send_n(f->q, 5, 1000, 0);
	struct queue_batch b;
	assert_int_equal(queue_lease(f->q, 1000, 3, 1 << 20, &b, err, sizeof err), 3);
	assert_memory_equal(b.messages[0].body, "m0", 2);
	assert_memory_equal(b.messages[2].body, "m2", 2);
	assert_int_equal(b.messages[0].attempts, 1);
	assert_string_equal(b.messages[0].content_type, "text");
	assert_int_equal(b.messages[0].timestamp_ms, 1000);
	/* in flight: not leased again */
	struct queue_batch b2;
	assert_int_equal(queue_lease(f->q, 1000, 10, 1 << 20, &b2, err, sizeof err), 2);
	assert_memory_equal(b2.messages[0].body, "m3", 2);
	int64_t seqs[3] = {b.messages[0].seq, b.messages[1].seq, b.messages[2].seq};
	assert_int_equal(queue_ack(f->q, seqs, 3, err, sizeof err), 0);
	assert_int_equal(queue_count(f->q, err, sizeof err), 2);
	queue_batch_dispose(&b);
	queue_batch_dispose(&b2);
}

static void test_send_batch_is_all_or_nothing_and_ids_unique(void **state)
{
	struct fixture *f = *state;
	char err[512];
	struct queue_send m[3] = {{(const uint8_t *)"a", 1, "json", 0},
				  {(const uint8_t *)"b", 1, "bytes", 0},
				  {(const uint8_t *)"c", 1, "v8", 0}};
	char ids[3][QUEUE_ID_LEN + 1];
	assert_int_equal(queue_send(f->q, m, 3, 5, ids, err, sizeof err), 0);
	assert_string_not_equal(ids[0], ids[1]);
	assert_string_not_equal(ids[1], ids[2]);
	assert_int_equal(queue_count(f->q, err, sizeof err), 3);
}

static void test_retry_delays_and_counts_attempts(void **state)
{
	struct fixture *f = *state;
	char err[512];
	send_n(f->q, 1, 0, 0);
	struct queue_batch b;
	assert_int_equal(queue_lease(f->q, 0, 10, 1 << 20, &b, err, sizeof err), 1);
	assert_int_equal(queue_retry(f->q, b.messages[0].seq, 100, 30, err, sizeof err), 0);
	queue_batch_dispose(&b);
	assert_int_equal(queue_lease(f->q, 29999, 10, 1 << 20, &b, err, sizeof err), 0);
	queue_batch_dispose(&b);
	assert_int_equal(queue_lease(f->q, 30100, 10, 1 << 20, &b, err, sizeof err), 1);
	assert_int_equal(b.messages[0].attempts, 2);
	queue_batch_dispose(&b);
}

static void test_delay_hides_a_message_until_its_time(void **state)
{
	struct fixture *f = *state;
	char err[512];
	send_n(f->q, 1, 0, 10);
	int64_t next;
	assert_int_equal(queue_ready(f->q, 5000, 1, 0, &next, err, sizeof err), 0);
	assert_int_equal(next, 10000);
	assert_int_equal(queue_ready(f->q, 10000, 1, 0, &next, err, sizeof err), 1);
}

static void test_ready_by_size_or_by_wait(void **state)
{
	struct fixture *f = *state;
	char err[512];
	int64_t next;
	assert_int_equal(queue_ready(f->q, 0, 3, 5000, &next, err, sizeof err), 0);
	assert_true(next == INT64_MAX);
	send_n(f->q, 2, 1000, 0);
	assert_int_equal(queue_ready(f->q, 1000, 3, 5000, &next, err, sizeof err), 0);
	assert_int_equal(next, 6000);
	assert_int_equal(queue_ready(f->q, 6000, 3, 5000, &next, err, sizeof err), 1);
	send_n(f->q, 1, 1001, 0);
	assert_int_equal(queue_ready(f->q, 1001, 3, 5000, &next, err, sizeof err), 1);
}

static void test_lease_respects_the_byte_budget_but_always_gives_one(void **state)
{
	struct fixture *f = *state;
	char err[512];
	send_n(f->q, 4, 0, 0); /* 2 bytes each */
	struct queue_batch b;
	assert_int_equal(queue_lease(f->q, 0, 10, 5, &b, err, sizeof err), 2);
	queue_batch_dispose(&b);
	assert_int_equal(queue_lease(f->q, 0, 10, 1, &b, err, sizeof err), 1);
	queue_batch_dispose(&b);
}

static void test_messages_in_flight_are_delivered_again_after_a_restart(void **state)
{
	struct fixture *f = *state;
	char err[512];
	send_n(f->q, 3, 0, 0);
	struct queue_batch b;
	assert_int_equal(queue_lease(f->q, 0, 2, 1 << 20, &b, err, sizeof err), 2);
	queue_batch_dispose(&b);
	queue_close(f->q); /* the host dies */
	f->q = queue_open(f->path, err, sizeof err);
	if (!f->q)
		fail_msg("%s", err);
	assert_int_equal(queue_recover(f->q, 50, err, sizeof err), 2);
	assert_int_equal(queue_lease(f->q, 50, 10, 1 << 20, &b, err, sizeof err), 3);
	assert_int_equal(b.messages[0].attempts, 2);
	assert_int_equal(b.messages[2].attempts, 1);
	queue_batch_dispose(&b);
}

static void test_another_database_is_refused(void **state)
{
	struct fixture *f = *state;
	char path[160], err[512];
	snprintf(path, sizeof path, "%s/other.sqlite", f->dir);
	char cmd[800];
	snprintf(cmd, sizeof cmd, "sqlite3 %s 'PRAGMA application_id = 7; CREATE TABLE t(x)' 2>/dev/null"
			      " || python3 -c \"import sqlite3; c = sqlite3.connect('%s'); "
			      "c.execute('PRAGMA application_id = 7'); c.execute('CREATE TABLE t(x)'); "
			      "c.commit()\"", path, path);
	assert_int_equal(system(cmd), 0);
	assert_null(queue_open(path, err, sizeof err));
	assert_non_null(strstr(err, "not a thaw queue"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lease_gives_oldest_first_and_ack_deletes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_batch_is_all_or_nothing_and_ids_unique, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_delays_and_counts_attempts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delay_hides_a_message_until_its_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ready_by_size_or_by_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lease_respects_the_byte_budget_but_always_gives_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_messages_in_flight_are_delivered_again_after_a_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_another_database_is_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
