/* thaw: one binary, subcommands. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <unistd.h>

#include "cli/cli.h"
#include "ext/ext.h"
#include "common/util.h"
#include "snap/snap.h"
#include "worker/worker.h"

static const char usage[] =
	"usage: thaw COMMAND [ARGS]\n"
	"\n"
	"thaw serves Python workers (Cloudflare Python Workers API) over HTTP.\n"
	"\n"
	"Commands:\n"
	"  init [DIR]     create a worker project (pyproject.toml, src/entry.py)\n"
	"  install [DIR]  install the project's dependencies into python_modules/\n"
	"  dev [DIR]      serve a project on this machine, reloading on change\n"
	"  types [DIR]    write a typing stub for the worker's env (vars, secrets, bindings)\n"
	"  serve --data DIR\n"
	"                 host many deployed workers, with a control API for deploys\n"
	"  deploy [DIR]   pack a project and deploy it to a thaw host as a new version\n"
	"  versions list|delete ... [NAME]\n"
	"                 a worker's versions on a host, with their share of the traffic;\n"
	"                 delete one that no deployment uses\n"
	"  rollout VERSION --percentage P [NAME]\n"
	"                 send P % of a worker's traffic to VERSION\n"
	"  rollback [VERSION]\n"
	"                 send all traffic back to the previous (or the given) version\n"
	"  tail [NAME]    follow a deployed worker's log lines\n"
	"  secret put|list|delete [NAME]\n"
	"                 a deployed worker's secrets (values from stdin, never shown)\n"
	"  crons [NAME]   a deployed worker's cron triggers and their latest runs\n"
	"  kv key put|get|list|delete ... --binding NAME\n"
	"                 a KV namespace of the project's local state (thaw dev's)\n"
	"  d1 execute|migrations ... DB\n"
	"                 SQL and migrations on a D1 database of the project's local state\n"
	"  snapshot inspect FILE [--verify]\n"
	"                 print a snapshot's header, regions, sizes and dependencies,\n"
	"                 or why it is invalid (--verify also checks every data byte)\n"
	"  help           this help\n"
	"\n"
	"`thaw COMMAND --help` tells more about each.\n"
	"Internal: `thaw worker` is the instance process the host starts.\n";

/* The commands of thaw-ext.so (see src/ext/ext.h): the module is loaded only
 * when one of them runs. NULL when cmd is not one of them, or (with a
 * message) when the module cannot be loaded. */
static int (*ext_command(const char *cmd))(int, char **)
{
	char err[1024];
	void *h = thaw_ext_open(err, sizeof err);
	if (!h) {
		fprintf(stderr, "thaw: unknown command '%s', or one of thaw-ext.so, which cannot be "
				"loaded: %s\n\n%s",
			cmd, err, usage);
		exit(2);
	}
	const struct thaw_ext_command *table = dlsym(h, THAW_EXT_COMMANDS_SYMBOL);
	if (!table) {
		fprintf(stderr, "thaw: thaw-ext.so has no command table: %s\n", dlerror());
		exit(1);
	}
	for (const struct thaw_ext_command *c = table; c->name; c++)
		if (!strcmp(c->name, cmd))
			return c->main;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "worker")) {
#ifndef THAW_SANITIZE
		/* Instances run with a deterministic address space, so a snapshot
		 * made in one maps into the next: turn ASLR off and start over. */
		int p = personality(0xffffffff);
		if (p >= 0 && !(p & ADDR_NO_RANDOMIZE) &&
		    personality((unsigned long)p | ADDR_NO_RANDOMIZE) >= 0)
			execv("/proc/self/exe", argv);
#endif
		return worker_main(argc - 1, argv + 1);
	}
	if (!strcmp(cmd, "config"))
		return worker_config_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "dev"))
		return cmd_dev(argc - 1, argv + 1);
	if (!strcmp(cmd, "init"))
		return cmd_init(argc - 1, argv + 1);
	if (!strcmp(cmd, "install"))
		return cmd_install(argc - 1, argv + 1);
	if (!strcmp(cmd, "types"))
		return cmd_types(argc - 1, argv + 1);
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(cmd, "snapshot")) {
		int help = 0;
		for (int i = 2; i < argc; i++)
			help |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
		if (help) {
			puts("usage: thaw snapshot inspect FILE [--verify]");
			return 0;
		}
		if (argc < 4 || strcmp(argv[2], "inspect") != 0 ||
		    (argc == 5 && strcmp(argv[4], "--verify") != 0) || argc > 5) {
			fputs("usage: thaw snapshot inspect FILE [--verify]\n", stderr);
			return 2;
		}
		return snap_inspect(argv[3], stdout, argc == 5) == 0 ? 0 : 1;
	}
	if (!strcmp(cmd, "--version")) {
#ifdef THAW_SANITIZE
		puts("thaw " THAW_VERSION " (sanitizer build: snapshots off)");
#else
		puts("thaw " THAW_VERSION);
#endif
		return 0;
	}
	int (*ext)(int, char **) = ext_command(cmd);
	if (ext)
		return ext(argc - 1, argv + 1);
	fprintf(stderr, "thaw: unknown command '%s'\n\n%s", cmd, usage);
	return 2;
}
