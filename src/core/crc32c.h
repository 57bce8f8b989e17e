/*
 * crc32c.h - CRC32C (Castagnoli, RFC 3720 B.4), the checksum of the spool
 * files' records and data. No mail knowledge.
 */
#ifndef POSTERN_CRC32C_H
#define POSTERN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Running CRC: start with crc = 0, feed pieces in order. Thread-safe. */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t n);
/* The same without the CPU's crc32 instruction (slicing-by-8): what
 * crc32c_update runs on a CPU without SSE4.2; the unit test compares. */
uint32_t crc32c_update_portable(uint32_t crc, const void *data, size_t n);

#endif
