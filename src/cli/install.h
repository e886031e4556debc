/*
 * Installing a project's [project].dependencies into DIR/python_modules for
 * the Python thaw embeds (Debian's /usr/bin/python3), with uv when it is on
 * PATH, else pip. Used by `thaw install` and, before serving, by `thaw dev`.
 */
#ifndef THAW_CLI_INSTALL_H
#define THAW_CLI_INSTALL_H

#include "project/project.h"

#define INSTALL_MAX_URLS 16

/* Index options passed through to the installer; strings are borrowed. */
struct thaw_install_options {
	const char *index_url;
	const char *extra_index_urls[INSTALL_MAX_URLS];
	int n_extra_index_urls;
	const char *find_links[INSTALL_MAX_URLS];
	int n_find_links;
	int no_index;
	int quiet;            /* -q to the installer */
	int stdout_to_stderr; /* the installer's stdout goes to our stderr (thaw dev) */
};

/* Record one of --index-url / --extra-index-url / --find-links (name without
 * the dashes). 0, or -1 with a message on stderr (too many, or a value that
 * could be taken for an option). Borrows value. */
int thaw_install_option(struct thaw_install_options *o, const char *name, const char *value);

/* Does c have dependencies while python_modules is missing or older than
 * pyproject.toml? Borrows c. */
int thaw_install_needed(const struct project *c);

/* Install c's dependencies into c->dir/python_modules, replacing it only
 * when the install succeeds. Blocks until the installer exits; its output
 * streams to the terminal. 0, or -1 with the reason printed. */
int thaw_install_run(const struct project *c, const struct thaw_install_options *o);

#endif
