/* Convolution as im2col + register-tiled products, chunk by chunk of samples.
 *
 * For a chunk of samples the input's receptive fields are laid out as columns, one
 * (C kh kw, Ho Wo) block per sample with rows padded to whole vectors, and each
 * group's output is the product w (K, C kh kw) col, computed by register tiles
 * (generic/conv.h) straight into the NCHW output, the bias and a fused activation
 * applied to each task's rows while they are in cache. Backward mirrors it: one pass
 * applies the activation's derivative to dL/dy and sums the bias gradient per
 * channel, then
 *     dL/dw += gz col^T        dL/dcol = w^T gz  -> col2im -> dL/dx
 * the first as the product col gz^T, the columns read from the padded input in place
 * (generic/conv_wgrad.h).
 * The 3x3 stride-1 convolutions with 16 channels or more run their forward and dL/dx
 * by Winograd's F(2x2, 3x3) or F(4x4, 3x3) instead (generic/winograd.h), sample by
 * sample (a few samples at a time on small planes); strided convolutions whose taps
 * overlap read phase planes in place of im2col columns (generic/conv_phase.h); 1x1
 * strided convolutions run their backward without columns for dL/dz and without col2im
 * (generic/conv_1x1.h).
 * BLAS is not used: it packs both operands on every call, and for the short, wide
 * products of a convolution that costs as much as the arithmetic (the tiles run
 * 1.2-2.8x faster than single-threaded OpenBLAS on these shapes). The columns are
 * rebuilt in backward rather than kept: the scratch of one chunk is all the memory a
 * convolution needs, whatever the batch size.
 *
 * Threads: with 8 samples or more (fnn_conv_by_samples) each thread takes whole
 * samples through its own buffers of the scratch, every pass of a sample one after
 * the other, so that a forward or backward is one parallel region (and, for the
 * weight gradient, one short one adding up its blocks) instead of one per pass and
 * chunk: at batch 32 a 3x3 convolution's backward had some 30 fork/join barriers,
 * each waiting for the slowest thread or for one the OS had preempted. Otherwise the
 * passes run chunk by chunk, each split between the threads.
 *
 * Determinism: the chunk size depends on the shape only, every task writes disjoint
 * outputs with a fixed order of summation, the weight gradient sums each chunk's
 * samples in order (sample by sample: each of a fixed number of blocks of samples
 * in order, the blocks then added in order), and the bias sums are taken channel by
 * channel in a fixed order: the results do not depend on the thread count. */
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "conv.h"
#include "parallel.h"
#include "simd.h"
#include "tile.h"
#include "generic/act_math.h"

/* Elements of one chunk's buffers at most: 2 MiB of float, so that a chunk's columns
 * stay in the L2 caches between being built and being read by the products. */
#define FNN_CONV_CHUNK_ELEMS (1 << 19)

/* Blocks of samples of a backward run sample by sample: each block's weight and bias
 * sums are its own, added up in block order at the end, so that the sums do not depend
 * on which thread took a block (threads take whole blocks). At most
 * FNN_CONV_SAMPLE_BLOCKS of them, fewer where their weight-gradient sums would exceed
 * FNN_CONV_PART_ELEMS elements (8 MiB of float): wide layers run chunk by chunk. Halved
 * (to 4, to 2) while their sums exceed FNN_CONV_PARTS_WARM elements (1 MiB of float),
 * which stay in the caches between the blocks' passes and the sum: the 64 x 64 3x3
 * convolution on 8 x 8 planes of a small ResNet (8 blocks' sums: 1.2 MB) took 5% less
 * time for its backward with 4. */
#define FNN_CONV_SAMPLE_BLOCKS 8
#define FNN_CONV_PART_ELEMS (1 << 21)
#define FNN_CONV_PARTS_WARM (1 << 18)

int fnn_conv_winograd_enabled = 1;
int fnn_conv_phase_enabled = 1;
int fnn_conv_point_enabled = 1;

/* Winograd F(tm x tm, 3x3) of one sample (generic/winograd.h), tm = 2 or 4: Ci input
 * planes Hi x Wi padded by (ph, pw) (room for the (tm + 2)^2 window of every tm x tm
 * tile) and split by row and column modulo tm into tm^2 sub-planes of th + 1 rows of
 * tp = tw + 1 values (sp apart), so that tile m = i tp + j reads every value of its
 * window at a fixed offset from m: the transforms are flat loops over the tiles (the
 * last of each row of tp, j = tw, is a spare whose results are dropped). Co output
 * planes Ho x Wo; rb tile rows at a time, each channel's transformed windows and
 * products (tm + 2)^2 rows of ldv. */
