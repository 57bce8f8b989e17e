/*
 * fuzz.h - what every libFuzzer target here shares: the entry point's
 * declaration and check(), which stops the run (abort: libFuzzer keeps
 * the input) when a property the target asserts does not hold.
 */
#ifndef POSTERN_FUZZ_H
#define POSTERN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void
check(int cond)
{
	if (!cond)
		abort();
}

#endif
