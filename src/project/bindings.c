/*
 * Storage and service bindings in the project model (bindings.h): reading
 * them from a project file or from the reader's answer, writing them as
 * JSON, and the rules that span kinds.
 *
 * Every list of entries (kv_namespaces, queues.producers, ...) is described
 * by a table of its fields (struct field): key, string or integer, required
 * or its default, the rule a string must follow. One reader (take_list) and
 * one writer (list_to_json) serve them all, so a field is declared once and
 * read, checked and written the same way in the reader child and the host.
 * Migrations, whose entries hold lists of classes, have their own reader.
 *
 * Everything read here is hostile (a project file, or what a child printed):
 * types are checked before use, strings are bounded by their rule, counts by
 * PROJECT_MAX_*, and messages quote at most 64 bytes of what they refuse.
 * Only take_dir touches the file system (stat/realpath under the project).
 */
#include "project/bindings.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "project/project.h"

/* --- the rules for names --- */

static int is_lower_or_digit(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Letters, digits and '-' (and '_' when underscore), lowercase, from min to
 * max bytes, the first a letter or digit, the last too unless underscore. */
static int lower_name_valid(const char *s, size_t min, size_t max, int underscore)
{
	size_t n = strnlen(s, max + 1);
	if (n < min || n > max || !is_lower_or_digit(s[0]))
		return 0;
	if (!underscore && !is_lower_or_digit(s[n - 1]))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_lower_or_digit(s[i]) && s[i] != '-' && !(underscore && s[i] == '_'))
			return 0;
	return 1;
}

static int bucket_name_valid(const char *s)
{
	return lower_name_valid(s, 3, 63, 0);
}

static int queue_name_valid(const char *s)
{
	return lower_name_valid(s, 1, 63, 0);
}

static int database_name_valid(const char *s)
{
	return lower_name_valid(s, 1, 63, 1);
}

static int id_valid(const char *s)
{
	size_t n = strnlen(s, 65);
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return 0;
	return 1;
}

static int jurisdiction_valid(const char *s)
{
	return !strcmp(s, "eu") || !strcmp(s, "fedramp");
}