typedef struct {
    ptrdiff_t Ci, Co, Hi, Wi, ph, pw, Ho, Wo, tm, th, tw, tp, sp, rb, ldv, grp;
} fnn_wino;

/* Tiles per block of tile rows: the block's transformed windows and products of 16
 * channels (2 x 96 KiB in float for F(2x2, 3x3)) stay in L2 between the transforms
 * and the products. */
#define FNN_WINO_TILES 96

/* Tiles of a group of small samples' products: two column tiles of the register
 * tiles (on 64 channels of 8 x 8, two samples' 40 columns took about 10% less time than
 * one sample's 20 at a time; four samples' 80, whose transformed windows and products
 * no longer fit L1 with the filters, 5-8%). */
#define FNN_WINO_GROUP 48

/* F(4x4, 3x3) for outputs of FNN_WINO4_MIN x FNN_WINO4_MIN or more: 2.25 instead of 4
 * multiplications per output and input channel, and as few transformed values; on
 * smaller planes its spare tiles and short products cost more than that saves. */
#define FNN_WINO4_MIN 24

static ptrdiff_t fnn_conv_row_stride(ptrdiff_t n);

static fnn_wino fnn_wino_of(ptrdiff_t Ci, ptrdiff_t Co, ptrdiff_t Hi, ptrdiff_t Wi,
                            ptrdiff_t ph, ptrdiff_t pw)
{
    fnn_wino w = {Ci, Co, Hi, Wi, ph, pw, Hi + 2 * ph - 2, Wi + 2 * pw - 2};
    w.tm = w.Ho >= FNN_WINO4_MIN && w.Wo >= FNN_WINO4_MIN ? 4 : 2;
    w.th = (w.Ho + w.tm - 1) / w.tm;
    w.tw = (w.Wo + w.tm - 1) / w.tm;
    w.tp = w.tw + 1;
    w.sp = (w.th + 1) * w.tp + 8; /* room for a read one past the last spare tile */
    w.rb = FNN_WINO_TILES / w.tp;
    if (w.rb < 1) w.rb = 1;
    if (w.rb > w.th) w.rb = w.th;
    w.ldv = fnn_conv_row_stride(w.rb * w.tp);
    /* small planes, a sample in one block of fewer than FNN_WINO_GROUP tiles (an 8 x 8
     * output: 20 tiles, 24 columns of products): the tiles of up to grp samples side
     * by side in one product (F(2x2, 3x3), whose transforms only add) */
    w.grp = w.rb == w.th && w.tm == 2 ? FNN_WINO_GROUP / (w.th * w.tp) : 1;
    if (w.grp < 1) w.grp = 1;
    return w;
}

/* Row stride of the transformed windows and products of ns samples' tiles: for a
 * group, whole vectors and one more element, so that the (tm + 2)^2 rows a transform
 * reads or writes, Ci or Co rows apart, fall in different L1 sets (with 64 channels and
 * a multiple of 16 elements, all 16 rows of F(2x2, 3x3) would share one set: the
 * transforms ran at half speed). */
static ptrdiff_t fnn_wino_ldv(const fnn_wino *w, ptrdiff_t ns)
{
    return ns == 1 ? w->ldv : (ns * w->th * w->tp + 7) / 8 * 8 + 1;
}

/* Elements of the buffers of ns samples side by side (ns > 1: w->grp at most): their
 * sub-planes, a block's transformed windows and products, the output transform's rows
 * (and F(4x4, 3x3)'s passes). */
static ptrdiff_t fnn_wino_size(const fnn_wino *w, ptrdiff_t ns)
{
    ptrdiff_t E = (w->tm + 2) * (w->tm + 2), ldv = fnn_wino_ldv(w, ns);
    return w->tm * w->tm * (ns * w->Ci * w->sp + ldv) + E * (w->Ci + w->Co) * ldv +
           (w->tm == 4 ? 36 * ldv : 0);
}

/* Elements per sample's slot of Winograd's scratch: room for ns samples in ns
 * consecutive slots, any ns up to grp. */
static ptrdiff_t fnn_wino_slot(const fnn_wino *w)
{
    ptrdiff_t slot = 0;
    for (ptrdiff_t ns = 1; ns <= w->grp; ns++) {
        ptrdiff_t per = (fnn_wino_size(w, ns) + ns - 1) / ns;
        if (per > slot) slot = per;
    }
    return slot;
}

