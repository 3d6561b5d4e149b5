/* Generic body of dropout.c; see instantiate.h for T and S(). */

/* Elements [lo, lo + n) of the mask, with x, y and mask already offset by lo (their
 * generator indices start at `base`, the call's element offset plus lo);
 * y = x * mask * scale (scale = 1 / (1 - p) for inverted dropout, 1 for the
 * weight-scaling rule). x * 0 rather than 0: NaN propagates as in torch. */
static FNN_CLONES void S(dropout_chunk)(ptrdiff_t lo, ptrdiff_t n, const T *x, T *y,
                                        uint8_t *mask, uint32_t thresh, T scale,
                                        uint64_t key, uint32_t base)
{
#pragma omp simd
    for (ptrdiff_t i = 0; i < n; i++) {
        uint32_t bits = fnn_keyed_bits(key, base + (uint32_t)i);
        int keep = bits >= thresh;
        mask[i] = (uint8_t)keep;
        y[i] = x[i] * (keep ? scale : (T)0);
    }
}

static FNN_CLONES void S(dropout_grad_chunk)(ptrdiff_t n, const T *gy, const uint8_t *mask,
                                             T scale, T *gx)
{
#pragma omp simd
    for (ptrdiff_t k = 0; k < n; k++) gx[k] = gy[k] * ((T)mask[k] * scale);
}

/* offset + n <= 2^32 (checked in Python): element i draws generator index offset + i,
 * so a shard of a larger batch (data-parallel training) draws the elements of its rows
 * that one process would. */
void S(fnn_dropout_forward)(ptrdiff_t n, const T *x, T *y, uint8_t *mask, double p,
                            double scale_, uint64_t seed, uint64_t counter, uint64_t offset)
{
    uint64_t key = fnn_dropout_key(seed, counter);
    uint32_t thresh = fnn_drop_threshold(p);
    T scale = (T)scale_;
    FNN_PARALLEL_RANGE(n, lo, hi,
                       S(dropout_chunk)(lo, hi - lo, x + lo, y + lo, mask + lo, thresh, scale,
                                        key, (uint32_t)(offset + lo)));
}

void S(fnn_dropout_backward)(ptrdiff_t n, const T *gy, const uint8_t *mask, double scale_,
                             T *gx)
{
    T scale = (T)scale_;
    FNN_PARALLEL_RANGE(n, lo, hi,
                       S(dropout_grad_chunk)(hi - lo, gy + lo, mask + lo, scale, gx + lo));
}
