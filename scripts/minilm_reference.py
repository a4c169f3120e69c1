#!/usr/bin/env python3
# Usage: python3 scripts/minilm_reference.py models/minilm "A cat sits on the mat."
# (simple lowercase words only: the tokenisation here is a whole-word vocabulary lookup)
# Pure-Python forward pass of all-MiniLM-L6-v2 (BERT, mean pooling, L2 norm) as an
# independent reference for the candle encoder. No numpy/torch available offline.
import json, struct, sys, math, array
d = sys.argv[1]; sentence = sys.argv[2]
tok = json.load(open(f"{d}/tokenizer.json"))
vocab = tok["model"]["vocab"]
words = sentence.lower().replace(".", " .").replace(",", " ,").split()
ids = [101] + [vocab[w] for w in words] + [102]
raw = open(f"{d}/model.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8+n]); base = 8 + n
def T(name):
    m = hdr[name]; s, e = m["data_offsets"]
    a = array.array("f"); a.frombytes(raw[base+s:base+e]); return a, m["shape"]
def row(a, shape, i):
    c = shape[1]; return list(a[i*c:(i+1)*c])
def linear(x, name):
    W, sh = T(name + ".weight"); b, _ = T(name + ".bias")
    out_f, in_f = sh
    res = []
    for v in x:
        r = []
        for o in range(out_f):
            off = o*in_f
            s = b[o]
            for k in range(in_f): s += W[off+k]*v[k]
            r.append(s)
        res.append(r)
    return res
def ln(x, name, eps=1e-12):
    g, _ = T(name + ".weight"); b, _ = T(name + ".bias")
    out = []
    for v in x:
        mu = sum(v)/len(v); var = sum((t-mu)**2 for t in v)/len(v)
        out.append([(t-mu)/math.sqrt(var+eps)*g[i]+b[i] for i, t in enumerate(v)])
    return out
pre = "" if "embeddings.word_embeddings.weight" in hdr else "bert."
we, ws = T(pre+"embeddings.word_embeddings.weight")
pe, ps = T(pre+"embeddings.position_embeddings.weight")
te, ts = T(pre+"embeddings.token_type_embeddings.weight")
x = []
for p, i in enumerate(ids):
    a, b, c = row(we, ws, i), row(pe, ps, p), row(te, ts, 0)
    x.append([a[k]+b[k]+c[k] for k in range(384)])
x = ln(x, pre+"embeddings.LayerNorm")
H, dh = 12, 32
for L in range(6):
    p = f"{pre}encoder.layer.{L}."
    q = linear(x, p+"attention.self.query"); k = linear(x, p+"attention.self.key"); v = linear(x, p+"attention.self.value")
    ctx = [[0.0]*384 for _ in x]
    for h in range(H):
        sl = slice(h*dh, (h+1)*dh)
        for i in range(len(x)):
            sc = [sum(a*b for a, b in zip(q[i][sl], k[j][sl]))/math.sqrt(dh) for j in range(len(x))]
            m = max(sc); e = [math.exp(s-m) for s in sc]; z = sum(e)
            for j in range(len(x)):
                w = e[j]/z
                for t in range(dh): ctx[i][h*dh+t] += w*v[j][h*dh+t]
    o = linear(ctx, p+"attention.output.dense")
    x = ln([[a+b for a, b in zip(r1, r2)] for r1, r2 in zip(o, x)], p+"attention.output.LayerNorm")
    inter = linear(x, p+"intermediate.dense")
    inter = [[0.5*t*(1+math.erf(t/math.sqrt(2))) for t in r] for r in inter]
    o = linear(inter, p+"output.dense")
    x = ln([[a+b for a, b in zip(r1, r2)] for r1, r2 in zip(o, x)], p+"output.LayerNorm")
mean = [sum(r[k] for r in x)/len(x) for k in range(384)]
nrm = math.sqrt(sum(t*t for t in mean))
emb = [t/nrm for t in mean]
print(json.dumps({"ids": ids, "first8": [round(t, 6) for t in emb[:8]], "sum": sum(emb)}))
