/* A small pool of blocking worker threads that share a job by taking chunks from one
 * counter (work stealing, not a static split), for fastnn's large matrix products.
 *
 * Why not BLAS's own threads: on a busy machine (another process on the other core) a
 * statically split OpenBLAS call waits for a thread the scheduler has descheduled, on
 * every call; measured on this 2-core machine, a step with 2 OpenBLAS threads beside a busy
 * process ran 10-100x slower than with 1. Here the caller takes chunks too, so a worker that
 * has not woken up takes none and the caller finishes the job alone: the cost is at most the
 * chunk a worker holds when it is descheduled, never the whole half of the job.
 *
 * The claim counter holds (generation << 32 | next chunk); a worker that wakes late, after
 * its job has finished, sees a newer generation and takes nothing. One caller at a time
 * (others run their chunks serially); rebuilt after fork() (the child has no workers).
 */
#ifndef FASTNN_WORKPOOL_H
#define FASTNN_WORKPOOL_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "fpmode.h"

#define FASTNN_POOL_MAX 64

typedef void (*fastnn_chunk_fn)(void *args, int chunk);

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic unsigned long long claim;
    _Atomic int done;
    _Atomic int busy;
    unsigned int gen;            /* written under mu */
    int nchunks;
    fastnn_chunk_fn fn;
    void *args;
    int linger;                  /* written under mu: workers watch for a next job */
    unsigned int fp_mode;        /* written under mu: the caller's MXCSR, for the workers */
    int nworkers;
    pid_t pid;
} fastnn_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static void fastnn_pool_work(unsigned int gen, fastnn_chunk_fn fn, void *args, int nchunks)
{
    for (;;) {
        unsigned long long c = atomic_load(&fastnn_pool.claim);
        for (;;) {
            if ((unsigned int)(c >> 32) != gen || (int)(c & 0xffffffffu) >= nchunks)
                return;
            if (atomic_compare_exchange_weak(&fastnn_pool.claim, &c, c + 1))
                break;
        }
        fn(args, (int)(c & 0xffffffffu));
        atomic_fetch_add(&fastnn_pool.done, 1);
    }
}

/* After a job posted with linger (batch-1 predict, whose products follow each other
 * within microseconds and take about as long as waking a sleeping thread), a worker
 * watches for the next job for up to FASTNN_LINGER seconds before sleeping. It only
 * reads, pausing between reads; training jobs never linger. */
#define FASTNN_LINGER 100e-6
static double fastnn_pool_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fastnn_pool_linger(unsigned int seen)
{
    double end = fastnn_pool_clock() + FASTNN_LINGER;
    int i;
    for (;;) {
        for (i = 0; i < 64; i++) {
            if ((unsigned int)(atomic_load_explicit(&fastnn_pool.claim,
                                                    memory_order_relaxed) >> 32) != seen)
                return;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        if (fastnn_pool_clock() > end)
            return;
    }
}

static void *fastnn_pool_loop(void *unused)
{
    unsigned int seen;
    (void)unused;
    pthread_mutex_lock(&fastnn_pool.mu);
    seen = fastnn_pool.gen;
    for (;;) {
        fastnn_chunk_fn fn;
        void *args;
        int nchunks, linger;
        unsigned int fp_mode, own_mode;
        while (fastnn_pool.gen == seen)
            pthread_cond_wait(&fastnn_pool.cv, &fastnn_pool.mu);
        seen = fastnn_pool.gen;
        fn = fastnn_pool.fn;
        args = fastnn_pool.args;
        nchunks = fastnn_pool.nchunks;
        linger = fastnn_pool.linger;
        fp_mode = fastnn_pool.fp_mode;
        pthread_mutex_unlock(&fastnn_pool.mu);
        /* the caller's flush-to-zero setting, so a chunk rounds the same on any thread */
        own_mode = fastnn_fp_mode();
        fastnn_ftz_restore(fp_mode);
        fastnn_pool_work(seen, fn, args, nchunks);
        fastnn_ftz_restore(own_mode);
        if (linger)
            fastnn_pool_linger(seen);
        pthread_mutex_lock(&fastnn_pool.mu);
    }
    return NULL;
}

/* Start workers up to `wanted` (called with mu held); returns how many run. */
static int fastnn_pool_grow(int wanted)
{
    pid_t pid = getpid();
    if (fastnn_pool.pid != pid) {          /* a forked child inherits no threads */
        fastnn_pool.pid = pid;
        fastnn_pool.nworkers = 0;
    }
    if (wanted > FASTNN_POOL_MAX)
        wanted = FASTNN_POOL_MAX;
    while (fastnn_pool.nworkers < wanted) {
        pthread_t t;
        pthread_attr_t attr;
        int failed;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        failed = pthread_create(&t, &attr, fastnn_pool_loop, NULL);
        pthread_attr_destroy(&attr);
        if (failed)
            break;
        fastnn_pool.nworkers++;
    }
    return fastnn_pool.nworkers;
}

/* Run fn(args, 0..nchunks-1) on up to `threads` threads (the caller is one of them).
 * The chunks must be independent. Returns when all are done. */
static void fastnn_pool_run_job(fastnn_chunk_fn fn, void *args, int nchunks, int threads,
                                int linger)
{
    int expected = 0, i;
    unsigned int gen;
    if (threads > 1 && nchunks > 1 && fastnn_pool.pid != getpid()) {
        /* after fork the mutex may be in any state: make a fresh one */
        pthread_mutex_t fresh_mu = PTHREAD_MUTEX_INITIALIZER;
        pthread_cond_t fresh_cv = PTHREAD_COND_INITIALIZER;
        fastnn_pool.mu = fresh_mu;
        fastnn_pool.cv = fresh_cv;
        atomic_store(&fastnn_pool.busy, 0);
    }
    if (threads <= 1 || nchunks <= 1
            || !atomic_compare_exchange_strong(&fastnn_pool.busy, &expected, 1)) {
        for (i = 0; i < nchunks; i++)
            fn(args, i);
        return;
    }
    pthread_mutex_lock(&fastnn_pool.mu);
    if (fastnn_pool_grow(threads - 1) == 0) {
        pthread_mutex_unlock(&fastnn_pool.mu);
        atomic_store(&fastnn_pool.busy, 0);
        for (i = 0; i < nchunks; i++)
            fn(args, i);
        return;
    }
    gen = ++fastnn_pool.gen;
    fastnn_pool.fn = fn;
    fastnn_pool.args = args;
    fastnn_pool.nchunks = nchunks;
    fastnn_pool.linger = linger;
    fastnn_pool.fp_mode = fastnn_fp_mode();
    atomic_store(&fastnn_pool.done, 0);
    atomic_store(&fastnn_pool.claim, (unsigned long long)gen << 32);
    pthread_cond_broadcast(&fastnn_pool.cv);
    pthread_mutex_unlock(&fastnn_pool.mu);
    fastnn_pool_work(gen, fn, args, nchunks);
    /* only chunks a worker is computing right now remain */
    while (atomic_load(&fastnn_pool.done) < nchunks)
        sched_yield();
    atomic_store(&fastnn_pool.busy, 0);
}

static void fastnn_pool_run(fastnn_chunk_fn fn, void *args, int nchunks, int threads)
{
    fastnn_pool_run_job(fn, args, nchunks, threads, 0);
}

/* fastnn_pool_run for a job whose workers then watch for the next one (see linger). */
static void fastnn_pool_run_lingering(fastnn_chunk_fn fn, void *args, int nchunks,
                                      int threads)
{
    fastnn_pool_run_job(fn, args, nchunks, threads, 1);
}

#endif
