/*
 * Replays a fuzz target's corpus without libFuzzer: every regular file named
 * on the command line, or found directly inside a directory named there, is
 * read into an exactly sized buffer and passed to LLVMFuzzerTestOneInput.
 * ctest runs this over tests/fuzz/corpus/NAME so the seeds (and any crash
 * reproducer added to them) run in every test run, with or without clang.
 * An argument that cannot be read, or no input at all, is a failure: a corpus
 * that silently went missing must not look like a pass.
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Returns 0 and counts the input, or -1 after saying why. */
static int replay_file(const char *path, size_t *replayed)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t cap = 4096, len = 0;
	uint8_t *data = malloc(cap);
	if (!data)
		abort();
	size_t n;
	while ((n = fread(data + len, 1, cap - len, fp)) > 0) {
		len += n;
		if (len == cap) {
			cap *= 2;
			data = realloc(data, cap);
			if (!data)
				abort();
		}
	}
	int failed = ferror(fp);
	fclose(fp);
	if (failed) {
		fprintf(stderr, "replay: %s: read error\n", path);
		free(data);
		return -1;
	}
	/* Exactly sized, so that a sanitizer build sees any read past the end. */
	uint8_t *exact = malloc(len ? len : 1);
	if (!exact)
		abort();
	memcpy(exact, data, len);
	free(data);
	LLVMFuzzerTestOneInput(exact, len);
	free(exact);
	(*replayed)++;
	return 0;
}

static int skip_entry(const struct dirent *e)
{
	return e->d_name[0] != '.';
}

static int replay_dir(const char *dir, size_t *replayed)
{
	struct dirent **names;
	int n = scandir(dir, &names, skip_entry, alphasort);
	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	int rc = 0;
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode))
			rc = replay_file(path, replayed);
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	size_t replayed = 0;
	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 1;
		}
		int rc = S_ISDIR(st.st_mode) ? replay_dir(argv[i], &replayed)
					     : replay_file(argv[i], &replayed);
		if (rc != 0)
			return 1;
	}
	printf("%zu inputs replayed\n", replayed);
	if (replayed == 0) {
		fprintf(stderr, "replay: no inputs found\n");
		return 1;
	}
	return 0;
}