/* A migration's tag: 1-64 printable ASCII characters. */
static int tag_valid(const char *s)
{
	size_t n = strnlen(s, 65);
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

static const char identifier_rule[] = "use letters, digits and '_', not starting with a digit, "
				      "at most 63 characters";
static const char id_rule[] = "use 1-64 letters, digits, '-' and '_'";
static const char worker_rule[] = "a worker name: 1-63 lowercase letters, digits, '-' and '_'";

/* --- lists of entries, described by their fields --- */

enum field_type { FIELD_STRING, FIELD_INT, FIELD_DIR };

struct field {
	const char *key;
	enum field_type type;
	int required;
	size_t offset;               /* of the char * or int in the entry */
	int (*valid)(const char *s); /* FIELD_STRING */
	const char *rule;            /* FIELD_STRING: valid in words, for messages */
	const char *default_string;  /* FIELD_STRING, FIELD_DIR: when absent (NULL: none) */
	int min, max, default_int;   /* FIELD_INT; default_int -1: not set */
};

struct list {
	enum project_section section;
	const char *path; /* "kv_namespaces", "queues.producers" */
	size_t size;      /* of one entry */
	const struct field *fields;
	size_t nfields;
	const char *binding_key; /* the field that names a binding, or NULL */
	const char *example;     /* an entry, for the "must be a list" message */
};

#define STRING(k, req, entry, member, rule_fn, rule_text, dflt)                                    \
	{                                                                                          \
		.key = k, .type = FIELD_STRING, .required = req,                                   \
		.offset = offsetof(struct entry, member), .valid = rule_fn, .rule = rule_text,     \
		.default_string = dflt                                                             \
	}
#define INT(k, entry, member, lo, hi, dflt)                                                        \
	{                                                                                          \
		.key = k, .type = FIELD_INT, .offset = offsetof(struct entry, member), .min = lo,  \
		.max = hi, .default_int = dflt                                                     \
	}

static const struct field kv_fields[] = {
	STRING("binding", 1, project_kv, binding, project_binding_name_valid, identifier_rule,
	       NULL),
	STRING("id", 0, project_kv, id, id_valid, id_rule, NULL),
	STRING("preview_id", 0, project_kv, preview_id, id_valid, id_rule, NULL),
};

static const struct field d1_fields[] = {
	STRING("binding", 1, project_d1, binding, project_binding_name_valid, identifier_rule,
	       NULL),
	STRING("database_name", 1, project_d1, database_name, database_name_valid,
	       "use 1-63 lowercase letters, digits, '-' and '_', starting with a letter or digit",
	       NULL),
	STRING("database_id", 0, project_d1, database_id, id_valid, id_rule, NULL),
	{.key = "migrations_dir",
	 .type = FIELD_DIR,
	 .offset = offsetof(struct project_d1, migrations_dir),
	 .default_string = "migrations"},
	STRING("migrations_table", 0, project_d1, migrations_table, project_binding_name_valid,
	       "an SQL table name: letters, digits and '_', not starting with a digit, at most 63 "
	       "characters",
	       "d1_migrations"),
};

static const struct field r2_fields[] = {
	STRING("binding", 1, project_r2, binding, project_binding_name_valid, identifier_rule,
	       NULL),
	STRING("bucket_name", 1, project_r2, bucket_name, bucket_name_valid,
	       "use 3-63 lowercase letters, digits and '-', not starting or ending with '-'", NULL),
	STRING("jurisdiction", 0, project_r2, jurisdiction, jurisdiction_valid,
	       "it is \"eu\" or \"fedramp\"", NULL),
};

static const struct field durable_object_fields[] = {
	STRING("name", 1, project_durable_object, name, project_binding_name_valid, identifier_rule,
	       NULL),
	STRING("class_name", 1, project_durable_object, class_name, project_binding_name_valid,
	       "a Python class name: letters, digits and '_', at most 63 characters", NULL),
	STRING("script_name", 0, project_durable_object, script_name, project_name_valid,
	       worker_rule, NULL),
};

static const char queue_rule[] = "use 1-63 lowercase letters, digits and '-', not starting or "
				 "ending with '-'";

static const struct field producer_fields[] = {
	STRING("binding", 1, project_queue_producer, binding, project_binding_name_valid,
	       identifier_rule, NULL),
	STRING("queue", 1, project_queue_producer, queue, queue_name_valid, queue_rule, NULL),
	INT("delivery_delay", project_queue_producer, delivery_delay, 0, 43200, -1),
};

static const struct field consumer_fields[] = {
	STRING("queue", 1, project_queue_consumer, queue, queue_name_valid, queue_rule, NULL),
	INT("max_batch_size", project_queue_consumer, max_batch_size, 1, 100, 10),
	INT("max_batch_timeout", project_queue_consumer, max_batch_timeout, 0, 60, 5),
	INT("max_retries", project_queue_consumer, max_retries, 0, 100, 3),
	STRING("dead_letter_queue", 0, project_queue_consumer, dead_letter_queue, queue_name_valid,
	       queue_rule, NULL),
	INT("retry_delay", project_queue_consumer, retry_delay, 0, 43200, -1),
	INT("max_concurrency", project_queue_consumer, max_concurrency, 1, 250, -1),
};

static const struct field service_fields[] = {
	STRING("binding", 1, project_service, binding, project_binding_name_valid, identifier_rule,
	       NULL),
	STRING("service", 1, project_service, service, project_name_valid, worker_rule, NULL),
	STRING("entrypoint", 0, project_service, entrypoint, project_binding_name_valid,
	       "a Python class name: letters, digits and '_', at most 63 characters", NULL),
};

static const struct list lists[] = {
	{PROJECT_SECTION_KV, "kv_namespaces", sizeof(struct project_kv), kv_fields,
	 ARRAY_SIZE(kv_fields), "binding", "{binding = \"KV\", id = \"...\"}"},
	{PROJECT_SECTION_D1, "d1_databases", sizeof(struct project_d1), d1_fields,
	 ARRAY_SIZE(d1_fields), "binding", "{binding = \"DB\", database_name = \"my-db\"}"},
	{PROJECT_SECTION_R2, "r2_buckets", sizeof(struct project_r2), r2_fields,
	 ARRAY_SIZE(r2_fields), "binding", "{binding = \"BUCKET\", bucket_name = \"my-bucket\"}"},
	{PROJECT_SECTION_DURABLE_OBJECTS, "durable_objects.bindings",
	 sizeof(struct project_durable_object), durable_object_fields,
	 ARRAY_SIZE(durable_object_fields), "name", "{name = \"ROOMS\", class_name = \"Room\"}"},
	{PROJECT_SECTION_QUEUE_PRODUCERS, "queues.producers", sizeof(struct project_queue_producer),
	 producer_fields, ARRAY_SIZE(producer_fields), "binding",
	 "{binding = \"JOBS\", queue = \"jobs\"}"},
	{PROJECT_SECTION_QUEUE_CONSUMERS, "queues.consumers", sizeof(struct project_queue_consumer),
	 consumer_fields, ARRAY_SIZE(consumer_fields), NULL, "{queue = \"jobs\"}"},
	{PROJECT_SECTION_SERVICES, "services", sizeof(struct project_service), service_fields,
	 ARRAY_SIZE(service_fields), "binding", "{binding = \"AUTH\", service = \"auth-worker\"}"},
};

static const struct list *list_of(enum project_section s)
{
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
		if (lists[i].section == s)
			return &lists[i];
	return NULL;
}

/* The array of section s in p (as void *: its type is the list's entry). */
static void *section_items(const struct project *p, enum project_section s, size_t *n)
{
	switch (s) {
	case PROJECT_SECTION_KV:
		*n = p->nkv_namespaces;
		return p->kv_namespaces;
	case PROJECT_SECTION_D1:
		*n = p->nd1_databases;
		return p->d1_databases;
	case PROJECT_SECTION_R2:
		*n = p->nr2_buckets;
		return p->r2_buckets;
	case PROJECT_SECTION_DURABLE_OBJECTS:
		*n = p->ndurable_objects;
		return p->durable_objects;
	case PROJECT_SECTION_MIGRATIONS:
		*n = p->nmigrations;
		return p->migrations;
	case PROJECT_SECTION_QUEUE_PRODUCERS:
		*n = p->nqueue_producers;
		return p->queue_producers;
	case PROJECT_SECTION_QUEUE_CONSUMERS:
		*n = p->nqueue_consumers;
		return p->queue_consumers;
	case PROJECT_SECTION_SERVICES:
		*n = p->nservices;
		return p->services;
	default:
		*n = 0;
		return NULL;
	}
}

static void section_set(struct project *p, enum project_section s, void *items, size_t n)
{
	switch (s) {
	case PROJECT_SECTION_KV:
		p->kv_namespaces = items;
		p->nkv_namespaces = n;
		break;
	case PROJECT_SECTION_D1:
		p->d1_databases = items;
		p->nd1_databases = n;
		break;
	case PROJECT_SECTION_R2:
		p->r2_buckets = items;
		p->nr2_buckets = n;
		break;
	case PROJECT_SECTION_DURABLE_OBJECTS:
		p->durable_objects = items;
		p->ndurable_objects = n;
		break;
	case PROJECT_SECTION_MIGRATIONS:
		p->migrations = items;
		p->nmigrations = n;
		break;
	case PROJECT_SECTION_QUEUE_PRODUCERS:
		p->queue_producers = items;
		p->nqueue_producers = n;
		break;
	case PROJECT_SECTION_QUEUE_CONSUMERS:
		p->queue_consumers = items;
		p->nqueue_consumers = n;
		break;
	case PROJECT_SECTION_SERVICES:
		p->services = items;
		p->nservices = n;
		break;
	default:
		break;
	}
}

static char **string_at(void *entry, const struct field *f)
{
	return (char **)((char *)entry + f->offset);
}

static int *int_at(void *entry, const struct field *f)
{
	return (int *)((char *)entry + f->offset);
}

static void list_free(const struct list *l, void *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		void *e = (char *)items + i * l->size;
		for (size_t k = 0; k < l->nfields; k++)
			if (l->fields[k].type != FIELD_INT)
				free(*string_at(e, &l->fields[k]));
	}
	free(items);
}

