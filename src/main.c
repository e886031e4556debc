/* thaw: one binary, subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "worker/worker.h"

static const char usage[] =
	"usage: thaw COMMAND [ARGS]\n"
	"\n"
	"thaw serves Python workers (Cloudflare Python Workers API) over HTTP.\n"
	"\n"
	"Commands:\n"
	"  init [DIR]     create a worker project (pyproject.toml, src/entry.py)\n"
	"  dev [DIR]      serve a project on this machine, reloading on change\n"
	"  help           this help\n"
	"\n"
	"`thaw COMMAND --help` tells more about each.\n"
	"Internal: `thaw worker` is the instance process the host starts.\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "worker"))
		return worker_main(argc - 1, argv + 1);
	if (!strcmp(cmd, "dev"))
		return cmd_dev(argc - 1, argv + 1);
	if (!strcmp(cmd, "init"))
		return cmd_init(argc - 1, argv + 1);
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version")) {
		puts("thaw 0.1.0");
		return 0;
	}
	fprintf(stderr, "thaw: unknown command '%s'\n\n%s", cmd, usage);
	return 2;
}
