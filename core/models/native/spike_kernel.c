/* SpikingBrain's projections for a few tokens at a time (decoding), fused in one pass over the weights.
 *
 * Built by core/models/native.py with the machine's C compiler: -O3, OpenMP, and AVX-512, AVX2 or SSE4.1 where the
 * CPU runs them (AVX-512 is timed against AVX2 once: faster on some CPUs, slower on others). The products are
 * AVX-512 or AVX2 intrinsics where built for them, plain C otherwise.
 *
 * spiking_linear: each token's input x is coded as integer spike counts c = round(x / v_th), v_th = mean|x| / k,
 * and multiplied with INT8 weights that share one scale per group of `width` inputs. Each group's sum of
 * count x weight is an exact 32-bit integer (sum |c| is about k * in_features, |w| <= 127), so the only rounding is
 * fp32's, in scaling and summing the groups: y = v_th * sum_g scale[g] * sum_i w[g, i] c[g, i].
 *
 * Counts are int16 for the vector products. One count can pass 32767 only where one input holds most of the whole
 * input's magnitude (|c| <= k * in_features: an outlier of a wide projection, such as a 1.5B model's 8,960-wide
 * MLP output); such a count is kept as +-32767 and the rest of it added to its group's integer sum separately,
 * exactly, from a short list.
 */
#include <math.h>
#include <string.h>

#include "spike_kernel.h"

#if defined(__AVX2__) || defined(__AVX512BW__)
#include <immintrin.h>
#endif

#define ROWS_AT_ONCE 16

/* 1 / sqrt(mean(x^2) + eps), the squares summed in double: the RMS norm's factor, here and in decode_step.c. */
float inverse_rms(const float *x, int n, float eps) {
    double squares = 0.0;
    for (int i = 0; i < n; i++) squares += (double)x[i] * x[i];
    return 1.0f / sqrtf((float)(squares / n) + eps);
}

/* The spike threshold v_th = mean|x| / k of the input as the projection reads it; *rms gets the norm's factor. */
float spike_threshold_of(const float *x, int n, float k, const float *norm_weight, float norm_eps, float *rms) {
    *rms = norm_weight ? inverse_rms(x, n, norm_eps) : 1.0f;
    double total = 0.0;  /* exact enough that v_th is mean|x| / k correctly rounded to fp32 */
    for (int i = 0; i < n; i++) total += fabsf(input_at(x, i, *rms, norm_weight));
    float v_th = (float)(total / n) / k;
    return v_th >= 1e-8f ? v_th : 1e-8f;  /* as clamp_min(1e-8) */
}

float spike_code(const float *x, int in_features, int padded, float k, const float *norm_weight, float norm_eps,
                 int16_t *counts, Overflow *overflows, int *overflowed) {
    float rms, v_th = spike_threshold_of(x, in_features, k, norm_weight, norm_eps, &rms);
    *overflowed = 0;
    for (int i = 0; i < in_features; i++) {
        float count = nearbyintf(input_at(x, i, rms, norm_weight) / v_th);  /* half to even, as torch.round */
        if (fabsf(count) > 32767.0f) {
            float kept = count > 0 ? 32767.0f : -32767.0f;
            if (*overflowed < MAX_OVERFLOWS) overflows[(*overflowed)++] = (Overflow){i, (int32_t)(count - kept)};
            count = kept;
        }
        counts[i] = (int16_t)count;
    }
    for (int i = in_features; i < padded; i++) counts[i] = 0;
    return v_th;
}

#if defined(__AVX512BW__)
#define LANES 32 /* int16 products per vector step: a 512-bit register's */
#if defined(__AVX512VNNI__)
#define DOT_STEP(dot, w, c) _mm512_dpwssd_epi32(dot, w, c)
#else
#define DOT_STEP(dot, w, c) _mm512_add_epi32(dot, _mm512_madd_epi16(w, c))
#endif
#elif defined(__AVX2__)
#define LANES 16
#endif

/* The overflows of one token that fall in group g (its inputs below (g + 1) * width), from *next on: the rest of
 * each count past int16 times its weight, an exact integer. */
static inline int32_t overflow_sum(const int8_t *w, const Overflow *overflows, int overflowed, int *next, int g,
                                   int width) {
    int32_t sum = 0;
    for (; *next < overflowed && overflows[*next].index < (g + 1) * width; (*next)++)
        sum += (int32_t)w[overflows[*next].index] * overflows[*next].rest;
    return sum;
}