static void strings_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void migrations_free(struct project_migration *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].tag);
		strings_free(m[i].new_classes, m[i].nnew_classes);
		strings_free(m[i].new_sqlite_classes, m[i].nnew_sqlite_classes);
		for (size_t k = 0; k < m[i].nrenamed_classes; k++) {
			free(m[i].renamed_classes[k].from);
			free(m[i].renamed_classes[k].to);
		}
		free(m[i].renamed_classes);
		strings_free(m[i].deleted_classes, m[i].ndeleted_classes);
	}
	free(m);
}

static void section_free(struct project *p, enum project_section s)
{
	size_t n;
	void *items = section_items(p, s, &n);
	if (s == PROJECT_SECTION_MIGRATIONS)
		migrations_free(items, n);
	else if (items)
		list_free(list_of(s), items, n);
	section_set(p, s, NULL, 0);
	p->section_sources[s] = NULL;
}

void project_bindings_dispose(struct project *p)
{
	for (int s = 0; s < PROJECT_SECTIONS; s++)
		section_free(p, (enum project_section)s);
}

/* An unknown key inside an entry: a note in a file, an error in an answer. */
static int unknown_key(const char *where, const char *path, size_t i, const char *key,
		       int from_file, FILE *notes, char *err, size_t errlen)
{
	if (!from_file)
		return err_set(err, errlen, "%s: %s[%zu].%.64s is not a key thaw knows", where,
			       path, i, key);
	if (notes)
		fprintf(notes,
			"note: %s: '%s[%zu].%.64s' is not used by this version of thaw; "
			"ignored\n",
			where, path, i, key);
	return 0;
}

/*
 * migrations_dir as written in a file: "./db/migrations/" is "db/migrations";
 * it must stay inside the project, also through symlinks (each part of it
 * that exists is resolved). From an answer it must be normalised already.
 */
