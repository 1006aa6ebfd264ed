// The part of <stdlib.h> this project uses. There is no libc here (see
// README.md, "Why no libc"): libc.c implements these.
#ifndef PANEL1_STDLIB_H
#define PANEL1_STDLIB_H
#include <stddef.h>

void *malloc(size_t size);
void *calloc(size_t count, size_t size);
void *realloc(void *ptr, size_t size);
void free(void *ptr);
_Noreturn void abort(void);

#endif
