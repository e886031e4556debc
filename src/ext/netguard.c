/*
 * Keeping instances off the host's control API (docs/security.md,
 * "Network"): one nftables rule for all of them, on the range of uids the
 * sandbox gives workers. A TCP connect from any of those uids to this
 * host's control port, on any local address, is answered with a reset:
 * the worker sees ECONNREFUSED, before a byte reaches the API.
 *
 * The rules live in a table of their own, `inet thaw_PID`, made at start
 * and deleted at stop; tables of hosts that died (their pid is gone) are
 * deleted at the next start. nft(8) is Debian's `nftables` package, run as
 * a child with the commands as arguments (no shell). Where it is missing
 * or refuses (no root, no nf_tables), the host says so once and goes on:
 * the token still guards the API.
 */
#include "ext/netguard.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

extern char **environ;

/* Run nft with one argument (commands separated by ';'): its exit status,
 * -1 if it could not start. stdout goes to out (NUL-ended) if given. */
static int nft(const char *cmds, char *out, size_t outlen)
{
	const char *paths[] = {"/usr/sbin/nft", "/sbin/nft", NULL};
	const char *exe = NULL;
	for (int i = 0; paths[i] && !exe; i++)
		if (access(paths[i], X_OK) == 0)
			exe = paths[i];
	if (!exe)
		return -1;
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_t at;
	posix_spawnattr_init(&at);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
	char *argv[] = {(char *)exe, (char *)cmds, NULL};
	pid_t pid;
	int rc = posix_spawn(&pid, exe, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(pfd[1]);
	size_t got = 0;
	char tmp[4096];
	for (;;) {
		ssize_t n = read(pfd[0], tmp, sizeof tmp);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (out && got + 1 < outlen) {
			size_t k = (size_t)n < outlen - 1 - got ? (size_t)n : outlen - 1 - got;
			memcpy(out + got, tmp, k);
			got += k;
		}
	}
	if (out && outlen)
		out[got] = 0;
	close(pfd[0]);
	if (rc != 0)
		return -1;
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Delete the tables of hosts that are gone. */
static void sweep_stale(void)
{
	static char out[65536];
	if (nft("list tables inet", out, sizeof out) != 0)
		return;
	for (char *p = strstr(out, "table inet thaw_"); p; p = strstr(p + 1, "table inet thaw_")) {
		long pid = strtol(p + strlen("table inet thaw_"), NULL, 10);
		if (pid <= 0 || pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		char cmd[96];
		snprintf(cmd, sizeof cmd, "delete table inet thaw_%ld", pid);
		nft(cmd, NULL, 0);
	}
}

int netguard_start(uint32_t uid_first, uint32_t uid_last, unsigned control_port, char *why,
		   size_t whylen)
{
	if (geteuid() != 0)
		return err_set(why, whylen, "the host is not root");
	sweep_stale();
	char cmd[512];
	snprintf(cmd, sizeof cmd,
		 "add table inet thaw_%d; "
		 "add chain inet thaw_%d out { type filter hook output priority 0; policy accept; }; "
		 "add rule inet thaw_%d out meta skuid %u-%u tcp dport %u fib daddr type local "
		 "reject with tcp reset",
		 (int)getpid(), (int)getpid(), (int)getpid(), uid_first, uid_last, control_port);
	char out[512];
	int rc = nft(cmd, out, sizeof out);
	if (rc == 0)
		return 0;
	if (rc < 0)
		return err_set(why, whylen, "nft(8) is not installed (Debian: nftables)");
	char *nl = strchr(out, '\n');
	if (nl)
		*nl = 0;
	return err_set(why, whylen, "nft refused: %s", out);
}

void netguard_stop(void)
{
	char cmd[64];
	snprintf(cmd, sizeof cmd, "delete table inet thaw_%d", (int)getpid());
	nft(cmd, NULL, 0);
}