static int take_dir(const struct project *p, const char *s, int from_file, char out[256])
{
	char path[256];
	const char *rest = s;
	while (from_file && rest[0] == '.' && rest[1] == '/')
		for (rest += 2; *rest == '/'; rest++)
			;
	size_t n = strnlen(rest, 256);
	if (n > 255)
		return -1;
	memcpy(path, rest, n);
	path[n] = 0;
	while (from_file && n > 1 && path[n - 1] == '/')
		path[--n] = 0;
	if (!project_relative_dir_valid(path))
		return -1;
	memcpy(out, path, n + 1);
	if (!from_file || !p->dir)
		return 0;
	/* Resolve the longest part that exists: it must be inside the project. */
	char joined[PATH_MAX], real[PATH_MAX], dir_real[PATH_MAX];
	if (!realpath(p->dir, dir_real) || path_join(joined, sizeof joined, dir_real, path) < 0)
		return -1;
	size_t root = strlen(dir_real);
	for (;;) {
		struct stat st;
		if (lstat(joined, &st) == 0) {
			if (!realpath(joined, real))
				return -1;
			size_t k = strlen(real);
			if (k < root || strncmp(real, dir_real, root) != 0 ||
			    (real[root] != '/' && real[root] != 0))
				return -1;
			return 0;
		}
		char *slash = strrchr(joined, '/');
		if (!slash || (size_t)(slash - joined) <= root)
			return 0; /* nothing of it exists yet */
		*slash = 0;
	}
}

/* One entry of list l: the object e, i-th of the list. */
static int take_entry(const struct project *p, const struct list *l, void *entry, size_t i,
		      const json_t *e, const char *where, int from_file, FILE *notes, char *err,
		      size_t errlen)
{
	if (!json_is_object(e))
		return err_set(err, errlen, "%s: %s[%zu] must be a table, as %s", where, l->path, i,
			       l->example);
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)e, key, v) {
		size_t k = 0;
		while (k < l->nfields && strcmp(l->fields[k].key, key) != 0)
			k++;
		if (k == l->nfields &&
		    unknown_key(where, l->path, i, key, from_file, notes, err, errlen) < 0)
			return -1;
	}
	for (size_t k = 0; k < l->nfields; k++) {
		const struct field *f = &l->fields[k];
		v = json_object_get(e, f->key);
		if (json_is_null(v))
			v = NULL;
		if (!v && f->required)
			return err_set(err, errlen, "%s: %s[%zu].%s is required (as in %s)", where,
				       l->path, i, f->key, l->example);
		if (f->type == FIELD_INT) {
			json_int_t x = v ? json_integer_value(v) : f->default_int;
			if (v && (!json_is_integer(v) || x < f->min || x > f->max))
				return err_set(err, errlen,
					       "%s: %s[%zu].%s must be a whole number from %d to "
					       "%d",
					       where, l->path, i, f->key, f->min, f->max);
			*int_at(entry, f) = (int)x;
			continue;
		}
		const char *s = v ? json_string_value(v) : f->default_string;
		if (v && !s)
			return err_set(err, errlen, "%s: %s[%zu].%s must be a string", where,
				       l->path, i, f->key);
		if (!s)
			continue;
		if (f->type == FIELD_DIR) {
			char dir[256];
			if (take_dir(p, s, from_file, dir) < 0)
				return err_set(err, errlen,
					       "%s: %s[%zu].%s '%.64s' must be a folder inside the "
					       "project, relative to it (such as \"migrations\")",
					       where, l->path, i, f->key, s);
			*string_at(entry, f) = xstrdup(dir);
			continue;
		}
		if (!f->valid(s))
			return err_set(err, errlen, "%s: %s[%zu].%s '%.64s' is not valid: %s",
				       where, l->path, i, f->key, s, f->rule);
		*string_at(entry, f) = xstrdup(s);
	}
	return 0;
}

/* A list of entries: replaces section l->section of p. */
static int take_list(struct project *p, const struct list *l, const json_t *v, const char *where,
		     int from_file, FILE *notes, char *err, size_t errlen)
{
	if (!json_is_array(v))
		return err_set(err, errlen, "%s: %s must be a list of tables, as [%s]", where,
			       l->path, l->example);
	size_t n = json_array_size(v);
	if (n > PROJECT_MAX_BINDINGS)
		return err_set(err, errlen, "%s: %s has %zu entries; at most %d", where, l->path, n,
			       PROJECT_MAX_BINDINGS);
	char *items = xcalloc(n ? n : 1, l->size);
	for (size_t i = 0; i < n; i++) {
		if (take_entry(p, l, items + i * l->size, i, json_array_get(v, i), where, from_file,
			       notes, err, errlen) < 0) {
			list_free(l, items, n);
			return -1;
		}
	}
	section_free(p, l->section);
	if (n)
		section_set(p, l->section, items, n);
	else
		free(items);
	p->section_sources[l->section] = n ? where : NULL;
	return 0;
}

