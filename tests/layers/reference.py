"""Loop-based numpy references that the layer tests compare against.

They read a layer's weights but share no code with it: masks are decided
element by element, softmax is over the allowed keys only.
"""

import numpy as np


def _np(x):
    return None if x is None else np.asarray(x)


def _projection(dense, x, equation="btd,dhk->bthk"):
    kernel, *bias = [np.asarray(w, dtype=np.float64) for w in dense.get_weights()]
    y = np.einsum(equation, x, kernel)
    return y + bias[0] if bias else y


def allowed(b, i, j, t, s, q_pad, k_pad, custom, causal, q_seg, k_seg, offset=None,
            window=None):
    """Query i sits at key position i + offset (default 0: top left, Keras'
    rule and the layer's default; s - t is bottom right)."""
    position = i + (0 if offset is None else offset)
    if q_pad is not None and not q_pad[b, i]:
        return False
    if k_pad is not None and not k_pad[b, j]:
        return False
    if custom is not None and not custom[b, i, j]:
        return False
    if causal and j > position:
        return False
    if window is not None and abs(position - j) >= window:
        return False
    if q_seg is not None and (q_seg[b, i] == 0 or q_seg[b, i] != k_seg[b, j]):
        return False
    return True


def brute_force_attention(layer, query, value, q_pad=None, k_pad=None, custom=None,
                          causal=False, q_seg=None, k_seg=None, offset=None, window=None):
    """Returns (output [B, T, D], probabilities [B, H, T, S]) in float64."""
    query = np.asarray(query, np.float64)
    value = np.asarray(value, np.float64)
    q = _projection(layer._query_dense, query)
    k = _projection(layer._key_dense, value)
    v = _projection(layer._value_dense, value)
    b_size, t, heads, key_dim = q.shape
    s = k.shape[1]
    probs = np.zeros((b_size, heads, t, s))
    for b in range(b_size):
        for h in range(heads):
            for i in range(t):
                keys = [j for j in range(s) if allowed(
                    b, i, j, t, s, _np(q_pad), _np(k_pad), _np(custom), causal,
                    _np(q_seg), _np(k_seg), offset, window)]
                if not keys:
                    continue
                logits = np.array([q[b, i, h] @ k[b, j, h] for j in keys]) / np.sqrt(key_dim)
                e = np.exp(logits - logits.max())
                probs[b, h, i, keys] = e / e.sum()
    context = np.einsum("bhts,bshd->bthd", probs, v)
    return _projection(layer._output_dense, context, "bthk,hkd->btd"), probs
