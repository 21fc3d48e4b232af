/* One decoding step of a llama-family SpikingBrain (Llama, Qwen2, Qwen3, Gemma 3) in one call: embedding, every
 * block (norms, spiking projections, q/k norms, RoPE, the KV cache, attention, the gated MLP) and the output head.
 *
 * Token by token, the network's arithmetic is small and PyTorch's dispatch of some twenty operations a layer cost as
 * much as the projections themselves. Here the projections are spiking_linear (spike_kernel.c, the same exact
 * integer sums the per-projection path uses); everything else is fp32 as the PyTorch model computes it, up to the
 * order of additions. Sampling stays with the caller, which reads the logits.
 */
#include <math.h>
#include <string.h>

#include "spike_kernel.h"

/* Chunks are claimed one at a time (team.c), so a preempted thread holds up half its share at most; fewer, longer
 * chunks stream faster (SmolLM2 on 2 threads: 1 a thread 168 tokens/s, 2 161, 4 148, 8 132). */
#define CHUNKS_PER_THREAD 2

typedef struct {
    const int8_t *weight;  /* (out, groups, width) int8; 4-bit: (out, groups * 16) bytes (q4_kernel.c) */
    const uint16_t *scale; /* (groups, out) bfloat16; 4-bit: NULL */
    const uint16_t *dm;    /* 4-bit: (out, groups, 2) float16 scales and minimums; INT8: NULL */
    const float *bias;     /* (out) or NULL */
    int in_features, groups, out, width;
} Projection;

typedef struct {
    Projection qkv, o, up, down;
    const float *attn_norm, *mlp_norm;          /* applied by the qkv and up projections as they spike-code */
    const float *attn_out_norm, *mlp_out_norm;  /* Gemma 3's sandwich norms, or NULL */
    const float *q_norm, *k_norm;               /* per-head norms (Qwen3, Gemma 3), or NULL */
    const float *inv_freq;                      /* (head_dim / 2) RoPE frequencies, as PyTorch computed them */
    int window;                                 /* a sliding layer's reach in tokens; 0: every token */
} Layer;

typedef struct {
    int n_layer, n_embd, n_head, n_kv_head, head_dim, intermediate, gelu;
    float norm_eps, spike_k, embed_scale, attn_scale;
    const int8_t *embed;           /* (vocab, embed_width) int8 rows, also the head when tied (never 4-bit) */
    const uint16_t *embed_scales;  /* (vocab) bfloat16 */
    int embed_width;
    const int8_t *head;            /* (vocab, head_width) */
    const uint16_t *head_scales;
    int head_width, vocab;
    const float *final_norm;
    const Layer *layers;
    float *scratch;                /* decode_scratch_floats(net, context) floats */
    int16_t *counts;               /* the widest projection input's padded counts, or the head's */
    Q4Input q4;                    /* the same for 4-bit projections: room for the widest input */
    int threads;
    int64_t *tally;                /* or NULL; else per kind of projection (qkv, o, up, down): counts, zero counts */
} Network;

EXPORT long decode_scratch_floats(const Network *net, int context) {
    long qkv = (long)(net->n_head + 2 * net->n_kv_head) * net->head_dim;
    return 3L * net->n_embd + qkv + (long)net->n_head * net->head_dim + 2L * net->intermediate +
           (long)net->n_head * context; /* every head's attention scores */
}

typedef struct {
    const Projection *p;
    const int16_t *counts;
    const Overflow *overflows;
    int overflowed;
    float v_th, *y;
} ProjectionJob;

typedef struct {
    const Projection *p;
    const Q4Input *in;
    float *y;
} Q4Job;

static void q4_chunk(void *job, int begin, int end) {
    const Q4Job *j = job;
    q4_rows(j->in, (const uint8_t *)j->p->weight, j->p->dm, j->p->groups, j->p->bias, j->y, begin, end);
}

static void projection_chunk(void *job, int begin, int end) {
    const ProjectionJob *j = job;
    const Projection *p = j->p;
    projection_rows(j->counts, j->overflows, j->overflowed, j->v_th, p->weight, p->scale, p->groups, p->out, p->width,
                    p->bias, j->y, begin, end);
}

