/* The built-in _thaw module of an instance (pymod.c); internal to src/worker/. */
#ifndef THAW_WORKER_PYMOD_H
#define THAW_WORKER_PYMOD_H

#include <Python.h>

PyObject *thaw_pymod_init(void);

#endif
