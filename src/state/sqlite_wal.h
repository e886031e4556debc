/*
 * Switching an SQLite connection to WAL mode, for the stores of src/state/.
 *
 * `PRAGMA journal_mode = WAL` on a file another process has open (a new
 * namespace created by `thaw dev` and `thaw kv` at the same moment, two
 * instances' first calls) can fail with SQLITE_BUSY at once: changing the
 * journal mode takes an exclusive lock and SQLite does not always run the
 * busy handler for it. This retries for up to timeout_ms, then gives up.
 * Returns SQLITE_OK with WAL on, SQLITE_DONE when the file system refuses
 * WAL (another mode came back), or the last error code.
 */
#ifndef THAW_STATE_SQLITE_WAL_H
#define THAW_STATE_SQLITE_WAL_H

#include <sqlite3.h>
#include <string.h>
#include <time.h>

static inline int thaw_sqlite_wal(sqlite3 *db, int timeout_ms)
{
	int waited_ms = 0;
	for (int attempt = 0;; attempt++) {
		sqlite3_stmt *st = NULL;
		int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		int wal = rc == SQLITE_ROW && sqlite3_column_text(st, 0) &&
			  !strcmp((const char *)sqlite3_column_text(st, 0), "wal");
		sqlite3_finalize(st);
		if (rc == SQLITE_ROW)
			return wal ? SQLITE_OK : SQLITE_DONE;
		if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
			return rc;
		if (waited_ms >= timeout_ms)
			return rc;
		int ms = attempt < 10 ? 1 + attempt : 10;
		struct timespec ts = {0, (long)ms * 1000000L};
		nanosleep(&ts, NULL);
		waited_ms += ms;
	}
}

#endif