/* Whether a convolution can run Winograd (F(2x2, 3x3) or F(4x4, 3x3)): 3x3, stride 1,
 * undilated, ungrouped, padding at most 1, 16 channels or more in and out (fewer leave
 * the transforms too little arithmetic to save). */
static int fnn_conv_wino_fits(const fnn_conv_geom *g)
{
    return fnn_conv_winograd_enabled && g->kh == 3 && g->kw == 3 && g->sh == 1 &&
           g->sw == 1 && g->dh == 1 && g->dw == 1 && g->groups == 1 && g->ph <= 1 &&
           g->pw <= 1 && g->C >= 16 && g->K >= 16;
}

/* Strided convolutions, "phase" path: split into phase planes by the input's row and
 * column modulo the stride, a convolution of stride s reads every tap's window as a
 * contiguous run, so that the products read the planes in place as the direct path
 * reads the padded input (no kh x kw copy). Along one axis (n inputs padded by p, no
 * outputs, k taps d apart, stride s): tap i reads residue r_i = i d mod s of the padded
 * input at offset e_i = i d / s of output o, i.e. position o + e_i of plane r_i
 * (len = no + max e_i long; only the residues some tap reads are kept, `res` of them,
 * tap i's at index ridx[r_i]). dL/dx of the inputs of residue r (positions s U + r - p,
 * U in [u0[r], u0[r] + nu[r])) is the stride-1 correlation of dL/dz with that
 * residue's taps (ord[st[r] .. st[r + 1]), oldest first): input U takes output U - e_i,
 * read from dL/dz padded by `pad` before and to q values. */
#define FNN_PHASE_MAXK 16 /* taps per axis */
#define FNN_PHASE_MAXS 8  /* stride */
typedef struct {
    ptrdiff_t len, res, pad, q, numax;
    ptrdiff_t ridx[FNN_PHASE_MAXS], u0[FNN_PHASE_MAXS], nu[FNN_PHASE_MAXS];
    ptrdiff_t st[FNN_PHASE_MAXS + 1], ord[FNN_PHASE_MAXK];
} fnn_phase_axis;

static fnn_phase_axis fnn_phase_axis_of(ptrdiff_t n, ptrdiff_t no, ptrdiff_t k, ptrdiff_t s,
                                        ptrdiff_t p, ptrdiff_t d)
{
    fnn_phase_axis a;
    memset(&a, 0, sizeof a);
    ptrdiff_t t = 0, emax = 0, hi = no;
    for (ptrdiff_t r = 0; r < s; r++) {
        ptrdiff_t u1;
        a.st[r] = t;
        for (ptrdiff_t i = 0; i < k; i++)
            if (i * d % s == r) a.ord[t++] = i;
        a.ridx[r] = t > a.st[r] ? a.res++ : -1;
        fnn_out_range(n, s, p - r, n + p + 1, &a.u0[r], &u1);
        a.nu[r] = u1 - a.u0[r];
        if (a.nu[r] > a.numax) a.numax = a.nu[r];
        for (ptrdiff_t j = a.st[r]; j < t; j++) {
            ptrdiff_t e = a.ord[j] * d / s;
            if (e > emax) emax = e;
            if (e - a.u0[r] > a.pad) a.pad = e - a.u0[r];
            if (u1 - e > hi) hi = u1 - e;
        }
    }
    a.st[s] = t;
    a.len = no + emax;
    a.q = a.pad + hi;
    return a;
}

