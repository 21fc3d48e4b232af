/* SpikingBrain's projections for a few tokens at a time (decoding), fused in one pass over the weights.
 *
 * Built by core/models/native.py with the machine's C compiler: -O3, OpenMP, and AVX-512, AVX2 or SSE4.1 where the
 * CPU runs them (gcc vectorizes the integer dot products; AVX-512 is timed against AVX2 once, faster on some CPUs
 * and slower on others).
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

float from_bfloat16(uint16_t bits) {  /* the model's scales are bfloat16: the top half of an fp32 (decode_step.c too) */
    uint32_t word = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &word, sizeof value);
    return value;
}

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

/* One output's sum over the groups of one token's counts c, each group's products summed exactly in int32:
 * sum_g scale[g * scale_stride] * sum_i w[g, i] c[g, i], w one run of groups * width weights. gcc vectorizes it.
 * Hand-written AVX2 and AVX-512 VNNI loops that kept four outputs' additions in flight were faster on weights in
 * cache but 2-3x slower on weights streamed from memory, as decoding streams them: reading four rows in turn defeats
 * the hardware prefetcher, and one row after another streams at about 17 GB/s on one core here. */
static float output_sum(const int16_t *c, const int8_t *w, const uint16_t *scale, int scale_stride, int groups,
                        int width, const Overflow *overflows, int overflowed) {
    float sum = 0.0f;
    for (int g = 0; g < groups; g++) {
        const int8_t *wg = w + (int64_t)g * width;
        const int16_t *cg = c + (int64_t)g * width;
        int32_t dot = 0;
        for (int i = 0; i < width; i++) dot += (int32_t)wg[i] * (int32_t)cg[i];
        for (; overflowed > 0 && overflows->index < (g + 1) * width; overflows++, overflowed--)
            dot += (int32_t)w[overflows->index] * overflows->rest;  /* in input order: each in its own group */
        sum = fmaf(from_bfloat16(scale[(int64_t)g * scale_stride]), (float)dot, sum);  /* fused: as output_sums4 */
    }
    return sum;
}

/* An output from its sum: one fused multiply-add, so that every path rounds it alike. */
static float output(float sum, float v_th, const float *bias, int o) {
    return fmaf(sum, v_th, bias ? bias[o] : 0.0f);
}

/* The same sums for four tokens at once (a prompt's), each the very same arithmetic as output_sum's: every weight is
 * read and widened once for the four, which gcc keeps in four vector accumulators. c holds the four tokens' counts,
 * `stride` apart; sums gets the four results. */
static void output_sums4(const int16_t *c, int64_t stride, const int8_t *w, const uint16_t *scale, int scale_stride,
                         int groups, int width, Overflow (*overflows)[MAX_OVERFLOWS], const int *overflowed,
                         float sums[4]) {
    const int16_t *c0 = c, *c1 = c + stride, *c2 = c + 2 * stride, *c3 = c + 3 * stride;
    int next[4] = {0, 0, 0, 0};  /* each token's first overflow not yet added */
    for (int r = 0; r < 4; r++) sums[r] = 0.0f;
    for (int g = 0; g < groups; g++) {
        const int8_t *wg = w + (int64_t)g * width;
        int64_t at = (int64_t)g * width;
        int32_t dot[4] = {0, 0, 0, 0};
        for (int i = 0; i < width; i++) {
            int32_t weight = wg[i];
            dot[0] += weight * c0[at + i];
            dot[1] += weight * c1[at + i];
            dot[2] += weight * c2[at + i];
            dot[3] += weight * c3[at + i];
        }
        float group_scale = from_bfloat16(scale[(int64_t)g * scale_stride]);
        for (int r = 0; r < 4; r++) {
            for (; next[r] < overflowed[r] && overflows[r][next[r]].index < (g + 1) * width; next[r]++)
                dot[r] += (int32_t)w[overflows[r][next[r]].index] * overflows[r][next[r]].rest;
            sums[r] = fmaf(group_scale, (float)dot[r], sums[r]);
        }
    }
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
                output_sums4(counts + (int64_t)r * padded, padded, w + (int64_t)o * padded, scale + o, out, groups,
                             width, &overflows[r - first], &overflowed[r - first], sums);
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
