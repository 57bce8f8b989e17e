/*
 * heap.c - the intrusive binary min-heap (see heap.h).
 */
#include "heap.h"

#include <stdlib.h>

#include "buf.h"
#include "compat.h"

static void
heap_swap(struct heap *h, size_t a, size_t b)
{
	struct heap_node *t = h->v[a];

	h->v[a] = h->v[b];
	h->v[b] = t;
	h->v[a]->index = a;
	h->v[b]->index = b;
}

static void
heap_up(struct heap *h, size_t i)
{
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (h->v[p]->key <= h->v[i]->key)
			break;
		heap_swap(h, p, i);
		i = p;
	}
}

static void
heap_down(struct heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && h->v[l]->key < h->v[m]->key)
			m = l;
		if (r < h->n && h->v[r]->key < h->v[m]->key)
			m = r;
		if (m == i)
			break;
		heap_swap(h, i, m);
		i = m;
	}
}

void
heap_push(struct heap *h, struct heap_node *node)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 64;
		h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	h->v[h->n] = node;
	node->index = h->n++;
	heap_up(h, node->index);
}

void
heap_remove(struct heap *h, struct heap_node *node)
{
	size_t i = node->index;

	ASSERT(i < h->n && h->v[i] == node);
	h->n--;
	if (i != h->n) {
		h->v[i] = h->v[h->n];
		h->v[i]->index = i;
		heap_down(h, i);
		heap_up(h, i);
	}
	node->index = SIZE_MAX;
}

struct heap_node *
heap_top(const struct heap *h)
{
	return h->n > 0 ? h->v[0] : NULL;
}

void
heap_rebuild(struct heap *h)
{
	for (size_t i = h->n / 2 + 1; i-- > 0;)
		if (i < h->n)
			heap_down(h, i);
}

void
heap_fini(struct heap *h)
{
	free(h->v);
	h->v = NULL;
	h->n = h->cap = 0;
}