/* How a convolution runs and lays out one sample's buffers in the scratch.
 *
 * A stride-1 convolution whose padding does not exceed the kernel's reach runs
 * "direct": the input is padded once (Hp x Wp planes) and the products read the kernel
 * taps' windows in place, the output computed on "wide" rows of Wp columns whose last
 * Wp - Wo are dropped. Its dL/dx is the stride-1 convolution of dL/dz padded by
 * (qh, qw) with the flipped weights, run the same way. That saves building kh kw
 * copies of the input (im2col) where the wide rows waste at most half of the
 * work; every other convolution builds im2col columns.
 *
 * The weight gradient is a register-tiled product of the padded input's windows, read in
 * place, with dL/dz transposed (generic/conv_wgrad.h) where there are 8 output
 * channels or more and each group's fill whole vectors ("wgrad"); convolutions with
 * fewer output channels (per group: depthwise) take dot products of dL/dz with the
 * columns' rows instead (tiled_dot), whose vectors run along the pixels.
 *
 * Per sample: r1 elements for the columns or the padded input (and, direct, the wide
 * rows of dL/dx), r2 for the wide output and dL/dz (K rows of ld), r3 for the padded
 * dL/dz, r4 for dL/dz transposed (Ho Wo rows of kp), r5 for Winograd's buffers (the
 * larger of the forward's and dL/dx's; not counted in the samples a chunk takes, which
 * keep the weight gradient's runs of samples as long as without them). The rows are
 * padded to whole vectors, with room after the planes for a vector read past the last
 * window.
 *
 * A 1x1 convolution of stride > 1 without padding ("point", ungrouped) runs its
 * backward sample by sample through generic/conv_1x1.h: r1 the gathered input (then
 * dL/dx's compact rows), r2 dL/dz, no gz^T; each block of samples keeps its
 * weight-gradient sums in vector lanes (`part` elements: K C 8). Where the batch
 * cannot run sample by sample (fnn_conv_by_samples) it takes the im2col path. */
typedef struct {
    int direct, wgrad, wino, phase, point;
    ptrdiff_t Hp, Wp, qh, qw, Hq, Wq;
    ptrdiff_t ld, kp, r1, r2, r3, r4, r5, nb, blocks, part;
    ptrdiff_t fs, bs, gstep; /* row stride of the forward's and dL/dz's output rows;
                                elements of r1 per group in the forward */
    fnn_rows in_rows, gz_rows;
    fnn_wino wf, wb; /* Winograd: the forward, and dL/dx as a convolution of dL/dz */
    /* phase: the axes; per channel `psz` elements of planes; tap tables of the forward
     * (tap i of rows at fh[i], of columns at fw[j]) and of dL/dx (in ord's order,
     * within the padded dL/dz, Hq x Wq planes, relative to the residue's first row) */
    fnn_phase_axis ah, aw;
    ptrdiff_t psz, fh[FNN_PHASE_MAXK], fw[FNN_PHASE_MAXK], bh[FNN_PHASE_MAXK],
        bw[FNN_PHASE_MAXK];
    const ptrdiff_t *toff; /* the products' offset tables, in the scratch (per call) */
    int wide; /* the forward's products on 8-row tiles (AVX-512: tiled_gemm_taps_wide) */
} fnn_conv_plan;

static int fnn_conv_by_samples(const fnn_conv_geom *g, const fnn_conv_plan *p);

/* Row stride for n columns: whole vectors (8 floats or 4 doubles), and 8 more where
 * the stride would be a multiple of 64 elements: rows a power of two apart map to
 * the same L1 sets, and a tile reading one vector from each of many rows would evict
 * itself. */
static ptrdiff_t fnn_conv_row_stride(ptrdiff_t n)
{
    n = (n + 7) / 8 * 8;
    return n % 64 ? n : n + 8;
}

