/* Work buffers of the im2col kernels that outlive a call, one set per thread.
 *
 * Why: the packed engine's buffers (a window or packed panels per thread, the
 * packed weights, the 1x1 grad_weight's per-chunk sums) are a few hundred KiB,
 * above glibc's mmap threshold or returned to the system by its trimming, so a
 * fresh malloc per call is fresh pages, and on this project's VM the page
 * faults cost about 1 us per 4 KiB page: 5-10% of the strided 3x3 forward and
 * of the 1x1 grad_weight (~1.7 ms / ~0.8 ms on 2 threads). A buffer kept per
 * thread (the OpenMP workers persist) is touched once.
 *
 * Each thread keeps one buffer per slot, grown to the largest request up to
 * DLK_SCRATCH_MAX bytes (larger requests are plain malloc/free, so a huge
 * layer does not pin its memory), freed when the thread exits (a pthread key
 * destructor). Two slots: DLK_SCRATCH_THREAD for a thread's own work buffer
 * inside a parallel region, DLK_SCRATCH_SHARED for what the calling thread
 * allocates for all (it also takes a THREAD buffer as thread 0). Not
 * reentrant per slot: a kernel releases its slot before another one asks.
 * Contents are unspecified, as malloc's. Without POSIX threads: malloc/free.
 */
#ifndef DLK_CONV2D_SCRATCH_H
#define DLK_CONV2D_SCRATCH_H

#include <stdlib.h>

#define DLK_SCRATCH_MAX ((size_t)8 << 20)
enum { DLK_SCRATCH_THREAD, DLK_SCRATCH_SHARED, DLK_SCRATCH_SLOTS };

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>

typedef struct {
    void *buf[DLK_SCRATCH_SLOTS];
    size_t cap[DLK_SCRATCH_SLOTS];
} dlk_scratch_set;

static pthread_key_t dlk_scratch_key;
static pthread_once_t dlk_scratch_once = PTHREAD_ONCE_INIT;
static int dlk_scratch_key_ok;

static void dlk_scratch_destroy(void *p) {
    dlk_scratch_set *s = (dlk_scratch_set *)p;
    for (int i = 0; i < DLK_SCRATCH_SLOTS; i++) free(s->buf[i]);
    free(s);
}

static void dlk_scratch_make_key(void) {
    dlk_scratch_key_ok = pthread_key_create(&dlk_scratch_key, dlk_scratch_destroy) == 0;
}

static dlk_scratch_set *dlk_scratch_of_thread(int create) {
    pthread_once(&dlk_scratch_once, dlk_scratch_make_key);
    if (!dlk_scratch_key_ok) return NULL;
    dlk_scratch_set *s = (dlk_scratch_set *)pthread_getspecific(dlk_scratch_key);
    if (!s && create) {
        s = (dlk_scratch_set *)calloc(1, sizeof *s);
        if (s && pthread_setspecific(dlk_scratch_key, s) != 0) {
            free(s);
            s = NULL;
        }
    }
    return s;
}

/* A buffer of at least bytes for this thread's slot, or NULL when out of memory. */
static void *dlk_scratch_get(int slot, size_t bytes) {
    if (bytes > DLK_SCRATCH_MAX) return malloc(bytes);
    dlk_scratch_set *s = dlk_scratch_of_thread(1);
    if (!s) return malloc(bytes);
    if (s->cap[slot] < bytes) {
        free(s->buf[slot]);
        s->buf[slot] = malloc(bytes ? bytes : 1);
        s->cap[slot] = s->buf[slot] ? bytes : 0;
    }
    return s->buf[slot];
}

/* Done with p from dlk_scratch_get(slot, ...) on this thread: kept if it is the
 * slot's buffer, else freed. */
static void dlk_scratch_put(int slot, void *p) {
    dlk_scratch_set *s = dlk_scratch_of_thread(0);
    if (!s || p != s->buf[slot]) free(p);
}

#else

static void *dlk_scratch_get(int slot, size_t bytes) {
    (void)slot;
    return malloc(bytes ? bytes : 1);
}

static void dlk_scratch_put(int slot, void *p) {
    (void)slot;
    free(p);
}

#endif
#endif
