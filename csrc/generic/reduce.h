/* Deterministic parallel sum over chunks (generic; see instantiate.h).
 *
 * fn(len, a, b, out, s0, s1) processes one chunk and returns its partial sum. The chunk length
 * depends on n only (fnn_chunk_size), and partials are added in chunk order, so the
 * total is the same for any thread count. `out` may be NULL. */
typedef double (*S(chunk_fn))(ptrdiff_t len, const T *a, const T *b, T *out, T s0, T s1);

static double S(chunked_sum)(S(chunk_fn) fn, ptrdiff_t n, const T *a, const T *b, T *out,
                             T s0, T s1)
{
    ptrdiff_t cs = fnn_chunk_size(n), nc = (n + cs - 1) / cs;
    double part[FNN_MAX_CHUNKS];
    FNN_PARALLEL_SPLIT(nc, n, c0, c1,
                       for (ptrdiff_t c = c0; c < c1; c++) {
                           ptrdiff_t lo = c * cs, len = n - lo < cs ? n - lo : cs;
                           part[c] = fn(len, a + lo, b ? b + lo : NULL, out ? out + lo : NULL,
                                        s0, s1);
                       });
    double s = 0;
    for (ptrdiff_t c = 0; c < nc; c++) s += part[c];
    return s;
}