static fnn_conv_plan fnn_conv_plan_of(const fnn_conv_geom *g)
{
    fnn_conv_plan p;
    memset(&p, 0, sizeof p);
    ptrdiff_t Wp = g->W + 2 * g->pw, C = g->C, K = g->K, G = g->groups > 0 ? g->groups : 1;
    p.Hp = g->H + 2 * g->ph;
    p.Wp = Wp;
    p.wgrad = K / G >= 8 && (G == 1 || K / G % 8 == 0);
    p.kp = G == 1 ? (K + 7) / 8 * 8 : K;
    p.r4 = p.wgrad ? g->Ho * g->Wo * p.kp : 0;
    p.wino = fnn_conv_wino_fits(g);
    p.direct = g->sh == 1 && g->sw == 1 && g->ph <= g->dh * (g->kh - 1) &&
               g->pw <= g->dw * (g->kw - 1) && 2 * (Wp - g->Wo) <= Wp;
    if (!p.direct && (g->sh > 1 || g->sw > 1) && p.wgrad && fnn_conv_phase_enabled &&
        g->kh <= FNN_PHASE_MAXK && g->kw <= FNN_PHASE_MAXK && g->sh <= FNN_PHASE_MAXS &&
        g->sw <= FNN_PHASE_MAXS) {
        p.ah = fnn_phase_axis_of(g->H, g->Ho, g->kh, g->sh, g->ph, g->dh);
        p.aw = fnn_phase_axis_of(g->W, g->Wo, g->kw, g->sw, g->pw, g->dw);
        /* where im2col would copy inputs more than once (the taps overlap: a 1x1
         * convolution's columns are a plain gather, and its dL/dx as fast by col2im) and
         * dL/dx's wide rows waste at most half of its work */
        p.phase = (g->dh * (g->kh - 1) + 1 > g->sh || g->dw * (g->kw - 1) + 1 > g->sw) &&
                  2 * (p.aw.q - p.aw.numax) <= p.aw.q;
    }
    if (p.phase) {
        const fnn_phase_axis *ah = &p.ah, *aw = &p.aw;
        p.wide = fnn_avx512_runs();
        ptrdiff_t plane = ah->len * g->Wo, Wq = aw->q;
        p.psz = ah->res * g->kw * plane;
        for (ptrdiff_t i = 0; i < g->kh; i++)
            p.fh[i] = ah->ridx[i * g->dh % g->sh] * g->kw * plane + i * g->dh / g->sh * g->Wo;
        for (ptrdiff_t j = 0; j < g->kw; j++) p.fw[j] = j * plane;
        for (ptrdiff_t r = 0; r < g->sh; r++)
            for (ptrdiff_t t = ah->st[r]; t < ah->st[r + 1]; t++)
                p.bh[t] = (ah->u0[r] - ah->ord[t] * g->dh / g->sh + ah->pad) * Wq;
        for (ptrdiff_t r = 0; r < g->sw; r++)
            for (ptrdiff_t t = aw->st[r]; t < aw->st[r + 1]; t++)
                p.bw[t] = aw->u0[r] - aw->ord[t] * g->dw / g->sw + aw->pad;
        p.Hq = ah->q;
        p.Wq = Wq;
        p.fs = g->Wo;
        p.bs = g->Wo;
        p.gstep = C / G * p.psz;
        p.ld = fnn_conv_row_stride(g->Ho * g->Wo);
        /* the planes; the padded input (weight gradient); dL/dx's wide rows, per phase */
        p.r1 = C * p.psz + 16;
        if (p.r1 < C * p.Hp * Wp) p.r1 = C * p.Hp * Wp;
        if (p.r1 < g->sh * g->sw * C * ah->numax * Wq)
            p.r1 = g->sh * g->sw * C * ah->numax * Wq;
        p.r2 = K * p.ld;
        p.r3 = K * p.Hq * Wq + 16;
    } else if (p.direct) {
        p.qh = g->dh * (g->kh - 1) - g->ph;
        p.qw = g->dw * (g->kw - 1) - g->pw;
        p.Hq = g->Ho + 2 * p.qh;
        p.Wq = g->Wo + 2 * p.qw;
        p.ld = fnn_conv_row_stride(g->Ho * Wp);
        p.r1 = C * p.Hp * Wp + Wp + 16;
        if (p.r1 < C * g->H * p.Wq) p.r1 = C * g->H * p.Wq;
        p.r2 = K * p.ld;
        p.r3 = K * p.Hq * p.Wq + p.Wq + 16;
        p.in_rows = (fnn_rows){g->kh, g->kw, p.Hp * Wp, g->dh * Wp, g->dw};
        p.gz_rows = (fnn_rows){g->kh, g->kw, p.Hq * p.Wq, g->dh * p.Wq, g->dw};
        p.fs = p.bs = Wp;
        p.gstep = C / G * p.Hp * Wp;
    } else {
        p.ld = fnn_conv_row_stride(g->Ho * g->Wo);
        p.fs = p.bs = g->Wo;
        p.gstep = C / G * g->kh * g->kw * p.ld;
        p.r1 = C * g->kh * g->kw * p.ld;
        if (p.wgrad && (g->ph || g->pw) && p.r1 < C * p.Hp * Wp) p.r1 = C * p.Hp * Wp;
        p.r2 = K * p.ld;
        p.in_rows = (fnn_rows){1, 1, p.ld, 0, 0};
        p.point = fnn_conv_point_enabled && g->kh == 1 && g->kw == 1 && !g->ph && !g->pw &&
                  (g->sh > 1 || g->sw > 1) && G == 1;
    }
    ptrdiff_t fit; /* samples whose buffers fit a chunk */
    for (;;) { /* the point plan, or (where it cannot run by samples) the im2col one */
        if (p.point) p.r4 = 0;
        /* the samples' buffers (Winograd's apart: one set per slot as well, but they do
         * not set how many samples a thread takes at a time) */
        ptrdiff_t per = p.r1 + p.r2 + p.r3 + p.r4;
        p.nb = fit = per > 0 ? FNN_CONV_CHUNK_ELEMS / per : g->N;
        if (p.nb < 1) p.nb = 1;
        if (p.nb > g->N) p.nb = g->N > 0 ? g->N : 1;
        /* blocks of samples of a backward run sample by sample (conv_backward_by_samples,
         * point_backward): as many as their weight-gradient sums of FNN_CONV_PART_ELEMS
         * elements allow */
        p.part = p.point ? K * C * 8 : p.wgrad ? C / G * g->kh * g->kw * p.kp : 0;
        p.blocks = p.part * FNN_CONV_SAMPLE_BLOCKS <= FNN_CONV_PART_ELEMS
                       ? FNN_CONV_SAMPLE_BLOCKS
                       : FNN_CONV_PART_ELEMS / p.part;
        while (p.blocks >= 4 && p.blocks * p.part > FNN_CONV_PARTS_WARM) p.blocks /= 2;
        if (!p.point || fnn_conv_by_samples(g, &p)) break;
        p.point = 0;
        p.r4 = p.wgrad ? g->Ho * g->Wo * p.kp : 0;
    }
    /* Winograd where two samples' buffers fit: else it would run on one thread */
    p.wino = p.wino && fit >= 2;
    if (p.wino) {
        p.wf = fnn_wino_of(C, K, g->H, g->W, g->ph, g->pw);
        p.wb = fnn_wino_of(K, C, g->Ho, g->Wo, 2 - g->ph, 2 - g->pw);
        p.r5 = fnn_wino_slot(&p.wf);
        if (p.r5 < fnn_wino_slot(&p.wb)) p.r5 = fnn_wino_slot(&p.wb);
    }
    return p;
}

