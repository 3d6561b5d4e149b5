/* Generic body of weightnorm.c; see instantiate.h for T and S().
 *
 * Weight normalisation (Salimans & Kingma, 2016) over the rows of v (rows, cols):
 * w = g * v / |v|, |v| the row's Euclidean norm. */
void S(fnn_weight_norm_forward)(ptrdiff_t rows, ptrdiff_t cols, const T *v, const T *g,
                                T *w, T *norms)
{
    FNN_PARALLEL_SPLIT(rows, rows * cols, lo, hi,
                       for (ptrdiff_t i = lo; i < hi; i++) {
                           const T *vi = v + i * cols;
                           T *wi = w + i * cols;
                           double s = 0;
                           for (ptrdiff_t k = 0; k < cols; k++) s += (double)vi[k] * vi[k];
                           double nrm = sqrt(s);
                           norms[i] = (T)nrm;
                           T f = (T)((double)g[i] / nrm);
                           for (ptrdiff_t k = 0; k < cols; k++) wi[k] = vi[k] * f;
                       });
}

/* From gw = dL/dw:  gg += (gw . v) / |v|,  gv += g / |v| * (gw - (gw . v) / |v|^2 * v). */
void S(fnn_weight_norm_backward)(ptrdiff_t rows, ptrdiff_t cols, const T *v, const T *g,
                                 const T *norms, const T *gw, T *gv, T *gg)
{
    FNN_PARALLEL_SPLIT(rows, rows * cols, lo, hi,
                       for (ptrdiff_t i = lo; i < hi; i++) {
                           const T *vi = v + i * cols, *gi = gw + i * cols;
                           double dot = 0, nrm = (double)norms[i];
                           for (ptrdiff_t k = 0; k < cols; k++) dot += (double)gi[k] * vi[k];
                           if (gg) gg[i] += (T)(dot / nrm);
                           if (gv) {
                               T a = (T)((double)g[i] / nrm), b = (T)(dot / (nrm * nrm));
                               T *o = gv + i * cols;
                               for (ptrdiff_t k = 0; k < cols; k++) o[k] += a * (gi[k] - b * vi[k]);
                           }
                       });
}
