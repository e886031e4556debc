#ifndef THAW_CLI_CLI_H
#define THAW_CLI_CLI_H

int cmd_init(int argc, char **argv);
int cmd_dev(int argc, char **argv);

#endif