static int chunk_of(int rows, int threads) {
    int chunks = threads * CHUNKS_PER_THREAD;
    return (rows + chunks - 1) / chunks;
}

static void project(const Network *net, const Projection *p, int kind, const float *x, const float *norm, float *y) {
    if (p->dm) {
        Q4Input in = net->q4;  /* its buffers; the overflow count is this input's */
        Q4Job job = {p, &in, y};
        spike_code_q4(x, p->in_features, p->groups, net->spike_k, norm, net->norm_eps, &in);
        team_run(net->threads, q4_chunk, &job, p->out, chunk_of(p->out, net->threads));
    } else {
        Overflow overflows[MAX_OVERFLOWS];
        ProjectionJob job = {p, net->counts, overflows, 0, 0.0f, y};
        job.v_th = spike_code(x, p->in_features, p->groups * p->width, net->spike_k, norm, net->norm_eps,
                              net->counts, overflows, &job.overflowed);
        team_run(net->threads, projection_chunk, &job, p->out, chunk_of(p->out, net->threads));
    }
    if (net->tally) {  /* how many inputs did not fire: work a sparse kernel could skip */
        int64_t zeros = 0;
        for (int i = 0; i < p->in_features; i++) zeros += p->dm ? net->q4.counts[i] == 0 : net->counts[i] == 0;
        net->tally[2 * kind] += p->in_features;
        net->tally[2 * kind + 1] += zeros;
    }
}

static void rms_norm(float *x, int n, const float *weight, float eps) {  /* in place */
    float inverse = inverse_rms(x, n, eps);
    for (int i = 0; i < n; i++) x[i] = (x[i] * inverse) * weight[i];
}

static void rope(float *x, int head_dim, const float *inv_freq, int position) {  /* Hugging Face's rotate-half */
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float angle = (float)position * inv_freq[i];
        float c = cosf(angle), s = sinf(angle), a = x[i], b = x[i + half];
        x[i] = a * c - b * s;
        x[i + half] = b * c + a * s;
    }
}

typedef struct {
    const Network *net;
    const float *q, *keys, *values;
    int capacity, position, first;
    float *scores, *out; /* scores: (n_head, position + 1) */
} AttentionJob;

static void attention_heads(void *job, int begin, int end) {
    const AttentionJob *j = job;
    int hd = j->net->head_dim, per_kv = j->net->n_head / j->net->n_kv_head;
    float scale = j->net->attn_scale;
    for (int h = begin; h < end; h++) {
        const float *qh = j->q + (long)h * hd;
        const float *kh = j->keys + (long)(h / per_kv) * j->capacity * hd;
        const float *vh = j->values + (long)(h / per_kv) * j->capacity * hd;
        float *scores = j->scores + (long)h * (j->position + 1), top = -INFINITY;
        for (int t = j->first; t <= j->position; t++) {
            const float *kt = kh + (long)t * hd;
            float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
            for (int d = 0; d < hd; d++) dot += qh[d] * kt[d];
            scores[t] = dot * scale;
            if (scores[t] > top) top = scores[t];
        }
        float total = 0.0f;
        for (int t = j->first; t <= j->position; t++) total += scores[t] = expf(scores[t] - top);
        float *oh = j->out + (long)h * hd;
        for (int d = 0; d < hd; d++) oh[d] = 0.0f;
        for (int t = j->first; t <= j->position; t++) {
            const float *vt = vh + (long)t * hd;
            float p = scores[t] / total;
            for (int d = 0; d < hd; d++) oh[d] += p * vt[d];
        }
    }
}

static void attend(const Network *net, const Layer *layer, const float *q, const float *keys, const float *values,
                   int capacity, int position, float *scores, float *out) {
    int first = layer->window && position + 1 > layer->window ? position + 1 - layer->window : 0;
    AttentionJob job = {net, q, keys, values, capacity, position, first, scores, out};
    /* in the caller alone while the context is short (under 4,096 scores a layer): too little work to hand out */
    int threads = (long)(position + 1 - first) * net->n_head < 4096 ? 1 : net->threads;
    team_run(threads, attention_heads, &job, net->n_head, 1);
}

