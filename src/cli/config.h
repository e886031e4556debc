/*
 * A worker project's configuration: pyproject.toml [tool.thaw] over
 * wrangler.jsonc / wrangler.json / wrangler.toml. TOML is read with Python's
 * tomllib through the embedded interpreter, JSONC with our comment stripper
 * and jansson. Every file is untrusted: size-limited, type-checked, paths
 * confined to the project.
 */
#ifndef THAW_CLI_CONFIG_H
#define THAW_CLI_CONFIG_H

#include <jansson.h>

#define CONFIG_MAX_BYTES (1u << 20)

struct thaw_config {
	char *dir;          /* absolute project directory */
	char *name;         /* worker name */
	char *main;         /* entry module, relative to dir */
	json_t *vars;       /* object: name -> JSON value */
	json_t *dependencies; /* [project].dependencies: array of strings */
	char *sources;      /* the files read, for messages */
	int allow_entropy_at_import; /* [tool.thaw] allow_entropy_at_import */
};

/* Load the project in dir. On failure returns NULL with a message in err. */
struct thaw_config *config_load(const char *dir, char *err, size_t errlen);
void config_free(struct thaw_config *c);

/* Lower-level pieces, exposed for tests. */
/* Parse TOML text to a JSON value (via tomllib); NULL with err. */
json_t *config_toml_parse(const char *text, size_t len, char *err, size_t errlen);
/* Is s a valid worker name? */
int config_name_valid(const char *s);
/* Is s a safe relative path to a .py file inside a project? */
int config_main_valid(const char *s);

#endif
