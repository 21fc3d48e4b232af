/* SpikingBrain's projections for a few tokens at a time (decoding), fused in one pass over the weights.
 *
 * Built by core/models/native.py with the system's C compiler: -O3, OpenMP, and AVX2 or SSE4.1 where the CPU lists
 * them (gcc vectorizes the integer dot products; AVX-512 measured slower).
 *
 * spiking_linear: each token's input x is coded as integer spike counts c = round(x / v_th), v_th = mean|x| / k,
 * and multiplied with INT8 weights that share one scale per group of `width` inputs. Each group's sum of
 * count x weight is an exact 32-bit integer (|c| <= k * in_features < 2^15, |w| <= 127, width <= 2^16), so the
 * only rounding is fp32's, in scaling and summing the groups: y = v_th * sum_g scale[g] * sum_i w[g, i] c[g, i].
 */
#include <math.h>
#include <stdint.h>

static float spike_code(const float *x, int in_features, int padded, float k, int16_t *counts) {
    double total = 0.0;  /* exact enough that v_th is mean|x| / k correctly rounded to fp32 */
    for (int i = 0; i < in_features; i++) total += fabsf(x[i]);
    float v_th = (float)(total / in_features) / k;
    if (!(v_th >= 1e-8f)) v_th = 1e-8f;  /* as clamp_min(1e-8) */
    for (int i = 0; i < in_features; i++) counts[i] = (int16_t)nearbyintf(x[i] / v_th);  /* half to even */
    for (int i = in_features; i < padded; i++) counts[i] = 0;
    return v_th;
}

/* x (rows, in_features) fp32; w (groups, out, width) int8; scale (groups, out) fp32; bias (out) or NULL;
 * y (rows, out) fp32; counts (rows, groups * width) int16 and v_th (rows) are filled for the caller too. */
void spiking_linear(const float *x, int rows, int in_features, float k, const int8_t *w, const float *scale,
                    int groups, int out, int width, const float *bias, float *y, int16_t *counts, float *v_th,
                    int threads) {
    int padded = groups * width;
    for (int r = 0; r < rows; r++)
        v_th[r] = spike_code(x + (int64_t)r * in_features, in_features, padded, k, counts + (int64_t)r * padded);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int o = 0; o < out; o++) {
        for (int r = 0; r < rows; r++) {
            const int16_t *c = counts + (int64_t)r * padded;
            float sum = 0.0f;
            for (int g = 0; g < groups; g++) {
                const int8_t *wg = w + ((int64_t)g * out + o) * width;
                const int16_t *cg = c + (int64_t)g * width;
                int32_t dot = 0;
                for (int i = 0; i < width; i++) dot += (int32_t)wg[i] * (int32_t)cg[i];
                sum += scale[(int64_t)g * out + o] * (float)dot;
            }
            y[(int64_t)r * out + o] = sum * v_th[r] + (bias ? bias[o] : 0.0f);
        }
    }
}
