/*
 * The instance side: everything that embeds CPython lives in src/worker/
 * (py_*.c); this header is all the rest of the tree sees of it, and it does
 * not include Python.h.
 */
#ifndef THAW_WORKER_WORKER_H
#define THAW_WORKER_WORKER_H

/* `thaw worker`: the internal instance mode (see worker.c). */
int worker_main(int argc, char **argv);
/* `thaw config`: the config reader child (py_config.c, project.h). */
int worker_config_main(int argc, char **argv);

#endif
