/* SpikingBrain's projections with 4-bit weights: GGUF's Q4_1 form, w = d q + m with q in 0..15 and a float16 scale d
 * and minimum m per group of 32 inputs (5 bits a weight where INT8 with a scale per 128 takes 8.1). The embedding and
 * the head stay INT8 (spike_kernel.c): in 4 bits they cost SmolLM2 11% more perplexity, the projections 0.4%.
 *
 * Decoding reads every weight once a token, and on a CPU without AVX-512 that is bound by memory: SmolLM2's INT8
 * weights stream at about 13 GB/s on two cores here, as llama.cpp's Q4_1 does, so the fewer bytes win. The spike counts
 * are int8 here, so each group's product is two AVX2 byte instructions: maddubs (the nibbles, unsigned, times the
 * counts, signed, in pairs: |15 * 127 * 2| fits int16) and madd into 8 exact int32 lanes. The lanes are scaled into
 * fp32 per group, as llama.cpp's Q4_1 x Q8_1 does, and the threshold once at the end:
 *   y = v_th sum_g (d_g sum_i q_gi c_gi + m_g sum_i c_gi),
 * every sum over i an exact integer, the scaling and the sum over groups rounded in fp32.
 *
 * Spike counts past +-127 (outlier inputs: |c| <= k * in_features) keep +-127 in the int8 counts and the rest in a
 * list added row by row, exactly as spike_kernel.c does past int16.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "spike_kernel.h"

#if defined(__AVX2__) || defined(__AVX512BW__)
#include <immintrin.h>
#endif

#define GROUP 32

static inline float from_float16(uint16_t bits) {  /* inline: a call per group cost a third of the speed */
#if defined(__AVX2__) && (defined(__F16C__) || defined(_MSC_VER))
    return _cvtsh_ss(bits);
#else
    uint32_t sign = (uint32_t)(bits & 0x8000) << 16, exponent = (bits >> 10) & 0x1f, mantissa = bits & 0x3ff, word;
    if (exponent == 0x1f) word = sign | 0x7f800000u | (mantissa << 13);  /* inf, nan */
    else if (exponent) word = sign | ((exponent + 112) << 23) | (mantissa << 13);
    else if (!mantissa) word = sign;
    else {  /* subnormal: normalise */
        int shift = 0;
        while (!(mantissa & 0x400)) mantissa <<= 1, shift++;
        word = sign | ((uint32_t)(113 - shift) << 23) | ((mantissa & 0x3ff) << 13);
    }
    float value;
    memcpy(&value, &word, sizeof value);
    return value;
#endif
}

/* One token's spike counts as int8: v_th as spike_code's, counts past +-127 split off into `overflows`, and every
 * group's sum of its true counts (for the minimum's term). Returns v_th. */
float spike_code_q4(const float *x, int in_features, int groups, float k, const float *norm_weight, float norm_eps,
                    Q4Input *in) {
    float rms, v_th = spike_threshold_of(x, in_features, k, norm_weight, norm_eps, &rms);
    in->overflowed = 0, in->v_th = v_th;
    memset(in->sums, 0, groups * sizeof(float));
    for (int i = 0; i < in_features; i++) {
        float count = nearbyintf(input_at(x, i, rms, norm_weight) / v_th);  /* half to even, as torch.round */
        in->sums[i / GROUP] += count;  /* exact: integers far below 2^24 */
        if (fabsf(count) > 127.0f) {
            float kept = count > 0 ? 127.0f : -127.0f;
            if (in->overflowed < MAX_Q4_OVERFLOWS)
                in->overflows[in->overflowed++] = (Overflow){i, (int32_t)(count - kept)};
            count = kept;
        }
        in->counts[i] = (int8_t)count;
    }
    for (int i = in_features; i < groups * GROUP; i++) in->counts[i] = 0;
    return v_th;
}