/* A list of class names: migrations[i].key. */
static int take_classes(const json_t *v, const char *where, size_t i, const char *key, char ***out,
			size_t *nout, char *err, size_t errlen)
{
	if (!json_is_array(v) || json_array_size(v) > PROJECT_MAX_MIGRATION_CLASSES)
		return err_set(err, errlen,
			       "%s: migrations[%zu].%s must be a list of at most %d "
			       "class names",
			       where, i, key, PROJECT_MAX_MIGRATION_CLASSES);
	size_t n = json_array_size(v);
	char **names = xcalloc(n ? n : 1, sizeof *names);
	for (size_t k = 0; k < n; k++) {
		const char *s = json_string_value(json_array_get(v, k));
		if (!s || !project_binding_name_valid(s)) {
			strings_free(names, k);
			return err_set(err, errlen,
				       "%s: migrations[%zu].%s[%zu] must be a Python class name "
				       "(letters, digits and '_', at most 63 characters)",
				       where, i, key, k);
		}
		names[k] = xstrdup(s);
	}
	*out = names;
	*nout = n;
	return 0;
}

static int take_renames(const json_t *v, const char *where, size_t i, int from_file, FILE *notes,
			struct project_migration *m, char *err, size_t errlen)
{
	if (!json_is_array(v) || json_array_size(v) > PROJECT_MAX_MIGRATION_CLASSES)
		return err_set(err, errlen,
			       "%s: migrations[%zu].renamed_classes must be a list of "
			       "at most %d {from = \"Old\", to = \"New\"}",
			       where, i, PROJECT_MAX_MIGRATION_CLASSES);
	size_t n = json_array_size(v);
	m->renamed_classes = xcalloc(n ? n : 1, sizeof *m->renamed_classes);
	for (size_t k = 0; k < n; k++) {
		const json_t *r = json_array_get(v, k);
		const char *from = json_string_value(json_object_get(r, "from"));
		const char *to = json_string_value(json_object_get(r, "to"));
		if (!json_is_object(r) || !from || !to || !project_binding_name_valid(from) ||
		    !project_binding_name_valid(to))
			return err_set(err, errlen,
				       "%s: migrations[%zu].renamed_classes[%zu] must be {from = "
				       "\"Old\", to = \"New\"} with Python class names",
				       where, i, k);
		const char *key;
		json_t *x;
		json_object_foreach((json_t *)r, key, x) {
			if (strcmp(key, "from") && strcmp(key, "to")) {
				char path[64];
				snprintf(path, sizeof path, "migrations[%zu].renamed_classes", i);
				if (unknown_key(where, path, k, key, from_file, notes, err,
						errlen) < 0)
					return -1;
			}
		}
		m->renamed_classes[k].from = xstrdup(from);
		m->renamed_classes[k].to = xstrdup(to);
		m->nrenamed_classes = k + 1;
	}
	return 0;
}

