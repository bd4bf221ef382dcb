// LD_PRELOAD shim for bench/gateway/frames.sh: counts aligned_alloc calls by size (Asio
// allocates coroutine frames and operation state with it) and writes the counts to the file
// named by FRAME_SIZES_OUT when the process exits.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

enum { kLargest = 1 << 16 };
static unsigned long counts[kLargest];

void* aligned_alloc(size_t alignment, size_t size) {
    static void* (*next)(size_t, size_t);
    if (next == NULL) next = (void* (*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    if (size < kLargest) __atomic_fetch_add(&counts[size], 1, __ATOMIC_RELAXED);
    return next(alignment, size);
}

__attribute__((destructor)) static void write_counts(void) {
    const char* path = getenv("FRAME_SIZES_OUT");
    FILE* out = path ? fopen(path, "w") : NULL;
    if (out == NULL) return;
    for (int size = 0; size < kLargest; ++size) {
        if (counts[size] > 0) fprintf(out, "%d %lu\n", size, counts[size]);
    }
    fclose(out);
}
