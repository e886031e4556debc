#ifndef THAW_CLI_CLI_H
#define THAW_CLI_CLI_H

int cmd_init(int argc, char **argv);
int cmd_dev(int argc, char **argv);
int cmd_install(int argc, char **argv);
/* In thaw-ext.so (see CMakeLists.txt), reached through cli_ext_main: */
int cmd_unpack_bundle(int argc, char **argv); /* internal: the host's unpacking child */
int cmd_pack(int argc, char **argv);          /* internal: pack a project (tests) */
/* The control API's client (remote.c). */
int cmd_deploy(int argc, char **argv);
int cmd_versions(int argc, char **argv);
int cmd_rollout(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_tail(int argc, char **argv);
/* cmd_serve is in host/serve.h. */

/* Run command `name` of thaw-ext.so; 1 with a message when it cannot be loaded. */
int cli_ext_main(const char *name, int argc, char **argv);

#endif
