/* Process-wide kernel settings. */
#include "fastnn.h"

#ifdef _OPENMP
#include <omp.h>
#endif

int fnn_num_threads = 1;
int fnn_gemm_blocks = 1;
static int max_threads = 1;

void fnn_set_num_threads(int n) { max_threads = fnn_num_threads = n < 1 ? 1 : n; }

int fnn_get_num_threads(void) { return max_threads; }

void fnn_use_threads(int n) { fnn_num_threads = n < 1 ? 1 : n > max_threads ? max_threads : n; }

void fnn_start_team(void)
{
    int n = max_threads;
#pragma omp parallel num_threads(n)
    {
        (void)n;
    }
}

void fnn_set_gemm_blocks(int n)
{
    int p = 1;
    while (p < n && p < 64) p *= 2;
    fnn_gemm_blocks = p;
}

/* The BLAS library's own thread-count functions (OpenBLAS's openblas_get/set_num_threads),
 * when known. fastnn splits GEMMs between its own threads and needs BLAS on one thread;
 * code outside fastnn (threadpoolctl, a user's limits) may have changed that. */
static int (*blas_get_threads)(void);
static void (*blas_set_threads)(int);

void fnn_set_blas_thread_hooks(void *get, void *set)
{
    blas_get_threads = (int (*)(void))get;
    blas_set_threads = (void (*)(int))set;
}

void fnn_blas_single_thread(void)
{
    if (blas_get_threads && blas_set_threads && blas_get_threads() != 1) blas_set_threads(1);
}
