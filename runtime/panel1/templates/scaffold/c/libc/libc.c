// The few libc functions the bindings and helpers need, for a module built
// without a libc (wasm32-unknown-unknown): an allocator over the wasm
// memory and the mem*/strlen functions. Compiled with -ffreestanding so
// the compiler does not turn these loops back into calls to themselves.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// The allocator: first fit over a free list, each block after a 16-byte
// header holding its size. Memory never returns to the host (a wasm memory
// cannot shrink); a component instance lives for one call, so this stays
// small. Every block is 16-byte aligned, enough for any WIT type.
#define HEADER 16u
#define PAGE 65536u

typedef struct block {
    size_t size;         // usable bytes after the header
    struct block *next;  // next free block (while free)
} block;

extern unsigned char __heap_base;
static uintptr_t heap_top;
static block *free_list;

static size_t round16(size_t n) { return (n + 15u) & ~(size_t)15u; }

static void *grow(size_t size) {
    if (heap_top == 0) heap_top = round16((uintptr_t)&__heap_base);
    uintptr_t start = heap_top;
    uintptr_t end = start + HEADER + size;
    if (end < start) return NULL;
    uintptr_t have = __builtin_wasm_memory_size(0) * PAGE;
    if (end > have) {
        size_t pages = (end - have + PAGE - 1) / PAGE;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return NULL;
    }
    heap_top = end;
    block *b = (block *)start;
    b->size = size;
    return (unsigned char *)b + HEADER;
}

void *malloc(size_t size) {
    if (size == 0) size = 1;
    if (size > SIZE_MAX - 2 * HEADER) return NULL;
    size = round16(size);
    for (block **at = &free_list; *at; at = &(*at)->next) {
        block *b = *at;
        // A block at most twice the size wanted: little waste, no splitting.
        if (b->size >= size && b->size / 2 <= size) {
            *at = b->next;
            return (unsigned char *)b + HEADER;
        }
    }
    return grow(size);
}

void free(void *ptr) {
    if (!ptr) return;
    block *b = (block *)((unsigned char *)ptr - HEADER);
    b->next = free_list;
    free_list = b;
}

void *calloc(size_t count, size_t size) {
    if (size && count > SIZE_MAX / size) return NULL;
    void *p = malloc(count * size);
    if (p) memset(p, 0, count * size);
    return p;
}

void *realloc(void *ptr, size_t size) {
    if (!ptr) return malloc(size);
    block *b = (block *)((unsigned char *)ptr - HEADER);
    if (size <= b->size) return ptr;
    void *q = malloc(size);
    if (!q) return NULL;
    memcpy(q, ptr, b->size);
    free(ptr);
    return q;
}

_Noreturn void abort(void) { __builtin_trap(); }

void *memcpy(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        while (n--) d[n] = s[n];
    }
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    while (n--) *d++ = (unsigned char)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y) return *x < *y ? -1 : 1;
    return 0;
}

size_t strlen(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}