static int take_migration(struct project_migration *m, size_t i, const json_t *e, const char *where,
			  int from_file, FILE *notes, char *err, size_t errlen)
{
	if (!json_is_object(e))
		return err_set(err, errlen,
			       "%s: migrations[%zu] must be a table, as {tag = \"v1\", "
			       "new_sqlite_classes = [\"Room\"]}",
			       where, i);
	const char *tag = json_string_value(json_object_get(e, "tag"));
	if (!tag || !tag_valid(tag))
		return err_set(err, errlen,
			       "%s: migrations[%zu].tag is required: 1-64 printable "
			       "characters, as \"v1\"",
			       where, i);
	m->tag = xstrdup(tag);
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)e, key, v) {
		int rc = 0;
		if (!strcmp(key, "tag"))
			continue;
		if (!strcmp(key, "new_classes"))
			rc = take_classes(v, where, i, key, &m->new_classes, &m->nnew_classes, err,
					  errlen);
		else if (!strcmp(key, "new_sqlite_classes"))
			rc = take_classes(v, where, i, key, &m->new_sqlite_classes,
					  &m->nnew_sqlite_classes, err, errlen);
		else if (!strcmp(key, "deleted_classes"))
			rc = take_classes(v, where, i, key, &m->deleted_classes,
					  &m->ndeleted_classes, err, errlen);
		else if (!strcmp(key, "renamed_classes"))
			rc = take_renames(v, where, i, from_file, notes, m, err, errlen);
		else
			rc = unknown_key(where, "migrations", i, key, from_file, notes, err,
					 errlen);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static int take_migrations(struct project *p, const json_t *v, const char *where, int from_file,
			   FILE *notes, char *err, size_t errlen)
{
	if (!json_is_array(v))
		return err_set(err, errlen,
			       "%s: migrations must be a list of tables, as [{tag = "
			       "\"v1\", new_sqlite_classes = [\"Room\"]}]",
			       where);
	size_t n = json_array_size(v);
	if (n > PROJECT_MAX_MIGRATIONS)
		return err_set(err, errlen, "%s: migrations has %zu entries; at most %d", where, n,
			       PROJECT_MAX_MIGRATIONS);
	struct project_migration *m = xcalloc(n ? n : 1, sizeof *m);
	for (size_t i = 0; i < n; i++) {
		if (take_migration(&m[i], i, json_array_get(v, i), where, from_file, notes, err,
				   errlen) < 0) {
			migrations_free(m, n);
			return -1;
		}
	}
	section_free(p, PROJECT_SECTION_MIGRATIONS);
	if (n)
		section_set(p, PROJECT_SECTION_MIGRATIONS, m, n);
	else
		free(m);
	p->section_sources[PROJECT_SECTION_MIGRATIONS] = n ? where : NULL;
	return 0;
}

/* durable_objects = {bindings = [...]} or queues = {producers, consumers}:
 * each list in it replaces its own. */
static int take_table(struct project *p, const char *key, const json_t *v, const char *where,
		      int from_file, FILE *notes, char *err, size_t errlen)
{
	int queues = !strcmp(key, "queues");
	if (!json_is_object(v))
		return err_set(err, errlen, "%s: '%s' must be a table, as %s", where, key,
			       queues ? "queues = {producers = [...], consumers = [...]}"
				      : "durable_objects = {bindings = [...]}");
	const char *sub;
	json_t *x;
	json_object_foreach((json_t *)v, sub, x) {
		enum project_section s = PROJECT_SECTIONS;
		if (queues && !strcmp(sub, "producers"))
			s = PROJECT_SECTION_QUEUE_PRODUCERS;
		else if (queues && !strcmp(sub, "consumers"))
			s = PROJECT_SECTION_QUEUE_CONSUMERS;
		else if (!queues && !strcmp(sub, "bindings"))
			s = PROJECT_SECTION_DURABLE_OBJECTS;
		if (s != PROJECT_SECTIONS) {
			if (take_list(p, list_of(s), x, where, from_file, notes, err, errlen) < 0)
				return -1;
		} else if (!from_file) {
			return err_set(err, errlen, "%s: %s.%.64s is not a key thaw knows", where,
				       key, sub);
		} else if (notes) {
			fprintf(notes,
				"note: %s: '%s.%.64s' is not used by this version of thaw; "
				"ignored\n",
				where, key, sub);
		}
	}
	return 0;
}

int project_bindings_take(struct project *p, const char *key, const json_t *v, const char *where,
			  int from_file, FILE *notes, char *err, size_t errlen)
{
	int rc;
	if (!strcmp(key, "durable_objects") || !strcmp(key, "queues"))
		rc = take_table(p, key, v, where, from_file, notes, err, errlen);
	else if (!strcmp(key, "migrations"))
		rc = take_migrations(p, v, where, from_file, notes, err, errlen);
	else if (!strcmp(key, "kv_namespaces"))
		rc = take_list(p, list_of(PROJECT_SECTION_KV), v, where, from_file, notes, err,
			       errlen);
	else if (!strcmp(key, "d1_databases"))
		rc = take_list(p, list_of(PROJECT_SECTION_D1), v, where, from_file, notes, err,
			       errlen);
	else if (!strcmp(key, "r2_buckets"))
		rc = take_list(p, list_of(PROJECT_SECTION_R2), v, where, from_file, notes, err,
			       errlen);
	else if (!strcmp(key, "services"))
		rc = take_list(p, list_of(PROJECT_SECTION_SERVICES), v, where, from_file, notes,
			       err, errlen);
	else
		return 0;
	return rc < 0 ? -1 : 1;
}

/* --- the rules across kinds --- */

struct named {
	const char *name, *path, *where;
	size_t index;
};

/* Every binding p puts in env, in a fixed order. Returns how many (at most
 * max). */
static size_t collect_bindings(const struct project *p, struct named *out, size_t max)
{
	size_t count = 0;
	for (size_t k = 0; k < ARRAY_SIZE(lists); k++) {
		const struct list *l = &lists[k];
		if (!l->binding_key)
			continue;
		const struct field *f = NULL;
		for (size_t i = 0; i < l->nfields; i++)
			if (!strcmp(l->fields[i].key, l->binding_key))
				f = &l->fields[i];
		size_t n;
		char *items = section_items(p, l->section, &n);
		for (size_t i = 0; i < n && count < max; i++)
			out[count++] = (struct named){*string_at(items + i * l->size, f), l->path,
						      p->section_sources[l->section], i};
	}
	return count;
}

static int check_names(const struct project *p, char *err, size_t errlen)
{
	size_t max = project_bindings_count(p);
	struct named *all = xcalloc(max ? max : 1, sizeof *all);
	size_t n = collect_bindings(p, all, max);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct named *b = &all[i];
		const char *key = !strcmp(b->path, "durable_objects.bindings") ? "name" : "binding";
		if (p->vars && json_object_get(p->vars, b->name)) {
			rc = err_set(err, errlen,
				     "%s: %s[%zu].%s '%s' has the name of a var (vars.%s): rename "
				     "one of them",
				     b->where, b->path, b->index, key, b->name, b->name);
		} else if (p->assets.binding && !strcmp(p->assets.binding, b->name)) {
			rc = err_set(err, errlen,
				     "%s: %s[%zu] binding '%s' is also the assets binding "
				     "(assets.binding): rename one of them",
				     b->where, b->path, b->index, b->name);
		}
		for (size_t k = 0; k < i && rc == 0; k++)
			if (!strcmp(all[k].name, b->name))
				rc = err_set(err, errlen,
					     "%s: %s[%zu] binding '%s' is also %s[%zu] (%s): each "
					     "binding needs its own name",
					     b->where, b->path, b->index, b->name, all[k].path,
					     all[k].index, all[k].where);
	}
	free(all);
	return rc;
}

