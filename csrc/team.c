/* A light team of helper threads for short jobs (see team.h).
 *
 * Why not an OpenMP region: the region ends in a barrier that waits for every thread
 * of the team to arrive, also one the OS has not yet run. Where a job takes a few
 * microseconds (a layer of a one-sample forward), a parked thread makes the job last
 * a scheduler time slice. Here the blocks are claimed through one atomic word
 * (epoch, helpers allowed, blocks, next block), so a helper can only take a block of
 * the current job, and the caller waits only for the blocks a helper took.
 *
 * The job's function and context are written before the epoch is published and read
 * by a helper only after it has claimed a block of that epoch: the caller does not
 * change them until every block of the epoch is done. */
#include "team.h"

#if defined(_OPENMP) && !defined(_WIN32)
#define FNN_TEAM_THREADS 1
#endif

#ifndef FNN_TEAM_THREADS

void fnn_team_run(ptrdiff_t nblocks, int nthreads, fnn_team_fn fn, void *ctx)
{
    (void)nthreads;
    for (ptrdiff_t b = 0; b < nblocks; b++) fn(b, 0, ctx);
}

#else

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FNN_PAUSE() _mm_pause()
#else
#define FNN_PAUSE() ((void)0)
#endif

/* Helpers at most, and how long an idle helper spins before it sleeps (the gap between
 * the calls of a serving loop is usually shorter). */
#define FNN_TEAM_MAX_HELPERS 63
#define FNN_TEAM_SPIN_NS 50000

/* The job word: epoch (32 bits) | helpers allowed (8) | blocks (12) | next block (12). */
#define FNN_W_NEXT(w) ((ptrdiff_t)((w)&0xfff))
#define FNN_W_BLOCKS(w) ((ptrdiff_t)(((w) >> 12) & 0xfff))
#define FNN_W_ALLOWED(w) ((int)(((w) >> 24) & 0xff))

static struct {
    _Atomic uint64_t job;
    _Atomic ptrdiff_t done; /* blocks of the current epoch finished */
    _Atomic int sleepers;
    atomic_flag busy; /* a caller is running a job */
    fnn_team_fn fn;
    void *ctx;
    uint32_t epoch;
    int helpers; /* helper threads started */
    pthread_mutex_t mu;
    pthread_cond_t cv;
} team = {.busy = ATOMIC_FLAG_INIT,
          .mu = PTHREAD_MUTEX_INITIALIZER,
          .cv = PTHREAD_COND_INITIALIZER};

static double fnn_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Claim and run blocks of the job in word w while there are any, adding how many to
 *ran; returns the job word that ended it (the job exhausted, or not for this id). A
 * helper (id >= 1) takes none unless the job allows id helpers. */
static uint64_t fnn_team_work(uint64_t w, int id, ptrdiff_t *ran)
{
    while (FNN_W_NEXT(w) < FNN_W_BLOCKS(w) && id <= FNN_W_ALLOWED(w)) {
        if (atomic_compare_exchange_weak_explicit(&team.job, &w, w + 1, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            team.fn(FNN_W_NEXT(w), id, team.ctx);
            ++*ran;
            w = atomic_load_explicit(&team.job, memory_order_acquire);
        }
    }
    return w;
}

static void *fnn_helper_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t seen = atomic_load(&team.job);
    for (;;) {
        uint64_t w = atomic_load_explicit(&team.job, memory_order_acquire);
        if (w != seen) { /* a new job (the caller publishes the next one only after
                            every block of this one is done and counted) */
            ptrdiff_t ran = 0;
            seen = fnn_team_work(w, id, &ran);
            if (ran) atomic_fetch_add_explicit(&team.done, ran, memory_order_release);
            continue;
        }
        /* Idle: spin for a while, then sleep until the job word changes. */
        double until = fnn_now_ns() + FNN_TEAM_SPIN_NS;
        int k = 0;
        while (atomic_load_explicit(&team.job, memory_order_relaxed) == seen) {
            FNN_PAUSE();
            if (++k % 256 == 0 && fnn_now_ns() > until) {
                pthread_mutex_lock(&team.mu);
                atomic_fetch_add(&team.sleepers, 1);
                while (atomic_load(&team.job) == seen) pthread_cond_wait(&team.cv, &team.mu);
                atomic_fetch_sub(&team.sleepers, 1);
                pthread_mutex_unlock(&team.mu);
                break;
            }
        }
    }
    return NULL;
}

/* After fork() the child has none of the helpers: it starts its own when it needs
 * them. */
static void fnn_team_after_fork(void)
{
    team.helpers = 0;
    atomic_store(&team.sleepers, 0);
    atomic_flag_clear(&team.busy);
    pthread_mutex_init(&team.mu, NULL);
    pthread_cond_init(&team.cv, NULL);
}

/* Start helpers until there are `want` (fewer if the system refuses threads). */
static void fnn_team_grow(int want)
{
    static int atfork;
    if (!atfork) atfork = !pthread_atfork(NULL, NULL, fnn_team_after_fork);
    pthread_attr_t attr;
    if (pthread_attr_init(&attr)) return;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (team.helpers < want) {
        pthread_t t;
        if (pthread_create(&t, &attr, fnn_helper_main, (void *)(intptr_t)(team.helpers + 1)))
            break;
        team.helpers++;
    }
    pthread_attr_destroy(&attr);
}

void fnn_team_run(ptrdiff_t nblocks, int nthreads, fnn_team_fn fn, void *ctx)
{
    if (nthreads <= 1 || nblocks <= 1 || nblocks > FNN_TEAM_MAX_BLOCKS ||
        atomic_flag_test_and_set_explicit(&team.busy, memory_order_acquire)) {
        for (ptrdiff_t b = 0; b < nblocks; b++) fn(b, 0, ctx);
        return;
    }
    int helpers = nthreads - 1 < FNN_TEAM_MAX_HELPERS ? nthreads - 1 : FNN_TEAM_MAX_HELPERS;
    if (team.helpers < helpers) fnn_team_grow(helpers);
    team.fn = fn;
    team.ctx = ctx;
    atomic_store_explicit(&team.done, 0, memory_order_relaxed);
    uint64_t w = (uint64_t)++team.epoch << 32 | (uint64_t)helpers << 24 |
                 (uint64_t)nblocks << 12;
    atomic_store(&team.job, w); /* seq_cst: ordered against the read of sleepers */
    if (atomic_load(&team.sleepers)) {
        pthread_mutex_lock(&team.mu);
        pthread_cond_broadcast(&team.cv);
        pthread_mutex_unlock(&team.mu);
    }
    ptrdiff_t ran = 0;
    fnn_team_work(w, 0, &ran);
    ptrdiff_t waiting = nblocks - ran;
    for (int k = 1; atomic_load_explicit(&team.done, memory_order_acquire) < waiting; k++) {
        FNN_PAUSE();
        if (k % 4096 == 0) sched_yield(); /* a helper holding a block was preempted */
    }
    atomic_flag_clear_explicit(&team.busy, memory_order_release);
}

#endif