/* One output's sums for `tokens` inputs (1 to 4: a prompt's tokens share each weight's load and unpacking), each
 * token's the very same arithmetic whatever `tokens` is. w is the output's groups * 16 bytes (byte j of a group holds
 * input j in its low nibble and input j + 16 in its high one, as GGUF lays Q4_1 out), dm its groups' (d, m) float16
 * pairs. */
static inline void q4_outputs(const Q4Input *in, int tokens, const uint8_t *w, const uint16_t *dm, int groups,
                              float *sums) {
    float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#if defined(__AVX2__)
    const __m256i low = _mm256_set1_epi8(15), ones = _mm256_set1_epi16(1);
    __m256 lanes[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    int g = 0;
#if defined(__AVX512BW__)
    /* Two groups a step in 512-bit registers: their 32 bytes of nibbles as 64 weights in input order, times both
     * groups' counts, into 16 exact int32 lanes (8 a group), scaled by each group's d. */
    __m512 wide[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    const __m512i low512 = _mm512_set1_epi8(15);
    const __m512i d_lanes = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
#if !defined(__AVX512VNNI__)
    const __m512i ones512 = _mm512_set1_epi16(1);
#endif
    for (; g + 2 <= groups; g += 2) {
        __m256i bytes = _mm256_loadu_si256((const __m256i *)(w + g * 16));
        __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(bytes), _mm256_srli_epi16(bytes, 4), 1);
        /* 128-bit lanes: low nibbles of g, of g + 1, high of g, of g + 1 -> g's inputs 0-15, 16-31, then g + 1's */
        __m512i q = _mm512_and_si512(_mm512_shuffle_i64x2(both, both, _MM_SHUFFLE(3, 1, 2, 0)), low512);
        __m128 dm4 = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(dm + 2 * g)));  /* d, m of g; d, m of g + 1 */
        __m512 d = _mm512_permutexvar_ps(d_lanes, _mm512_castps128_ps512(dm4));
        float m0 = _mm_cvtss_f32(_mm_shuffle_ps(dm4, dm4, 1)), m1 = _mm_cvtss_f32(_mm_shuffle_ps(dm4, dm4, 3));
        for (int t = 0; t < tokens; t++) {
            __m512i c = _mm512_loadu_si512((const void *)(in[t].counts + g * GROUP));
#if defined(__AVX512VNNI__)
            __m512i dots = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, c);
#else
            __m512i dots = _mm512_madd_epi16(_mm512_maddubs_epi16(q, c), ones512);
#endif
            wide[t] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dots), wide[t]);
            sum[t] = fmaf(m0, in[t].sums[g], sum[t]);
            sum[t] = fmaf(m1, in[t].sums[g + 1], sum[t]);
        }
    }
    for (int t = 0; t < tokens; t++) sum[t] += _mm512_reduce_add_ps(wide[t]);
#endif
    for (; g < groups; g++) {
        __m128i bytes = _mm_loadu_si128((const __m128i *)(w + g * 16));
        __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(bytes), _mm_srli_epi16(bytes, 4), 1);
        __m256i q = _mm256_and_si256(both, low);  /* inputs 0..15, then 16..31 (not _mm256_set_m128i: gcc 8+) */
        float d = from_float16(dm[2 * g]), m = from_float16(dm[2 * g + 1]);
        for (int t = 0; t < tokens; t++) {
            __m256i c = _mm256_loadu_si256((const __m256i *)(in[t].counts + g * GROUP));
            __m256i dots = _mm256_madd_epi16(_mm256_maddubs_epi16(q, c), ones);  /* 8 exact int32 partial sums */
            lanes[t] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dots), lanes[t]);
            sum[t] = fmaf(m, in[t].sums[g], sum[t]);
        }
    }
    for (int t = 0; t < tokens; t++) {
        __m128 half = _mm_add_ps(_mm256_castps256_ps128(lanes[t]), _mm256_extractf128_ps(lanes[t], 1));
        half = _mm_hadd_ps(half, half);
        sum[t] += _mm_cvtss_f32(_mm_hadd_ps(half, half));
    }
