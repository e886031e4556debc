/*
 * Internal commands around bundles (src/ext/bundle.h), not in `thaw help`:
 *
 *   thaw unpack-bundle FILE DESTDIR [--max-files N] [--max-total BYTES]
 *                                   [--max-compressed BYTES]
 *     What the host runs in a child process to unpack an uploaded bundle, so
 *     that a bug in the archive code cannot take the host down. DESTDIR must
 *     not exist; it is created (0755) and filled, or removed again on
 *     failure. Exactly one JSON line goes to stdout:
 *       {"ok":true,"files":N,"dirs":N,"bytes":N}   exit 0
 *       {"ok":false,"error":"..."}                 exit 1
 *     with "no_space":true added when DESTDIR's file system was full
 *     (ENOSPC, EDQUOT): the host's disk, not the bundle, is at fault.
 *     With --read-project, the unpacked project's configuration is read too
 *     (by the config reader, project.h) and the ok answer gains
 *     "project":{...} or, when it cannot be read, "project_error":"...", so
 *     the host never parses a project itself.
 *     With --sync-sha256 HEX, FILE is first hashed and fsynced, and refused
 *     unless its SHA-256 is HEX: the host's upload, made durable here so the
 *     host's loop never waits for it (it then moves FILE into blobs/).
 *
 *   thaw pack DIR OUT
 *     Pack a project the way `thaw deploy` does (for tests and debugging).
 */
#include "ext/ext.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ext/bundle.h"
#include "ext/store.h"
#include "common/util.h"
#include "project/project.h"

static const char unpack_usage[] =
	"usage: thaw unpack-bundle FILE DESTDIR [--max-files N] [--max-total BYTES] "
	"[--max-compressed BYTES] [--read-project] [--env NAME] [--sync-sha256 HEX]";

static const char *project_env; /* --env: the configuration's environment */

static int print_result(int ok, const struct bundle_stats *st, const char *error,
			const char *project_dir)
{
	json_t *j = ok ? json_pack("{sbsIsIsI}", "ok", 1, "files", (json_int_t)st->files, "dirs",
				   (json_int_t)st->dirs, "bytes", (json_int_t)st->bytes)
		       : json_pack("{sbss}", "ok", 0, "error", error);
	if (!ok && st && st->no_space)
		json_object_set_new(j, "no_space", json_true());
	if (ok && project_dir) {
		char err[2048];
		struct project *p = project_load_env(project_dir, project_env, err, sizeof err);
		if (p)
			json_object_set_new(j, "project", project_to_json(p));
		else
			json_object_set_new(j, "project_error", json_string(err));
		project_free(p);
	}
	return print_answer(j);
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (flag == FTW_DP || flag == FTW_D)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int cmd_unpack_bundle(int argc, char **argv)
{
	/* argv[0] is "unpack-bundle". */
	struct bundle_limits l;
	bundle_limits_default(&l);
	const char *file = NULL, *dest = NULL;
	int read_project = 0;
	const char *sync_hex = NULL;
	char msg[512];
	for (int i = 1; i < argc; i++) {
		uint64_t *target = NULL;
		if (!strcmp(argv[i], "--max-files"))
			target = &l.max_files;
		else if (!strcmp(argv[i], "--max-total"))
			target = &l.max_total;
		else if (!strcmp(argv[i], "--max-compressed"))
			target = &l.max_compressed;
		if (!strcmp(argv[i], "--read-project")) {
			read_project = 1;
			continue;
		}
		if (!strcmp(argv[i], "--env") && i + 1 < argc) {
			project_env = argv[++i];
			continue;
		}
		if (!strcmp(argv[i], "--sync-sha256") && i + 1 < argc) {
			sync_hex = argv[++i];
			continue;
		}
		if (target) {
			if (i + 1 >= argc || parse_u64(argv[i + 1], UINT64_MAX, target) != 0) {
				snprintf(msg, sizeof(msg), "%s needs a non-negative integer", argv[i]);
				return print_result(0, NULL, msg, NULL);
			}
			i++;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			snprintf(msg, sizeof(msg), "unknown option %s; %s", argv[i], unpack_usage);
			return print_result(0, NULL, msg, NULL);
		} else if (!file) {
			file = argv[i];
		} else if (!dest) {
			dest = argv[i];
		} else {
			return print_result(0, NULL, unpack_usage, NULL);
		}
	}
	if (!file || !dest)
		return print_result(0, NULL, unpack_usage, NULL);
	/* A smaller unpacked total also bounds each file. */
	if (l.max_file > l.max_total)
		l.max_file = l.max_total;

	if (sync_hex) {
		char hex[STORE_SHA_HEX + 1];
		uint64_t bytes;
		if (blob_hash_file(file, hex, &bytes, msg, sizeof msg) < 0)
			return print_result(0, NULL, msg, NULL);
		if (strcmp(hex, sync_hex) != 0) {
			snprintf(msg, sizeof msg, "%s: its SHA-256 is not %.64s", file, sync_hex);
			return print_result(0, NULL, msg, NULL);
		}
	}
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(msg, sizeof(msg), "%s: %s", file, strerror(errno));
		return print_result(0, NULL, msg, NULL);
	}
	if (mkdir(dest, 0755) != 0) {
		snprintf(msg, sizeof(msg), "%s: %s", dest,
			 errno == EEXIST ? "already exists (the destination must not exist)"
					 : strerror(errno));
		close(fd);
		return print_result(0, NULL, msg, NULL);
	}
	int dirfd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct bundle_stats st = {0};
	int rc;
	if (dirfd < 0) {
		snprintf(msg, sizeof(msg), "%s: %s", dest, strerror(errno));
		rc = -1;
	} else {
		rc = bundle_read(fd, dirfd, &l, &st, msg, sizeof(msg));
		close(dirfd);
	}
	close(fd);
	if (rc != 0) {
		nftw(dest, remove_one, 16, FTW_DEPTH | FTW_PHYS);
		return print_result(0, &st, msg, NULL);
	}
	return print_result(1, &st, NULL, read_project ? dest : NULL);
}

int cmd_pack(int argc, char **argv)
{
	if (argc != 3) {
		fputs("usage: thaw pack DIR OUT\n", stderr);
		return 2;
	}
	int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "thaw pack: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	struct bundle_stats st;
	char err[512];
	int rc = bundle_pack(argv[1], fd, &st, NULL, NULL, err, sizeof(err));
	if (close(fd) != 0 && rc == 0) {
		snprintf(err, sizeof(err), "%s: %s", argv[2], strerror(errno));
		rc = -1;
	}
	if (rc != 0) {
		unlink(argv[2]);
		fprintf(stderr, "thaw pack: %s\n", err);
		return 1;
	}
	printf("packed %llu files, %llu directories, %llu bytes into %s\n",
	       (unsigned long long)st.files, (unsigned long long)st.dirs,
	       (unsigned long long)st.bytes, argv[2]);
	return 0;
}