/* One output's sums for `tokens` (1 to 4) tokens' counts, `stride` apart: for each,
 * sum_g scale[g * scale_stride] * sum_i w[g, i] c[g, i], w one run of groups * width weights.
 *
 * Each group's products are summed in int32 vector lanes, exactly (a lane's sum is at most 127 * sum |c|, far below
 * 2^24, so it also converts to fp32 exactly), scaled into fp32 lanes, and the lanes added once at the end, as
 * q4_kernel.c does. Summing each group to one number first, as gcc vectorized the plain loop, cost as much as the
 * products on an Intel Xeon (the head and the 128-input groups: 51 against 72 tokens/s with one scale per row). Every
 * weight is loaded and widened once for all the tokens, and each token's arithmetic is the same whatever `tokens` is:
 * a prompt's four tokens at once give each token's very bits. One output's weights at a time: loops that read four
 * outputs' rows in turn were faster in cache and 2-3x slower streamed from memory (they defeat the prefetcher). */
static inline void output_sums(const int16_t *c, int64_t stride, int tokens, const int8_t *w, const uint16_t *scale,
                               int scale_stride, int groups, int width, const Overflow *const *overflows,
                               const int *overflowed, float *sums) {
    int next[4] = {0, 0, 0, 0};  /* each token's first overflow not yet added */
#if defined(__AVX512BW__)
    __m512 lanes[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int g = 0; g < groups; g++) {
        const int8_t *wg = w + (int64_t)g * width;
        const int16_t *cg = c + (int64_t)g * width;
        __m512i dot[4], other[4];  /* two sums a token: each step waits on its sum's last (5 cycles) */
        for (int t = 0; t < tokens; t++) dot[t] = other[t] = _mm512_setzero_si512();
        for (int i = 0; i < width; i += 2 * LANES) {  /* width: a multiple of 64 (KERNEL_WIDTH) */
            __m512i first = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(wg + i)));
            __m512i second = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(wg + i + LANES)));
            for (int t = 0; t < tokens; t++) {
                dot[t] = DOT_STEP(dot[t], first, _mm512_loadu_si512((const void *)(cg + t * stride + i)));
                other[t] = DOT_STEP(other[t], second, _mm512_loadu_si512((const void *)(cg + t * stride + i + LANES)));
            }
        }
        for (int t = 0; t < tokens; t++) dot[t] = _mm512_add_epi32(dot[t], other[t]);
        __m512 group_scale = _mm512_set1_ps(from_bfloat16(scale[(int64_t)g * scale_stride]));
        for (int t = 0; t < tokens; t++) {
            int32_t rest = overflow_sum(w, overflows[t], overflowed[t], &next[t], g, width);
            if (rest) dot[t] = _mm512_add_epi32(dot[t], _mm512_maskz_set1_epi32(1, rest));
            lanes[t] = _mm512_fmadd_ps(group_scale, _mm512_cvtepi32_ps(dot[t]), lanes[t]);
        }
    }
    for (int t = 0; t < tokens; t++) sums[t] = _mm512_reduce_add_ps(lanes[t]);
#elif defined(__AVX2__)
    __m256 lanes[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int g = 0; g < groups; g++) {
        const int8_t *wg = w + (int64_t)g * width;
        const int16_t *cg = c + (int64_t)g * width;
        __m256i dot[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                          _mm256_setzero_si256()};
        for (int i = 0; i < width; i += LANES) {
            __m256i weights = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(wg + i)));
            for (int t = 0; t < tokens; t++) {
                __m256i counts = _mm256_loadu_si256((const __m256i *)(cg + t * stride + i));
                dot[t] = _mm256_add_epi32(dot[t], _mm256_madd_epi16(weights, counts));
            }
        }
        __m256 group_scale = _mm256_set1_ps(from_bfloat16(scale[(int64_t)g * scale_stride]));
        for (int t = 0; t < tokens; t++) {
            int32_t rest = overflow_sum(w, overflows[t], overflowed[t], &next[t], g, width);
            if (rest) dot[t] = _mm256_add_epi32(dot[t], _mm256_setr_epi32(rest, 0, 0, 0, 0, 0, 0, 0));
            lanes[t] = _mm256_fmadd_ps(group_scale, _mm256_cvtepi32_ps(dot[t]), lanes[t]);
        }
    }
    for (int t = 0; t < tokens; t++) {
        __m128 half = _mm_add_ps(_mm256_castps256_ps128(lanes[t]), _mm256_extractf128_ps(lanes[t], 1));
        half = _mm_hadd_ps(half, half);
        sums[t] = _mm_cvtss_f32(_mm_hadd_ps(half, half));
    }
#else
    for (int t = 0; t < tokens; t++) sums[t] = 0.0f;
    for (int g = 0; g < groups; g++) {
        const int8_t *wg = w + (int64_t)g * width;
        float group_scale = from_bfloat16(scale[(int64_t)g * scale_stride]);
        for (int t = 0; t < tokens; t++) {
            const int16_t *cg = c + t * stride + (int64_t)g * width;
            int32_t dot = overflow_sum(w, overflows[t], overflowed[t], &next[t], g, width);
            for (int i = 0; i < width; i++) dot += (int32_t)wg[i] * (int32_t)cg[i];
            sums[t] = fmaf(group_scale, (float)dot, sums[t]);
        }
    }
