/*
 * From a parsed lockfile (uv.lock, or PEP 751 pylock.toml, as the JSON value
 * config_toml_parse returns) to the PEP 508 requirement strings that install
 * what it pins. Pure data: no files, no processes, so it is unit-tested and
 * fuzzed on its own. Lockfiles are untrusted input: every string taken from
 * one is checked before it can reach an installer's argv.
 */
#ifndef THAW_CLI_LOCKFILE_H
#define THAW_CLI_LOCKFILE_H

#include <jansson.h>
#include <stddef.h>

#define LOCK_MAX_PACKAGES 10000
#define REQUIREMENT_MAX_BYTES 4096

enum thaw_lock_kind { THAW_LOCK_UV, THAW_LOCK_PYLOCK };

/* A growable list of owned strings. */
struct thaw_reqs {
	char **v;
	size_t n, cap;
};

/* Append a copy of s. */
void thaw_reqs_add(struct thaw_reqs *r, const char *s);
/* Free the strings and the array; r may be zeroed and reused. */
void thaw_reqs_dispose(struct thaw_reqs *r);

/* May s go into an installer's argv as a requirement? Not empty, at most
 * REQUIREMENT_MAX_BYTES, no control bytes, and not starting with '-' (it
 * would be read as an option). 1 or 0. */
int thaw_requirement_valid(const char *s);

/* Is s a valid distribution name (PEP 508: letters, digits, '-', '_', '.',
 * starting and ending with a letter or digit)? */
int thaw_dist_name_valid(const char *s);

/* PEP 503 normalised comparison of two distribution names. */
int thaw_dist_name_equal(const char *a, const char *b);

/* Append to out the requirements that install what lock pins: name==version
 * for packages from an index, a direct reference (name @ URL, name @ file://,
 * name @ git+URL@COMMIT) for the others. The project itself (named
 * project_name, borrowed, may be NULL) and editable or virtual sources are
 * left out. With uv.lock, only what the project's packages reach through
 * their [package].dependencies is taken (not dev groups), each with the
 * environment markers of the edges that lead to it. Relative paths are
 * resolved against project_dir (borrowed).
 * 0, or -1 with a message in err (out may then hold part of the list). */
int thaw_lock_requirements(const json_t *lock, enum thaw_lock_kind kind, const char *project_name,
			   const char *project_dir, struct thaw_reqs *out, char *err,
			   size_t errlen);

#endif