static int check_consumers(const struct project *p, char *err, size_t errlen)
{
	const char *where = p->section_sources[PROJECT_SECTION_QUEUE_CONSUMERS];
	for (size_t i = 0; i < p->nqueue_consumers; i++) {
		const struct project_queue_consumer *c = &p->queue_consumers[i];
		if (c->dead_letter_queue && !strcmp(c->dead_letter_queue, c->queue))
			return err_set(err, errlen,
				       "%s: queues.consumers[%zu].dead_letter_queue '%s' "
				       "is the queue itself: name another queue",
				       where, i, c->queue);
		for (size_t k = 0; k < i; k++)
			if (!strcmp(p->queue_consumers[k].queue, c->queue))
				return err_set(err, errlen,
					       "%s: queues.consumers[%zu] consumes '%s' as "
					       "queues.consumers[%zu] does: a queue has one "
					       "consumer "
					       "in a worker",
					       where, i, c->queue, k);
	}
	return 0;
}

/* The Durable Object classes that exist after the migrations applied so far. */
struct class_set {
	const char **names; /* borrowed from the migrations */
	size_t n;
};

static ptrdiff_t class_find(const struct class_set *set, const char *name)
{
	for (size_t i = 0; i < set->n; i++)
		if (!strcmp(set->names[i], name))
			return (ptrdiff_t)i;
	return -1;
}

static void class_remove(struct class_set *set, size_t i)
{
	set->names[i] = set->names[--set->n];
}

/* Apply migrations in order to set; 0, or -1 with err at the first that
 * cannot apply. */
static int check_migrations(const struct project *p, struct class_set *set, char *err,
			    size_t errlen)
{
	const char *where = p->section_sources[PROJECT_SECTION_MIGRATIONS];
	set->n = 0;
	for (size_t i = 0; i < p->nmigrations; i++) {
		const struct project_migration *m = &p->migrations[i];
		for (size_t k = 0; k < i; k++)
			if (!strcmp(p->migrations[k].tag, m->tag))
				return err_set(err, errlen,
					       "%s: migrations[%zu].tag '%s' is also "
					       "migrations[%zu]'s: each tag is used once",
					       where, i, m->tag, k);
		for (int sqlite = 0; sqlite < 2; sqlite++) {
			char **names = sqlite ? m->new_sqlite_classes : m->new_classes;
			size_t count = sqlite ? m->nnew_sqlite_classes : m->nnew_classes;
			for (size_t k = 0; k < count; k++) {
				if (class_find(set, names[k]) >= 0)
					return err_set(
						err, errlen,
						"%s: migrations[%zu] (tag '%s') creates class "
						"'%s', which an earlier migration (or this one) "
						"already created",
						where, i, m->tag, names[k]);
				set->names[set->n++] = names[k];
			}
		}
		for (size_t k = 0; k < m->nrenamed_classes; k++) {
			const struct project_class_rename *r = &m->renamed_classes[k];
			ptrdiff_t at = class_find(set, r->from);
			if (at < 0)
				return err_set(err, errlen,
					       "%s: migrations[%zu] (tag '%s') renames class '%s', "
					       "which no earlier migration created",
					       where, i, m->tag, r->from);
			if (class_find(set, r->to) >= 0)
				return err_set(err, errlen,
					       "%s: migrations[%zu] (tag '%s') renames '%s' to "
					       "'%s', "
					       "which exists already",
					       where, i, m->tag, r->from, r->to);
			set->names[at] = r->to;
		}
		for (size_t k = 0; k < m->ndeleted_classes; k++) {
			ptrdiff_t at = class_find(set, m->deleted_classes[k]);
			if (at < 0)
				return err_set(err, errlen,
					       "%s: migrations[%zu] (tag '%s') deletes class '%s', "
					       "which no earlier migration created",
					       where, i, m->tag, m->deleted_classes[k]);
			class_remove(set, (size_t)at);
		}
	}
	return 0;
}