typedef struct {
    const Network *net;
    const int16_t *counts;
    float step, *logits;
} HeadJob;

static void head_chunk(void *job, int begin, int end) {
    const HeadJob *j = job;
    head_rows(j->counts, j->step, j->net->head, j->net->head_scales, j->net->head_width, j->logits, begin, end);
}

static float gate(float g, int gelu) {
    if (gelu) return 0.5f * g * (1.0f + tanhf(0.7978845608028654f * (g + 0.044715f * g * g * g)));
    return g / (1.0f + expf(-g));
}

/* The token at `position` (the cache's length before it): its keys and values are written at that position of every
 * layer's cache (keys[l], values[l]: (n_kv_head, capacities[l], head_dim) fp32), and its logits to `logits`. */
EXPORT void decode_step(const Network *net, int token, int position, float *const *keys,
                        float *const *values, const int *capacities, float *logits) {
    int C = net->n_embd, hd = net->head_dim, q_width = net->n_head * hd, kv_width = net->n_kv_head * hd;
    float *x = net->scratch, *branch = x + C, *last = branch + C, *qkv = last + C;
    float *attended = qkv + q_width + 2 * kv_width, *gated = attended + q_width;
    float *scores = gated + 2L * net->intermediate;
    const int8_t *row = net->embed + (long)token * net->embed_width;
    float row_scale = from_bfloat16(net->embed_scales[token]);
    for (int i = 0; i < C; i++) x[i] = (float)row[i] * row_scale;
    if (net->embed_scale != 1.0f)
        for (int i = 0; i < C; i++) x[i] *= net->embed_scale;
    for (int l = 0; l < net->n_layer; l++) {
        const Layer *layer = net->layers + l;
        project(net, &layer->qkv, 0, x, layer->attn_norm, qkv);
        float *q = qkv, *k = qkv + q_width, *v = k + kv_width;
        for (int h = 0; h < net->n_head; h++) {
            if (layer->q_norm) rms_norm(q + (long)h * hd, hd, layer->q_norm, net->norm_eps);
            rope(q + (long)h * hd, hd, layer->inv_freq, position);
        }
        for (int h = 0; h < net->n_kv_head; h++) {
            if (layer->k_norm) rms_norm(k + (long)h * hd, hd, layer->k_norm, net->norm_eps);
            rope(k + (long)h * hd, hd, layer->inv_freq, position);
            long at = ((long)h * capacities[l] + position) * hd;
            memcpy(keys[l] + at, k + (long)h * hd, hd * sizeof(float));
            memcpy(values[l] + at, v + (long)h * hd, hd * sizeof(float));
        }
        attend(net, layer, q, keys[l], values[l], capacities[l], position, scores, attended);
        project(net, &layer->o, 1, attended, NULL, branch);
        if (layer->attn_out_norm) rms_norm(branch, C, layer->attn_out_norm, net->norm_eps);
        for (int i = 0; i < C; i++) x[i] += branch[i];
        project(net, &layer->up, 2, x, layer->mlp_norm, gated);
        for (int i = 0; i < net->intermediate; i++) gated[i] = gate(gated[i], net->gelu) * gated[net->intermediate + i];
        project(net, &layer->down, 3, gated, NULL, branch);
        if (layer->mlp_out_norm) rms_norm(branch, C, layer->mlp_out_norm, net->norm_eps);
        for (int i = 0; i < C; i++) x[i] += branch[i];
    }
    memcpy(last, x, C * sizeof(float));
    rms_norm(last, C, net->final_norm, net->norm_eps);
    HeadJob head = {net, net->counts, head_counts(last, C, net->head_width, net->counts), logits};
    team_run(net->threads, head_chunk, &head, net->vocab, chunk_of(net->vocab, net->threads));
}
