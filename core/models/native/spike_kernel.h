/* What spike_kernel.c, decode_step.c and team.c share. */
#include <stdint.h>
#include <string.h>

/* What Python calls through ctypes: a Windows DLL exports only what is marked. */
#ifdef _WIN32
#define EXPORT __declspec(dllexport)
#else
#define EXPORT
#endif

#define MAX_OVERFLOWS 256 /* (k + 1) * in_features / 32767 at most; native.py refuses layers that could pass it */
typedef struct {
    int index;    /* the input */
    int32_t rest; /* its count less the +-32767 kept in the int16 counts */
} Overflow;

/* The model's scales are bfloat16: the top half of an fp32. Inline: a call per group of 128 cost 1% of decoding. */
static inline float from_bfloat16(uint16_t bits) {
    uint32_t word = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &word, sizeof value);
    return value;
}
float inverse_rms(const float *x, int n, float eps);
float spike_threshold_of(const float *x, int n, float k, const float *norm_weight, float norm_eps, float *rms);

/* The input as a projection reads it: x itself, or RMS-normalised first (the llama block's norm, fused into the
 * projection so that decoding does not pay for it as separate operations): x * rms * norm_weight, rms being
 * 1 / sqrt(mean(x^2) + eps). */
static inline float input_at(const float *x, int i, float rms, const float *norm_weight) {
    return norm_weight ? (x[i] * rms) * norm_weight[i] : x[i];
}
float spike_code(const float *x, int in_features, int padded, float k, const float *norm_weight, float norm_eps,
                 int16_t *counts, Overflow *overflows, int *overflowed);
void projection_rows(const int16_t *counts, const Overflow *overflows, int overflowed, float v_th, const int8_t *w,
                     const uint16_t *scale, int groups, int out, int width, const float *bias, float *y, int begin,
                     int end);
float head_counts(const float *x, int in_features, int width, int16_t *counts);
void head_rows(const int16_t *counts, float step, const int8_t *w, const uint16_t *scale, int width, float *logits,
               int begin, int end);
EXPORT void spiking_linear(const float *x, int rows, int in_features, const float *norm_weight, float norm_eps,
                           float k, const int8_t *w, const uint16_t *scale, int groups, int out, int width,
                           const float *bias, float *y, int16_t *counts, float *v_th, int threads);

/* 4-bit weights (q4_kernel.c): one token's spike counts as int8, with each group of 32's sum. */
#define MAX_Q4_OVERFLOWS 1024 /* (k + 1) * in_features / 127 at most; SpikingLinear.use_kernel refuses layers past it */
typedef struct {
    int8_t *counts;   /* groups * 32, zero past the input */
    float *sums;      /* per group: the sum of its true counts (an integer) */
    Overflow *overflows;
    int overflowed;
    float v_th;
} Q4Input;

float spike_code_q4(const float *x, int in_features, int groups, float k, const float *norm_weight, float norm_eps,
                    Q4Input *in);
void q4_rows(const Q4Input *in, const uint8_t *w, const uint16_t *dm, int groups, const float *bias, float *y,
             int begin, int end);

typedef void (*RowsWork)(void *job, int begin, int end);
void team_run(int threads, RowsWork work, void *job, int rows, int chunk);