int project_bindings_check(const struct project *p, FILE *notes, char *err, size_t errlen)
{
	/* Room for every class the migrations create: renames replace in place. */
	size_t created = 0;
	for (size_t i = 0; i < p->nmigrations; i++)
		created += p->migrations[i].nnew_classes + p->migrations[i].nnew_sqlite_classes;
	struct class_set set = {xcalloc(created ? created : 1, sizeof *set.names), 0};
	if (check_names(p, err, errlen) < 0 || check_consumers(p, err, errlen) < 0 ||
	    check_migrations(p, &set, err, errlen) < 0) {
		free(set.names);
		return -1;
	}
	for (size_t i = 0; notes && i < p->ndurable_objects; i++) {
		const struct project_durable_object *d = &p->durable_objects[i];
		if (!d->script_name && class_find(&set, d->class_name) < 0)
			fprintf(notes,
				"note: %s: durable_objects.bindings[%zu] uses class '%s', which no "
				"migration creates: add one, as migrations = [{tag = \"v1\", "
				"new_sqlite_classes = [\"%s\"]}]\n",
				p->section_sources[PROJECT_SECTION_DURABLE_OBJECTS], i,
				d->class_name, d->class_name);
	}
	free(set.names);
	return 0;
}

size_t project_bindings_count(const struct project *p)
{
	return p->nkv_namespaces + p->nd1_databases + p->nr2_buckets + p->ndurable_objects +
	       p->nqueue_producers + p->nservices;
}

/* --- JSON --- */

static json_t *list_to_json(const struct project *p, const struct list *l)
{
	size_t n;
	char *items = section_items(p, l->section, &n);
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		void *e = items + i * l->size;
		json_t *o = json_object();
		for (size_t k = 0; k < l->nfields; k++) {
			const struct field *f = &l->fields[k];
			if (f->type == FIELD_INT) {
				if (*int_at(e, f) >= 0)
					json_object_set_new(o, f->key, json_integer(*int_at(e, f)));
			} else if (*string_at(e, f)) {
				json_object_set_new(o, f->key, json_string(*string_at(e, f)));
			}
		}
		json_array_append_new(a, o);
	}
	return a;
}

static json_t *strings_to_json(char **v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *migrations_to_json(const struct project *p)
{
	json_t *a = json_array();
	for (size_t i = 0; i < p->nmigrations; i++) {
		const struct project_migration *m = &p->migrations[i];
		json_t *o = json_pack("{s:s}", "tag", m->tag);
		if (!o)
			fatal("cannot encode a project");
		if (m->nnew_classes)
			json_object_set_new(o, "new_classes",
					    strings_to_json(m->new_classes, m->nnew_classes));
		if (m->nnew_sqlite_classes)
			json_object_set_new(o, "new_sqlite_classes",
					    strings_to_json(m->new_sqlite_classes,
							    m->nnew_sqlite_classes));
		if (m->nrenamed_classes) {
			json_t *r = json_array();
			for (size_t k = 0; k < m->nrenamed_classes; k++)
				json_array_append_new(r, json_pack("{s:s, s:s}", "from",
								   m->renamed_classes[k].from, "to",
								   m->renamed_classes[k].to));
			json_object_set_new(o, "renamed_classes", r);
		}
		if (m->ndeleted_classes)
			json_object_set_new(o, "deleted_classes",
					    strings_to_json(m->deleted_classes,
							    m->ndeleted_classes));
		json_array_append_new(a, o);
	}
	return a;
}

void project_bindings_to_json(const struct project *p, json_t *j)
{
	static const struct {
		enum project_section section;
		const char *table, *key; /* table: the member it is in, or NULL */
	} members[] = {
		{PROJECT_SECTION_KV, NULL, "kv_namespaces"},
		{PROJECT_SECTION_D1, NULL, "d1_databases"},
		{PROJECT_SECTION_R2, NULL, "r2_buckets"},
		{PROJECT_SECTION_DURABLE_OBJECTS, "durable_objects", "bindings"},
		{PROJECT_SECTION_QUEUE_PRODUCERS, "queues", "producers"},
		{PROJECT_SECTION_QUEUE_CONSUMERS, "queues", "consumers"},
		{PROJECT_SECTION_SERVICES, NULL, "services"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(members); i++) {
		size_t n;
		section_items(p, members[i].section, &n);
		if (!n)
			continue;
		json_t *list = list_to_json(p, list_of(members[i].section));
		json_t *into = j;
		if (members[i].table) {
			into = json_object_get(j, members[i].table);
			if (!into) {
				into = json_object();
				json_object_set_new(j, members[i].table, into);
			}
		}
		json_object_set_new(into, members[i].key, list);
	}
	if (p->nmigrations)
		json_object_set_new(j, "migrations", migrations_to_json(p));
}

int project_bindings_from_json(struct project *p, const json_t *j, char *err, size_t errlen)
{
	static const char *const keys[] = {"kv_namespaces",   "d1_databases", "r2_buckets",
					   "durable_objects", "migrations",   "queues",
					   "services"};
	static const char where[] = "malformed project description";
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const json_t *v = json_object_get(j, keys[i]);
		if (v && project_bindings_take(p, keys[i], v, where, 0, NULL, err, errlen) < 0)
			return -1;
	}
	return project_bindings_check(p, NULL, err, errlen);
}
