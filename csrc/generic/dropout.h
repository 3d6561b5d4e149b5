/* Generic body of dropout.c; see instantiate.h for T and S(). */

/* Elements [lo, hi) of the mask; y = x * mask * scale (scale = 1 / (1 - p) for inverted
 * dropout, 1 for the weight-scaling rule). */
static FNN_CLONES void S(dropout_chunk)(uint32_t lo, uint32_t hi, const T *x, T *y,
                                        uint8_t *mask, uint32_t thresh, T scale,
                                        uint64_t key)
{
#pragma omp simd
    for (uint32_t k = lo; k < hi; k++) {
        uint8_t keep = keyed_bits(key, k) >= thresh;
        mask[k] = keep;
        y[k] = x[k] * ((T)keep * scale); /* x * 0, not 0: NaN propagates as in torch */
    }
}

static FNN_CLONES void S(dropout_grad_chunk)(ptrdiff_t n, const T *gy, const uint8_t *mask,
                                             T scale, T *gx)
{
#pragma omp simd
    for (ptrdiff_t k = 0; k < n; k++) gx[k] = gy[k] * ((T)mask[k] * scale);
}

/* n < 2^32 (checked in Python). */
void S(fnn_dropout_forward)(ptrdiff_t n, const T *x, T *y, uint8_t *mask, double p,
                            double scale_, uint64_t seed, uint64_t counter)
{
    uint64_t key = dropout_key(seed, counter);
    uint32_t thresh = drop_threshold(p);
    T scale = (T)scale_;
    FNN_PARALLEL_RANGE(n, lo, hi,
                       S(dropout_chunk)((uint32_t)lo, (uint32_t)hi, x, y, mask, thresh, scale,
                                        key));
}

void S(fnn_dropout_backward)(ptrdiff_t n, const T *gy, const uint8_t *mask, double scale_,
                             T *gx)
{
    T scale = (T)scale_;
    FNN_PARALLEL_RANGE(n, lo, hi,
                       S(dropout_grad_chunk)(hi - lo, gy + lo, mask + lo, scale, gx + lo));
}
