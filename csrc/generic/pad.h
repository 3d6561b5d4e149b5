/* Generic body of pad.c; see instantiate.h for T and S(). */

static void S(pad_plane)(const fnn_pad_geom *g, const T *x, T *y)
{
    ptrdiff_t Ho = g->H + g->top + g->bottom, Wo = g->W + g->left + g->right;
    for (ptrdiff_t i = 0; i < Ho; i++) {
        const T *xr = x + fnn_pad_source(i, g->H, g->top, g->mode) * g->W;
        T *yr = y + i * Wo;
        for (ptrdiff_t k = 0; k < g->left; k++)
            yr[k] = xr[fnn_pad_source(k, g->W, g->left, g->mode)];
        memcpy(yr + g->left, xr, (size_t)g->W * sizeof(T));
        for (ptrdiff_t k = g->left + g->W; k < Wo; k++)
            yr[k] = xr[fnn_pad_source(k, g->W, g->left, g->mode)];
    }
}

/* The adjoint, plane by plane: gx = 0, then every padded position adds its gradient to
 * the element it copies (output rows in order, so the sums' order is fixed). */
static void S(pad_plane_backward)(const fnn_pad_geom *g, const T *gy, T *gx)
{
    ptrdiff_t Ho = g->H + g->top + g->bottom, Wo = g->W + g->left + g->right;
    memset(gx, 0, (size_t)(g->H * g->W) * sizeof(T));
    for (ptrdiff_t i = 0; i < Ho; i++) {
        T *xr = gx + fnn_pad_source(i, g->H, g->top, g->mode) * g->W;
        const T *yr = gy + i * Wo;
        for (ptrdiff_t k = 0; k < Wo; k++) xr[fnn_pad_source(k, g->W, g->left, g->mode)] += yr[k];
    }
}

void S(fnn_pad_forward)(const fnn_pad_geom *g, const T *x, T *y)
{
    ptrdiff_t in = g->H * g->W;
    ptrdiff_t out = (g->H + g->top + g->bottom) * (g->W + g->left + g->right);
    FNN_PARALLEL_SPLIT(g->planes, g->planes * out, lo, hi,
                       for (ptrdiff_t p = lo; p < hi; p++)
                           S(pad_plane)(g, x + p * in, y + p * out));
}

void S(fnn_pad_backward)(const fnn_pad_geom *g, const T *gy, T *gx)
{
    ptrdiff_t in = g->H * g->W;
    ptrdiff_t out = (g->H + g->top + g->bottom) * (g->W + g->left + g->right);
    FNN_PARALLEL_SPLIT(g->planes, g->planes * out, lo, hi,
                       for (ptrdiff_t p = lo; p < hi; p++)
                           S(pad_plane_backward)(g, gy + p * out, gx + p * in));
}
