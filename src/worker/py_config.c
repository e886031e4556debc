/*
 * `thaw config`: the config reader, a child of whoever needs a project read
 * (project.h). It parses TOML with Python's tomllib, so the host process
 * never starts an interpreter (~13 MB of RSS, and a parser of hostile files,
 * kept out of it).
 *
 *   thaw config DIR         the project in DIR: project.h's JSON answer
 *   thaw config --toml FILE one TOML file as JSON: {"ok":true,"value":..}
 *                           or {"ok":false,"error":S}
 *
 * Exactly one JSON line goes to stdout; notes about ignored keys go to
 * stderr. Exit status 0 when the answer says ok, else 1.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "worker/worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "project/project.h"

/* Only the standard library: tomllib and json. */
static int python_up(char *err, size_t errlen)
{
	if (Py_IsInitialized())
		return 0;
	PyConfig pc;
	PyConfig_InitIsolatedConfig(&pc);
	pc.site_import = 0;
	pc.install_signal_handlers = 0;
	pc.parse_argv = 0;
	pc.pathconfig_warnings = 0;
	pc.write_bytecode = 0;
	pc.module_search_paths_set = 1;
	PyStatus st = PyConfig_SetBytesString(&pc, &pc.home, THAW_PY_PREFIX);
	const char *paths[] = {THAW_PY_STDLIB, THAW_PY_DYNLOAD};
	for (size_t i = 0; !PyStatus_Exception(st) && i < 2; i++) {
		wchar_t *w = Py_DecodeLocale(paths[i], NULL);
		st = w ? PyWideStringList_Append(&pc.module_search_paths, w) : PyStatus_NoMemory();
		PyMem_RawFree(w);
	}
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&pc);
	PyConfig_Clear(&pc);
	if (PyStatus_Exception(st)) {
		snprintf(err, errlen, "cannot start Python to read TOML: %s",
			 st.err_msg ? st.err_msg : "?");
		return -1;
	}
	return 0;
}

static json_t *toml_parse(const char *text, size_t len, char *err, size_t errlen)
{
	if (python_up(err, errlen) < 0)
		return NULL;
	json_t *out = NULL;
	PyObject *toml = PyImport_ImportModule("tomllib");
	PyObject *json = PyImport_ImportModule("json");
	PyObject *s = PyUnicode_DecodeUTF8(text, (Py_ssize_t)len, "strict");
	PyObject *d = (toml && s) ? PyObject_CallMethod(toml, "loads", "O", s) : NULL;
	PyObject *j = NULL;
	if (d && json) {
		/* Dates and times become ISO strings. */
		PyObject *kw = Py_BuildValue("{s:O}", "default", (PyObject *)&PyUnicode_Type);
		PyObject *dumps = PyObject_GetAttrString(json, "dumps");
		PyObject *args = PyTuple_Pack(1, d);
		if (kw && dumps && args)
			j = PyObject_Call(dumps, args, kw);
		Py_XDECREF(kw);
		Py_XDECREF(dumps);
		Py_XDECREF(args);
	}
	if (j) {
		Py_ssize_t n;
		const char *u = PyUnicode_AsUTF8AndSize(j, &n);
		json_error_t je;
		if (u)
			out = json_loadb(u, (size_t)n, 0, &je);
		if (!out)
			snprintf(err, errlen, "internal error converting TOML");
	} else {
		PyObject *type, *value, *tb;
		PyErr_Fetch(&type, &value, &tb);
		PyObject *msg = value ? PyObject_Str(value) : NULL;
		const char *m = msg ? PyUnicode_AsUTF8(msg) : NULL;
		snprintf(err, errlen, "%s", m ? m : "invalid TOML");
		PyErr_Clear();
		Py_XDECREF(msg);
		Py_XDECREF(type);
		Py_XDECREF(value);
		Py_XDECREF(tb);
	}
	Py_XDECREF(j);
	Py_XDECREF(d);
	Py_XDECREF(s);
	Py_XDECREF(json);
	Py_XDECREF(toml);
	return out;
}

static json_t *failure(const char *err)
{
	return json_pack("{s:b, s:s}", "ok", 0, "error", err);
}

int worker_config_main(int argc, char **argv)
{
	char err[2048];
	if (argc == 3 && !strcmp(argv[1], "--toml")) {
		size_t len;
		char *text = read_file(argv[2], PROJECT_MAX_TOML_BYTES, &len);
		if (!text) {
			snprintf(err, sizeof err, "%s: %s", argv[2],
				 errno == EFBIG ? "larger than 16 MiB" : strerror(errno));
			return print_answer(failure(err));
		}
		json_t *v = toml_parse(text, len, err, sizeof err);
		free(text);
		return print_answer(v ? json_pack("{s:b, s:o}", "ok", 1, "value", v) : failure(err));
	}
	if ((argc != 2 && !(argc == 4 && !strcmp(argv[2], "--env"))) || argv[1][0] == '-') {
		fputs("usage: thaw config DIR [--env NAME] | thaw config --toml FILE (internal)\n",
		      stderr);
		return 2;
	}
	struct project *p = project_read_env(argv[1], argc == 4 ? argv[3] : NULL, toml_parse, stderr,
					     err, sizeof err);
	if (!p)
		return print_answer(failure(err));
	json_t *j = json_pack("{s:b, s:o}", "ok", 1, "project", project_to_json(p));
	project_free(p);
	return print_answer(j);
}
