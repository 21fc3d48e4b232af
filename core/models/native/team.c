/* A team of threads for the decoding step's row loops: team_run splits rows [0, rows) into chunks that the caller
 * and the team's workers claim one at a time.
 *
 * Why not OpenMP, which spike_kernel.c uses for prompts: a decoding step is some 150 short parallel loops, and libgomp
 * spins between them only while it manages no more threads than there are CPUs. torch shares the same libgomp, so
 * once torch's pool and the decoding thread's pool both exist (2 + 2 threads on 2 cores), every loop put its worker
 * to sleep and woke it through the kernel: `tantra chat` decoded at 76-85 tokens/s on two threads against 104 on one.
 * Here the workers spin (for SPIN_SECONDS after the last chunk) whatever else runs: 124-140 tokens/s in `tantra chat`
 * on two threads. Chunks are claimed, not assigned, so a worker that the system preempts (a reader thread printing a
 * token) delays the step by the chunk it holds at most: the caller takes the rest.
 *
 * POSIX threads and C11 atomics; on Windows the chunks are an OpenMP loop instead.
 */
#include "spike_kernel.h"

#ifdef _WIN32

void team_run(int threads, RowsWork work, void *job, int rows, int chunk) {
    int chunks = (rows + chunk - 1) / chunk;
#pragma omp parallel for num_threads(threads) schedule(dynamic) if (threads > 1)
    for (int c = 0; c < chunks; c++) work(job, c * chunk, c * chunk + chunk < rows ? c * chunk + chunk : rows);
}

#else

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#define MAX_WORKERS 63
#define SPIN_SECONDS 0.002 /* about a token's sampling and hand-over in Python, between two steps */

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef struct {
    _Alignas(64) RowsWork work; /* each slot on cache lines of its own, apart from `state` */
    void *job;
    int rows, chunk;
    atomic_int chunks; /* atomic: a worker late for an earlier job may read it while it is rewritten */
    _Alignas(64) atomic_int done; /* the caller polls it: not on the line the claims write */
} Job;

/* The high 32 bits of `state` number the job, the low 32 count its chunks claimed: one compare-and-swap claims a
 * chunk of exactly the job a worker read, and a worker late for an earlier job claims nothing. Jobs alternate
 * between two slots, so a late worker never reads one being written. */
static _Alignas(64) _Atomic uint64_t state;
static Job jobs[2];
static _Alignas(64) atomic_int sleepers;
static int workers;
static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;   /* one caller at a time; others run alone */
static pthread_mutex_t asleep = PTHREAD_MUTEX_INITIALIZER; /* with wake: where idle workers wait */
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void claim_chunks(uint32_t number) {
    Job *job = &jobs[number & 1];
    uint64_t word = atomic_load_explicit(&state, memory_order_acquire);
    while ((uint32_t)(word >> 32) == number) {
        uint32_t next = (uint32_t)word;
        if ((int)next >= atomic_load_explicit(&job->chunks, memory_order_relaxed)) return;
        if (!atomic_compare_exchange_weak_explicit(&state, &word, word + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;  /* word now holds the fresh state */
        int begin = (int)next * job->chunk, end = begin + job->chunk < job->rows ? begin + job->chunk : job->rows;
        job->work(job->job, begin, end);
        atomic_fetch_add_explicit(&job->done, 1, memory_order_release);
        word = atomic_load_explicit(&state, memory_order_acquire);
    }
}

static uint32_t next_job(uint32_t seen) {
    double until = now() + SPIN_SECONDS;
    for (int spins = 1;; spins++) {
        uint32_t number = (uint32_t)(atomic_load_explicit(&state, memory_order_acquire) >> 32);
        if (number != seen) return number;
        relax();
        if (spins % 1024 == 0 && now() > until) break;
    }
    pthread_mutex_lock(&asleep);
    atomic_fetch_add(&sleepers, 1); /* then look again: a job published before this is seen, a later one wakes us */
    uint32_t number;
    while ((number = (uint32_t)(atomic_load(&state) >> 32)) == seen) pthread_cond_wait(&wake, &asleep);
    atomic_fetch_sub(&sleepers, 1);
    pthread_mutex_unlock(&asleep);
    return number;
}

static void *worker(void *unused) {
    (void)unused;
    uint32_t seen = (uint32_t)(atomic_load(&state) >> 32);
    for (;;) claim_chunks(seen = next_job(seen));
    return NULL;
}

/* work(job, begin, end) for chunks of `chunk` rows covering [0, rows), on `threads` threads counting the caller's. */
void team_run(int threads, RowsWork work, void *job, int rows, int chunk) {
    if (threads > MAX_WORKERS + 1) threads = MAX_WORKERS + 1;
    if (threads <= 1 || rows <= chunk || pthread_mutex_trylock(&busy) != 0) {
        work(job, 0, rows);
        return;
    }
    while (workers < threads - 1) {
        pthread_t thread;
        if (pthread_create(&thread, NULL, worker, NULL) != 0) break;
        pthread_detach(thread);
        workers++;
    }
    uint32_t number = (uint32_t)(atomic_load(&state) >> 32) + 1;
    Job *slot = &jobs[number & 1];
    int chunks = (rows + chunk - 1) / chunk;
    slot->work = work, slot->job = job, slot->rows = rows, slot->chunk = chunk;
    atomic_store_explicit(&slot->done, 0, memory_order_relaxed);
    atomic_store_explicit(&slot->chunks, chunks, memory_order_relaxed);
    atomic_store(&state, (uint64_t)number << 32); /* publishes the slot */
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&asleep);
        pthread_cond_broadcast(&wake);
        pthread_mutex_unlock(&asleep);
    }
    claim_chunks(number);
    for (int spins = 1; atomic_load_explicit(&slot->done, memory_order_acquire) < chunks; spins++) {
        relax();
        if (spins % 4096 == 0) sched_yield(); /* a worker preempted mid-chunk may need this core */
    }
    pthread_mutex_unlock(&busy);
}

#endif
