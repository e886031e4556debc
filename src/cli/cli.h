#ifndef THAW_CLI_CLI_H
#define THAW_CLI_CLI_H

int cmd_init(int argc, char **argv);
int cmd_dev(int argc, char **argv);
int cmd_install(int argc, char **argv);
int cmd_types(int argc, char **argv);
/* The other commands are in thaw-ext.so: src/ext/ext.h. */

#endif