int fnn_conv_uses_winograd(const fnn_conv_geom *g)
{
    return fnn_conv_plan_of(g).wino;
}

int fnn_conv_uses_phase(const fnn_conv_geom *g)
{
    return fnn_conv_plan_of(g).phase;
}

int fnn_conv_uses_point(const fnn_conv_geom *g)
{
    return fnn_conv_plan_of(g).point;
}

/* Whether a convolution runs sample by sample, each thread taking whole samples (or
 * blocks of them) through its own buffers in one parallel region, rather than chunk by
 * chunk with a parallel region per pass: where the scratch holds buffers for two
 * samples or more, the batch has FNN_CONV_SAMPLE_BLOCKS samples or more and there are
 * two blocks of samples or more. Depends on the shape only. */
static int fnn_conv_by_samples(const fnn_conv_geom *g, const fnn_conv_plan *p)
{
    return p->nb >= 2 && g->N >= FNN_CONV_SAMPLE_BLOCKS && p->blocks >= 2;
}

/* The scratch's layout: nb samples' buffers (r1 .. r4), the transposed weights, the
 * weight-gradient sums (one block of them per block of samples), then the blocks' bias
 * sums in double (`parts` elements of the data type: room for them aligned). */
static ptrdiff_t fnn_conv_parts_offset(const fnn_conv_geom *g, const fnn_conv_plan *p)
{
    ptrdiff_t ckk = g->C / (g->groups > 0 ? g->groups : 1) * g->kh * g->kw;
    return p->nb * (p->r1 + p->r2 + p->r3 + p->r4) + g->K * ckk + p->blocks * p->part;
}

static double *fnn_conv_bias_parts(const fnn_conv_geom *g, const fnn_conv_plan *p,
                                   void *scratch, size_t elem)
{
    size_t off = (size_t)fnn_conv_parts_offset(g, p) * elem;
    return (double *)((char *)scratch + (off + sizeof(double) - 1) / sizeof(double) *
                                            sizeof(double));
}

ptrdiff_t fnn_conv_scratch(const fnn_conv_geom *g)
{
    fnn_conv_plan p = fnn_conv_plan_of(g);
    /* the bias sums: two float elements per double, one more to align them; then
     * Winograd's buffers and transformed filters, or the phase path's offset tables
     * (ptrdiff_t: two float elements each, one more to align them) */
    ptrdiff_t G = g->groups > 0 ? g->groups : 1, kk = g->kh * g->kw;
    return fnn_conv_parts_offset(g, &p) + 2 * p.blocks * g->K + 1 +
           (p.wino ? p.nb * p.r5 + 36 * g->K * g->C : 0) +
           (p.phase ? 2 * (g->C + g->K) / G * kk + 1 : 0);
}