#else
    for (int g = 0; g < groups; g++) {
        const uint8_t *wg = w + g * 16;
        float d = from_float16(dm[2 * g]), m = from_float16(dm[2 * g + 1]);
        for (int t = 0; t < tokens; t++) {
            const int8_t *cg = in[t].counts + g * GROUP;
            int32_t dot = 0;
            for (int i = 0; i < 16; i++) dot += (wg[i] & 15) * cg[i] + (wg[i] >> 4) * cg[i + 16];
            sum[t] = fmaf(d, (float)dot, sum[t]);
            sum[t] = fmaf(m, in[t].sums[g], sum[t]);
        }
    }
#endif
    for (int t = 0; t < tokens; t++) {
        for (int r = 0; r < in[t].overflowed; r++) {  /* the counts' rest past +-127: its weight's nibble times it */
            int index = in[t].overflows[r].index, g = index / GROUP, j = index % GROUP;
            uint8_t byte = w[g * 16 + (j & 15)];
            int32_t q = j < 16 ? byte & 15 : byte >> 4;
            sum[t] = fmaf(from_float16(dm[2 * g]), (float)(q * in[t].overflows[r].rest), sum[t]);
        }
        sums[t] = sum[t] * in[t].v_th;
    }
}

/* Outputs [begin, end) of one token: y[o] = its sum + bias[o]; w (out, groups * 16), dm (out, groups, 2). */
void q4_rows(const Q4Input *in, const uint8_t *w, const uint16_t *dm, int groups, const float *bias, float *y,
             int begin, int end) {
    for (int o = begin; o < end; o++) {
        float sum;
        q4_outputs(in, 1, w + (int64_t)o * groups * 16, dm + (int64_t)o * groups * 2, groups, &sum);
        y[o] = sum + (bias ? bias[o] : 0.0f);
    }
}

/* x (rows, in_features) fp32 spike-coded (after the RMS norm if norm_weight) through 4-bit weights: y (rows, out).
 * A few tokens at a time: decoding per projection, and a prompt's short turn. */
EXPORT void q4_linear(const float *x, int rows, int in_features, const float *norm_weight, float norm_eps, float k,
                      const uint8_t *w, const uint16_t *dm, int groups, int out, const float *bias, float *y,
                      int threads) {
    size_t counts = (size_t)groups * GROUP, sums = groups * sizeof(float);
    size_t overflows = MAX_Q4_OVERFLOWS * sizeof(Overflow);
    char *room = malloc(4 * (counts + sums + overflows));  /* one block: the overflows, the sums, then the counts */
    if (!room) {
        for (int64_t i = 0; i < (int64_t)rows * out; i++) y[i] = NAN;  /* never silently wrong */
        return;
    }
    Q4Input in[4];
    for (int t = 0; t < 4; t++)
        in[t] = (Q4Input){(int8_t *)(room + 4 * (overflows + sums) + t * counts),
                          (float *)(room + 4 * overflows + t * sums), (Overflow *)(room + t * overflows), 0, 0.0f};
    for (int first = 0; first < rows; first += 4) {
        int tokens = rows - first < 4 ? rows - first : 4;
        for (int t = 0; t < tokens; t++) {
            const float *xt = x + (int64_t)(first + t) * in_features;
            spike_code_q4(xt, in_features, groups, k, norm_weight, norm_eps, &in[t]);
        }
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
        for (int o = 0; o < out; o++) {
            float sums[4];
            const uint8_t *wo = w + (int64_t)o * groups * 16;
            const uint16_t *dmo = dm + (int64_t)o * groups * 2;
            if (tokens == 4) q4_outputs(in, 4, wo, dmo, groups, sums);  /* constant counts: gcc unrolls each */
            else for (int t = 0; t < tokens; t++) q4_outputs(in + t, 1, wo, dmo, groups, sums + t);
            for (int t = 0; t < tokens; t++) y[(int64_t)(first + t) * out + o] = sums[t] + (bias ? bias[o] : 0.0f);
        }
    }
    free(room);
}
