/* A light team of helper threads for short jobs (team.c). Internal to csrc/. */
#ifndef FASTNN_TEAM_H
#define FASTNN_TEAM_H

#include <stddef.h>

/* Blocks of one job at most. */
#define FNN_TEAM_MAX_BLOCKS 4095

/* block: the block to run; slot: which of the job's threads runs it (0 the caller,
 * 1..nthreads - 1 the helpers), for per-thread scratch. */
typedef void (*fnn_team_fn)(ptrdiff_t block, int slot, void *ctx);

/* fn(b, slot, ctx) for every b in [0, nblocks) (nblocks <= FNN_TEAM_MAX_BLOCKS), on the calling
 * thread and up to nthreads - 1 helper threads; returns when every block is done.
 *
 * The blocks are claimed one at a time, the caller taking its share like any helper:
 * the caller never waits for a helper that has not started (a helper the OS has parked
 * just claims nothing, and the caller does its blocks), only for blocks a helper has
 * claimed and not yet finished. Idle helpers spin for a short while (back-to-back
 * jobs, such as the layers of one call, find them awake) and then sleep until the
 * next job. One job runs at a time: a job started while another runs (another Python
 * thread), with nthreads 1, or where no helper can be created, runs on the calling
 * thread alone. Which thread runs a block never changes what the block computes. */
void fnn_team_run(ptrdiff_t nblocks, int nthreads, fnn_team_fn fn, void *ctx);

#endif
