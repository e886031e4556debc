#ifndef THAW_CLI_CLI_H
#define THAW_CLI_CLI_H

int cmd_init(int argc, char **argv);
int cmd_dev(int argc, char **argv);
int cmd_install(int argc, char **argv);
int cmd_types(int argc, char **argv);
/* The other commands are in thaw-ext.so: src/ext/ext.h. */

#include <stddef.h>

/* ext_load.c: thaw-ext.so, loaded once (returns its handle), or NULL with err. */
void *thaw_ext_open(char *err, size_t errlen);
/* Load it and register the binding kinds it serves (KV, D1, ...). 0, -1 with err. */
int thaw_ext_bindings(char *err, size_t errlen);

#endif
