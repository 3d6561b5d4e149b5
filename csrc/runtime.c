/* Process-wide kernel settings. */
#include "fastnn.h"

#ifdef _OPENMP
#include <omp.h>
#endif

int fnn_num_threads = 1;

void fnn_set_num_threads(int n) { fnn_num_threads = n < 1 ? 1 : n; }

int fnn_get_num_threads(void) { return fnn_num_threads; }
