/* Invariant checks for fuzz targets: a violation traps, so libFuzzer (and the
 * corpus replay) report it as a crash with the input. */
#ifndef THAW_FUZZ_CHECK_H
#define THAW_FUZZ_CHECK_H

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

#endif