/* Run the statements after (n, slots, work, lo, hi, slot, per) for the units [lo, hi) =
 * [i, i + 1) of [0, n), handed out one at a time to whichever thread is free (a thread
 * the OS holds back leaves its share to the others), on at most `slots` threads; each
 * thread's buffers are the `per` slots from `slot` on (per >= 1). Which thread runs a
 * unit never changes what the unit computes. */
#ifdef _OPENMP
#define FNN_THREAD_NUM() omp_get_thread_num()
#else
#define FNN_THREAD_NUM() 0
#endif
#define FNN_PARALLEL_SLOTS(n, slots, work, lo, hi, slot, per, ...)                    \
    do {                                                                             \
        ptrdiff_t fnn_n_ = (n);                                                      \
        int fnn_nt_ = fnn_threads_for(work);                                         \
        if (fnn_nt_ > (slots)) fnn_nt_ = (int)(slots);                               \
        if (fnn_nt_ > fnn_n_) fnn_nt_ = fnn_n_ > 0 ? (int)fnn_n_ : 1;                 \
        if (fnn_nt_ <= 1) {                                                          \
            ptrdiff_t lo = 0, hi = fnn_n_, slot = 0, per = (slots);                  \
            (void)per;                                                               \
            __VA_ARGS__;                                                             \
        } else {                                                                     \
            _Pragma("omp parallel num_threads(fnn_nt_)")                             \
            {                                                                        \
                ptrdiff_t per = (slots) / fnn_nt_, slot = FNN_THREAD_NUM() * per;    \
                (void)per;                                                           \
                _Pragma("omp for schedule(dynamic, 1)")                              \
                for (ptrdiff_t fnn_i_ = 0; fnn_i_ < fnn_n_; fnn_i_++) {              \
                    ptrdiff_t lo = fnn_i_, hi = fnn_i_ + 1;                          \
                    __VA_ARGS__;                                                     \
                }                                                                    \
            }                                                                        \
        }                                                                            \
    } while (0)

/* d (VL rows of ldd) = the VL x VL block s (rows lds apart) transposed, VL = 8 floats
 * or 4 doubles (a vector each): pairs of rows interleaved, then pairs of pairs, then
 * (float) the 128-bit halves; the packing of dL/dz for the weight gradient
 * (generic/conv_wgrad.h). */
#if defined(__GNUC__) && !defined(__clang__)
typedef float fnn_v8f __attribute__((vector_size(32), aligned(4), may_alias));
typedef double fnn_v4d __attribute__((vector_size(32), aligned(8), may_alias));
typedef int32_t fnn_m8 __attribute__((vector_size(32)));
typedef int64_t fnn_m4 __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) void fnn_transpose_block_f32(const float *s,
                                                                          ptrdiff_t lds,
                                                                          float *d,
                                                                          ptrdiff_t ldd)
{
    const fnn_m8 lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
    const fnn_m8 l2 = {0, 1, 8, 9, 4, 5, 12, 13}, h2 = {2, 3, 10, 11, 6, 7, 14, 15};
    const fnn_m8 l4 = {0, 1, 2, 3, 8, 9, 10, 11}, h4 = {4, 5, 6, 7, 12, 13, 14, 15};
    fnn_v8f r[8], t[8];
    for (int i = 0; i < 8; i++) r[i] = *(const fnn_v8f *)(s + i * lds);
    for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shuffle(r[i], r[i + 1], lo);
        t[i + 1] = __builtin_shuffle(r[i], r[i + 1], hi);
    }
    for (int i = 0; i < 8; i += 4) {
        r[i] = __builtin_shuffle(t[i], t[i + 2], l2);
        r[i + 1] = __builtin_shuffle(t[i], t[i + 2], h2);
        r[i + 2] = __builtin_shuffle(t[i + 1], t[i + 3], l2);
        r[i + 3] = __builtin_shuffle(t[i + 1], t[i + 3], h2);
    }
    for (int i = 0; i < 4; i++) {
        *(fnn_v8f *)(d + i * ldd) = __builtin_shuffle(r[i], r[i + 4], l4);
        *(fnn_v8f *)(d + (i + 4) * ldd) = __builtin_shuffle(r[i], r[i + 4], h4);
    }
}

