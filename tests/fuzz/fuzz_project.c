/*
 * libFuzzer target for the project configuration (src/project/), the two
 * places outside bytes enter it:
 *   - first byte even: the rest is the config reader's answer as the host
 *     parses it (project_parse): a child that read hostile files may print
 *     anything;
 *   - first byte odd: the rest is a wrangler.jsonc, read by project_read in
 *     a scratch project directory (JSONC needs no TOML parser; one that is
 *     asked for anyway fails the run).
 * Invariants: a project that comes out obeys the name and entry-module rules,
 * its bindings obey theirs (names valid and bounded, counts and numbers in
 * range, defaults filled in, migrations_dir inside, the cross-kind rules of
 * project_bindings_check), its limits are in their ranges, and it survives project_to_json ->
 * project_from_json unchanged; a refusal leaves a terminated message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "project/project.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_check.h"

static json_t *no_toml(const char *text, size_t len, char *err, size_t errlen)
{
	__builtin_trap(); /* only a wrangler.jsonc is there */
}

static char dir[64];

static void cleanup(void)
{
	remove_tree(dir);
}

static void check_bindings(const struct project *p)
{
	char e[512];
	CHECK(project_bindings_check(p, NULL, e, sizeof e) == 0);
	CHECK(p->nkv_namespaces <= PROJECT_MAX_BINDINGS &&
	      p->nd1_databases <= PROJECT_MAX_BINDINGS && p->nr2_buckets <= PROJECT_MAX_BINDINGS &&
	      p->ndurable_objects <= PROJECT_MAX_BINDINGS &&
	      p->nqueue_producers <= PROJECT_MAX_BINDINGS &&
	      p->nqueue_consumers <= PROJECT_MAX_BINDINGS && p->nservices <= PROJECT_MAX_BINDINGS &&
	      p->nmigrations <= PROJECT_MAX_MIGRATIONS);
	for (size_t i = 0; i < p->nkv_namespaces; i++)
		CHECK(project_binding_name_valid(p->kv_namespaces[i].binding));
	for (size_t i = 0; i < p->nd1_databases; i++) {
		CHECK(project_binding_name_valid(p->d1_databases[i].binding));
		CHECK(p->d1_databases[i].database_name != NULL);
		CHECK(project_relative_dir_valid(p->d1_databases[i].migrations_dir));
		CHECK(project_binding_name_valid(p->d1_databases[i].migrations_table));
	}
	for (size_t i = 0; i < p->nr2_buckets; i++)
		CHECK(project_binding_name_valid(p->r2_buckets[i].binding) &&
		      strlen(p->r2_buckets[i].bucket_name) >= 3);
	for (size_t i = 0; i < p->ndurable_objects; i++)
		CHECK(project_binding_name_valid(p->durable_objects[i].name) &&
		      project_binding_name_valid(p->durable_objects[i].class_name) &&
		      (!p->durable_objects[i].script_name ||
		       project_name_valid(p->durable_objects[i].script_name)));
	for (size_t i = 0; i < p->nqueue_producers; i++)
		CHECK(project_binding_name_valid(p->queue_producers[i].binding) &&
		      p->queue_producers[i].delivery_delay >= -1 &&
		      p->queue_producers[i].delivery_delay <= 86400);
	for (size_t i = 0; i < p->nqueue_consumers; i++) {
		const struct project_queue_consumer *c = &p->queue_consumers[i];
		CHECK(c->max_batch_size >= 1 && c->max_batch_size <= 100);
		CHECK(c->max_batch_timeout >= 0 && c->max_batch_timeout <= 60);
		CHECK(c->max_retries >= 0 && c->max_retries <= 100);
		CHECK(c->max_concurrency == -1 ||
		      (c->max_concurrency >= 1 && c->max_concurrency <= 250));
		CHECK(!c->dead_letter_queue || strcmp(c->dead_letter_queue, c->queue) != 0);
	}
	for (size_t i = 0; i < p->nservices; i++)
		CHECK(project_binding_name_valid(p->services[i].binding) &&
		      project_name_valid(p->services[i].service));
	for (size_t i = 0; i < p->nmigrations; i++)
		CHECK(p->migrations[i].tag &&
		      p->migrations[i].nnew_classes <= PROJECT_MAX_MIGRATION_CLASSES);
	CHECK(p->limits.set < (1u << PROJECT_LIMIT_COUNT));
	for (int i = 0; i < PROJECT_LIMIT_COUNT; i++)
		CHECK(!(p->limits.set & (1u << i)) ||
		      (p->limits.v[i] >= project_limit_info[i].min &&
		       p->limits.v[i] <= project_limit_info[i].max));
}

static void check(struct project *p, const char *err, size_t errlen)
{
	if (!p) {
		CHECK(memchr(err, '\0', errlen) != NULL);
		return;
	}
	CHECK(project_name_valid(p->name));
	CHECK(project_main_valid(p->main));
	CHECK(json_is_object(p->vars) && json_is_array(p->dependencies));
	check_bindings(p);
	json_t *j = project_to_json(p);
	char e2[256];
	struct project *q = project_from_json(j, p->dir, e2, sizeof e2);
	CHECK(q != NULL);
	json_t *k = project_to_json(q);
	CHECK(json_equal(j, k));
	check_bindings(q);
	json_decref(j);
	json_decref(k);
	project_free(q);
	project_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	memset(err, 'x', sizeof err);
	if (size == 0)
		return 0;
	if (!(data[0] & 1)) {
		check(project_parse((const char *)data + 1, size - 1, "/p", err, sizeof err), err,
		      sizeof err);
		return 0;
	}
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/tmp/thaw-fuzz-project-XXXXXX");
		CHECK(mkdtemp(dir) != NULL);
		atexit(cleanup);
		char path[128];
		snprintf(path, sizeof path, "%s/src", dir);
		CHECK(mkdir(path, 0755) == 0);
		snprintf(path, sizeof path, "%s/src/entry.py", dir);
		FILE *f = fopen(path, "w");
		CHECK(f != NULL);
		fclose(f);
	}
	char path[128];
	snprintf(path, sizeof path, "%s/wrangler.jsonc", dir);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	CHECK(fwrite(data + 1, 1, size - 1, f) == size - 1);
	fclose(f);
	check(project_read(dir, no_toml, NULL, err, sizeof err), err, sizeof err);
	return 0;
}
