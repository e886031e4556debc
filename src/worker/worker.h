#ifndef THAW_WORKER_WORKER_H
#define THAW_WORKER_WORKER_H

#include <Python.h>

/* The fd on which an instance finds its socket to the host. */
#define THAW_WORKER_FD 3

/* `thaw worker`: the internal instance mode. */
int worker_main(int argc, char **argv);
/* Module init for the built-in _thaw module. */
PyObject *thaw_pymod_init(void);

#endif
