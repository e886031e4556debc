/*
 * `thaw adopt-snapshot IMAGE DATADIR` (internal): what thaw serve runs in a
 * child when a builder has written an image, so that nothing proportional to
 * an image (up to --max-snapshot-mb) runs on the host's loop:
 *   - the image's structure and every data page are checked
 *     (snap_verify_data), once, as the store takes it in;
 *   - it is hashed (SHA-256) and fsynced (blob_hash_file), and left where it
 *     is.
 * Exactly one JSON line goes to stdout:
 *   {"ok":true,"sha256":HEX,"bytes":N,"own_pages":N,"base_pages":N,"base":PATH|null}
 *                                        exit 0
 * (own_pages: the pages the image holds; base_pages: those it maps from its
 * base, whose path base is: what the host reports as its disk figures).
 *   {"ok":false,"error":"..."}           exit 1
 * The host then renames it into blobs/ and records it (blob_install_file, a
 * short transaction): a child killed halfway leaves only DATADIR/tmp debris,
 * which the next start empties, never a blob that no row names.
 */
#include "ext/ext.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "ext/store.h"
#include "snap/snap.h"

int cmd_adopt_snapshot(int argc, char **argv)
{
	if (argc != 3) {
		fputs("usage: thaw adopt-snapshot IMAGE DATADIR (internal)\n", stderr);
		return 2;
	}
	const char *image = argv[1], *dir = argv[2];
	char err[1024];
	struct snap_image img;
	int fd;
	if (snap_open(image, &fd, &img, err, sizeof err) < 0)
		return print_answer(json_pack("{s:b, s:s}", "ok", 0, "error", err));
	int bad = snap_verify_data(fd, &img, err, sizeof err);
	close(fd);
	uint64_t own = 0, from_base = snap_base_pages(&img);
	for (uint32_t i = 0; i < img.h.nruns; i++)
		own += img.runs[i].npages;
	json_t *base = img.h.base_dep == SNAP_NO_BASE
			       ? json_null()
			       : json_string(snap_dep_path(&img, img.h.base_dep));
	snap_image_free(&img);
	if (bad < 0) {
		json_decref(base);
		return print_answer(json_pack("{s:b, s:s}", "ok", 0, "error", err));
	}
	(void)dir; /* the host's; named so the process list says which store */
	char hex[STORE_SHA_HEX + 1];
	uint64_t bytes = 0;
	if (blob_hash_file(image, hex, &bytes, err, sizeof err) < 0) {
		json_decref(base);
		return print_answer(json_pack("{s:b, s:s}", "ok", 0, "error", err));
	}
	return print_answer(json_pack("{s:b, s:s, s:I, s:I, s:I, s:o}", "ok", 1, "sha256", hex,
				      "bytes", (json_int_t)bytes, "own_pages", (json_int_t)own,
				      "base_pages", (json_int_t)from_base, "base", base));
}