static inline __attribute__((always_inline)) void fnn_transpose_block_f64(const double *s,
                                                                          ptrdiff_t lds,
                                                                          double *d,
                                                                          ptrdiff_t ldd)
{
    const fnn_m4 lo = {0, 4, 2, 6}, hi = {1, 5, 3, 7}, l2 = {0, 1, 4, 5}, h2 = {2, 3, 6, 7};
    fnn_v4d r[4], t[4];
    for (int i = 0; i < 4; i++) r[i] = *(const fnn_v4d *)(s + i * lds);
    for (int i = 0; i < 4; i += 2) {
        t[i] = __builtin_shuffle(r[i], r[i + 1], lo);
        t[i + 1] = __builtin_shuffle(r[i], r[i + 1], hi);
    }
    for (int i = 0; i < 2; i++) {
        *(fnn_v4d *)(d + i * ldd) = __builtin_shuffle(t[i], t[i + 2], l2);
        *(fnn_v4d *)(d + (i + 2) * ldd) = __builtin_shuffle(t[i], t[i + 2], h2);
    }
}

/* d[0 .. VL) = the even elements s[0], s[2], .., s[2 VL - 2] of two vectors, and its
 * adjoint d[0 .. 2 VL) = s[0], 0, s[1], 0, ..: the gathers and scatters of stride-2
 * convolutions (im2col rows, generic/conv_1x1.h's dL/dx) in vector registers, where
 * a loop of stride 2 compiles to one insert per element. */
static inline __attribute__((always_inline)) void fnn_evens_f32(const float *s, float *d)
{
    const fnn_m8 m = {0, 2, 4, 6, 8, 10, 12, 14};
    *(fnn_v8f *)d = __builtin_shuffle(*(const fnn_v8f *)s, *(const fnn_v8f *)(s + 8), m);
}

static inline __attribute__((always_inline)) void fnn_evens_f64(const double *s, double *d)
{
    const fnn_m4 m = {0, 2, 4, 6};
    *(fnn_v4d *)d = __builtin_shuffle(*(const fnn_v4d *)s, *(const fnn_v4d *)(s + 4), m);
}

static inline __attribute__((always_inline)) void fnn_spread2_f32(const float *s, float *d)
{
    const fnn_m8 lo = {0, 8, 1, 8, 2, 8, 3, 8}, hi = {4, 8, 5, 8, 6, 8, 7, 8};
    fnn_v8f v = *(const fnn_v8f *)s, z = {0};
    *(fnn_v8f *)d = __builtin_shuffle(v, z, lo);
    *(fnn_v8f *)(d + 8) = __builtin_shuffle(v, z, hi);
}

static inline __attribute__((always_inline)) void fnn_spread2_f64(const double *s, double *d)
{
    const fnn_m4 lo = {0, 4, 1, 4}, hi = {2, 4, 3, 4};
    fnn_v4d v = *(const fnn_v4d *)s, z = {0};
    *(fnn_v4d *)d = __builtin_shuffle(v, z, lo);
    *(fnn_v4d *)(d + 4) = __builtin_shuffle(v, z, hi);
}
#else
#define FNN_STRIDE2(T, SFX, VL)                                                             \
    static inline void fnn_evens_##SFX(const T *s, T *d)                                     \
    {                                                                                       \
        for (ptrdiff_t i = 0; i < VL; i++) d[i] = s[2 * i];                                 \
    }                                                                                       \
    static inline void fnn_spread2_##SFX(const T *s, T *d)                                   \
    {                                                                                       \
        for (ptrdiff_t i = 0; i < VL; i++) d[2 * i] = s[i], d[2 * i + 1] = 0;               \
    }
#define FNN_TRANSPOSE_BLOCK(T, name, VL)                                                    \
    static inline void name(const T *s, ptrdiff_t lds, T *d, ptrdiff_t ldd)                \
    {                                                                                       \
        for (ptrdiff_t i = 0; i < VL; i++)                                                  \
            for (ptrdiff_t j = 0; j < VL; j++) d[j * ldd + i] = s[i * lds + j];             \
    }
FNN_TRANSPOSE_BLOCK(float, fnn_transpose_block_f32, 8)
FNN_TRANSPOSE_BLOCK(double, fnn_transpose_block_f64, 4)
#undef FNN_TRANSPOSE_BLOCK
FNN_STRIDE2(float, f32, 8)
FNN_STRIDE2(double, f64, 4)
#undef FNN_STRIDE2
#endif

#define FNN_GENERIC "generic/conv.h"
#include "instantiate.h"
