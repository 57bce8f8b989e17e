/*
 * heap.h - an intrusive binary min-heap on a 64-bit key: the one heap of
 * the runtime (the loop's timers, the worker pool's delayed jobs).
 *
 * The caller embeds a struct heap_node in its own struct and keeps it
 * alive while it is in the heap; the heap holds pointers only and keeps
 * each node's index current, so removal is O(log n) without a search.
 * Not thread-safe: the owner guards it.
 */
#ifndef POSTERN_HEAP_H
#define POSTERN_HEAP_H

#include <stddef.h>
#include <stdint.h>

struct heap_node {
	uint64_t key;
	size_t index;		/* SIZE_MAX when not in a heap */
};

struct heap {
	struct heap_node **v;
	size_t n, cap;
};

#define HEAP_NODE_INIT { 0, SIZE_MAX }

void heap_push(struct heap *h, struct heap_node *node);
/* node must be in h. */
void heap_remove(struct heap *h, struct heap_node *node);
/* The smallest key, or NULL when empty. */
struct heap_node *heap_top(const struct heap *h);
/* After keys changed in place, or after v[] was filtered to its first n
 * entries (each index set to its position): restores the order. */
void heap_rebuild(struct heap *h);
void heap_fini(struct heap *h);

#endif