#endif
}

/* One token's sum for one output (the decoding step's, and the head's). */
static float output_sum(const int16_t *c, const int8_t *w, const uint16_t *scale, int scale_stride, int groups,
                        int width, const Overflow *overflows, int overflowed) {
    float sum;
    output_sums(c, 0, 1, w, scale, scale_stride, groups, width, &overflows, &overflowed, &sum);
    return sum;
}

/* An output from its sum: one fused multiply-add, so that every path rounds it alike. */
static float output(float sum, float v_th, const float *bias, int o) {
    return fmaf(sum, v_th, bias ? bias[o] : 0.0f);
}

/* x (rows, in_features) fp32; norm_weight (in_features) fp32 or NULL; w (out, groups, width) int8 (each output's
 * weights one run of memory, which streams twice as fast as a run per group); scale (groups,
 * out) bfloat16; bias (out) or NULL; y (rows, out) fp32; counts (rows, groups * width) int16 and v_th (rows) are
 * filled for the caller too. */
EXPORT void spiking_linear(const float *x, int rows, int in_features, const float *norm_weight, float norm_eps,
                           float k, const int8_t *w, const uint16_t *scale, int groups, int out, int width,
                           const float *bias, float *y, int16_t *counts, float *v_th, int threads) {
    int padded = groups * width;
    Overflow overflows[ROWS_AT_ONCE][MAX_OVERFLOWS];
    int overflowed[ROWS_AT_ONCE];
    for (int first = 0; first < rows; first += ROWS_AT_ONCE) {
        int last = rows - first < ROWS_AT_ONCE ? rows : first + ROWS_AT_ONCE;
        for (int r = first; r < last; r++)
            v_th[r] = spike_code(x + (int64_t)r * in_features, in_features, padded, k, norm_weight, norm_eps,
                                 counts + (int64_t)r * padded, overflows[r - first], &overflowed[r - first]);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
        for (int o = 0; o < out; o++) {
            int r = first;
            for (; r + 4 <= last; r += 4) {  /* four tokens a pass over this output's weights */
                float sums[4];
                const Overflow *lists[4] = {overflows[r - first], overflows[r - first + 1], overflows[r - first + 2],
                                            overflows[r - first + 3]};
                output_sums(counts + (int64_t)r * padded, padded, 4, w + (int64_t)o * padded, scale + o, out, groups,
                            width, lists, &overflowed[r - first], sums);
                for (int t = 0; t < 4; t++) y[(int64_t)(r + t) * out + o] = output(sums[t], v_th[r + t], bias, o);
            }
            for (; r < last; r++)
                projection_rows(counts + (int64_t)r * padded, overflows[r - first], overflowed[r - first], v_th[r], w,
                                scale, groups, out, width, bias, y + (int64_t)r * out, o, o + 1);
        }
    }
}

/* Outputs [begin, end) of one token's projection from its spike counts (spike_code's): the decoding step's share of
 * a projection, in whichever thread claims it (team.c). */
void projection_rows(const int16_t *counts, const Overflow *overflows, int overflowed, float v_th, const int8_t *w,
                     const uint16_t *scale, int groups, int out, int width, const float *bias, float *y, int begin,
                     int end) {
    int64_t padded = (int64_t)groups * width;
    for (int o = begin; o < end; o++)
        y[o] = output(output_sum(counts, w + o * padded, scale + o, out, groups, width, overflows, overflowed), v_th,
                      bias, o);
}

/* The output head's input: one token's last state x (in_features) in int16 steps of max|x| / limit, limit as fine
 * as int32 sums allow (29,000 steps at SmolLM2's 576 inputs; PyTorch's path rounds x to bfloat16, 256 steps per power
 * of two), so the head is the same exact integer sums as the projections. Returns the step. */
float head_counts(const float *x, int in_features, int width, int16_t *counts) {
    float largest = 0.0f;
    for (int i = 0; i < in_features; i++) largest = fmaxf(largest, fabsf(x[i]));
    double limit = fmin(32767.0, 2147483647.0 / (127.0 * width));
    float step = largest > 0.0f ? (float)(largest / limit) : 1.0f;
    for (int i = 0; i < in_features; i++) counts[i] = (int16_t)nearbyintf(x[i] / step);
    for (int i = in_features; i < width; i++) counts[i] = 0;
    return step;
}

/* Logits [begin, end): logits[t] = scale[t] * step * sum_i w[t, i] counts[i], rows of w (vocab, width) int8. */
void head_rows(const int16_t *counts, float step, const int8_t *w, const uint16_t *scale, int width, float *logits,
               int begin, int end) {
    for (int t = begin; t < end; t++)
        logits[t] = output_sum(counts, w + (int64_t)t * width, scale + t, 1, 1, width, NULL, 0) * step;
}
