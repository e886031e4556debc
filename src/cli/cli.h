#ifndef THAW_CLI_CLI_H
#define THAW_CLI_CLI_H

int cmd_init(int argc, char **argv);
int cmd_dev(int argc, char **argv);
int cmd_unpack_bundle(int argc, char **argv); /* internal: the host's unpacking child */
int cmd_pack(int argc, char **argv);          /* internal: pack a project (tests) */
int cmd_install(int argc, char **argv);
/* The control API's client (remote.c). */
int cmd_deploy(int argc, char **argv);
int cmd_versions(int argc, char **argv);
int cmd_rollout(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_tail(int argc, char **argv);

#endif
