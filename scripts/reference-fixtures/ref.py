"""Faithful PyTorch re-implementation of HF CLIPModel, taming VQModel, OpenAI SimpleTokenizer,
and the guided step in the fixture README. Run with Debian's /usr/bin/python3."""
import gzip, html, json, math, os, struct
from functools import lru_cache

import numpy as np
import regex as re
import torch
import torch.nn as nn
import torch.nn.functional as F

BPE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../models/clip-bpe/bpe_simple_vocab_16e6.txt.gz')
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)

# ---------------------------------------------------------------- safetensors
DT = {'F32': (np.float32, torch.float32), 'I64': (np.int64, torch.int64), 'I32': (np.int32, torch.int32),
      'F64': (np.float64, torch.float64)}
RDT = {torch.float32: 'F32', torch.int64: 'I64', torch.int32: 'I32', torch.float64: 'F64'}


def read_st(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop('__metadata__', {})
    out = {}
    for k, v in h.items():
        s, e = v['data_offsets']
        npdt = DT[v['dtype']][0]
        a = np.frombuffer(b[8 + n + s:8 + n + e], dtype=npdt).reshape(v['shape']).copy()
        out[k] = torch.from_numpy(a)
    return out, meta


def write_st(path, tensors, metadata=None):
    header = {}
    if metadata is not None:
        header['__metadata__'] = metadata
    blobs = []
    off = 0
    for k in sorted(tensors):
        t = tensors[k].detach().contiguous().cpu()
        raw = t.numpy().tobytes()
        header[k] = {'dtype': RDT[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hb = json.dumps(header, separators=(',', ':')).encode()
    hb += b' ' * ((8 - len(hb) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(hb)))
        f.write(hb)
        for r in blobs:
            f.write(r)


# ---------------------------------------------------------------- CLIP (HF CLIPModel)
def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


class Attn(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h = heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x, mask=None):
        B, L, D = x.shape
        hd = D // self.h
        scale = hd ** -0.5
        q = (self.q_proj(x) * scale).view(B, L, self.h, hd).transpose(1, 2)
        k = self.k_proj(x).view(B, L, self.h, hd).transpose(1, 2)
        v = self.v_proj(x).view(B, L, self.h, hd).transpose(1, 2)
        w = q @ k.transpose(-1, -2)
        if mask is not None:
            w = w + mask
        w = w.softmax(-1)
        o = (w @ v).transpose(1, 2).reshape(B, L, D)
        return self.out_proj(o)


class MLP(nn.Module):
    def __init__(self, d, inter):
        super().__init__()
        self.fc1 = nn.Linear(d, inter)
        self.fc2 = nn.Linear(inter, d)

    def forward(self, x):
        return self.fc2(quick_gelu(self.fc1(x)))


class Layer(nn.Module):
    def __init__(self, d, heads, inter, eps):
        super().__init__()
        self.self_attn = Attn(d, heads)
        self.layer_norm1 = nn.LayerNorm(d, eps=eps)
        self.mlp = MLP(d, inter)
        self.layer_norm2 = nn.LayerNorm(d, eps=eps)

    def forward(self, x, mask=None):
        x = x + self.self_attn(self.layer_norm1(x), mask)
        return x + self.mlp(self.layer_norm2(x))


class Encoder_(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList([Layer(c['hidden_size'], c['num_attention_heads'], c['intermediate_size'],
                                           c.get('layer_norm_eps', 1e-5)) for _ in range(c['num_hidden_layers'])])

    def forward(self, x, mask=None):
        for l in self.layers:
            x = l(x, mask)
        return x


class VisionEmb(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, p = c['hidden_size'], c['patch_size']
        self.class_embedding = nn.Parameter(torch.zeros(d))
        self.patch_embedding = nn.Conv2d(c.get('num_channels', 3), d, p, stride=p, bias=False)
        n = (c['image_size'] // p) ** 2 + 1
        self.position_embedding = nn.Embedding(n, d)

    def forward(self, px):
        B = px.shape[0]
        x = self.patch_embedding(px).flatten(2).transpose(1, 2)
        cls = self.class_embedding.expand(B, 1, -1)
        x = torch.cat([cls, x], 1)
        return x + self.position_embedding.weight[None]


class VisionModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c['hidden_size']
        eps = c.get('layer_norm_eps', 1e-5)
        self.embeddings = VisionEmb(c)
        self.pre_layrnorm = nn.LayerNorm(d, eps=eps)
        self.encoder = Encoder_(c)
        self.post_layernorm = nn.LayerNorm(d, eps=eps)

    def forward(self, px):
        x = self.pre_layrnorm(self.embeddings(px))
        x = self.encoder(x)
        return self.post_layernorm(x[:, 0])


class TextEmb(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.token_embedding = nn.Embedding(c['vocab_size'], c['hidden_size'])
        self.position_embedding = nn.Embedding(c['max_position_embeddings'], c['hidden_size'])

    def forward(self, ids):
        L = ids.shape[1]
        return self.token_embedding(ids) + self.position_embedding.weight[:L][None]


class TextModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = TextEmb(c)
        self.encoder = Encoder_(c)
        self.final_layer_norm = nn.LayerNorm(c['hidden_size'], eps=c.get('layer_norm_eps', 1e-5))

    def forward(self, ids):
        x = self.embeddings(ids)
        L = ids.shape[1]
        mask = torch.full((L, L), torch.finfo(x.dtype).min).triu(1)[None, None]
        x = self.encoder(x, mask)
        x = self.final_layer_norm(x)
        return x[torch.arange(x.shape[0]), ids.argmax(-1)]


class CLIPModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        tc, vc, E = cfg['text_config'], cfg['vision_config'], cfg['projection_dim']
        self.text_model = TextModel(tc)
        self.vision_model = VisionModel(vc)
        self.visual_projection = nn.Linear(vc['hidden_size'], E, bias=False)
        self.text_projection = nn.Linear(tc['hidden_size'], E, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(cfg.get('logit_scale_init_value', 2.6592)))

    def image_embeds(self, px):
        return self.visual_projection(self.vision_model(px))

    def text_embeds(self, ids):
        return self.text_projection(self.text_model(ids))

    def logits_per_image(self, ie, te):
        ie = ie / ie.norm(dim=-1, keepdim=True)
        te = te / te.norm(dim=-1, keepdim=True)
        return self.logit_scale.exp() * ie @ te.t()


def normalize_pixels(x):
    m = torch.tensor(MEAN).view(1, 3, 1, 1)
    s = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - m) / s


# ---------------------------------------------------------------- taming VQGAN
def Normalize(c):
    return nn.GroupNorm(32, c, eps=1e-6, affine=True)


def swish(x):
    return x * torch.sigmoid(x)


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 2, 0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1), mode='constant', value=0))


class ResnetBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm1 = Normalize(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.norm2 = Normalize(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1, 1, 0)
        self.cin, self.cout = cin, cout

    def forward(self, x):
        h = self.conv1(swish(self.norm1(x)))
        h = self.conv2(swish(self.norm2(h)))  # dropout 0
        if self.cin != self.cout:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = Normalize(c)
        self.q = nn.Conv2d(c, c, 1)
        self.k = nn.Conv2d(c, c, 1)
        self.v = nn.Conv2d(c, c, 1)
        self.proj_out = nn.Conv2d(c, c, 1)

    def forward(self, x):
        h_ = self.norm(x)
        q, k, v = self.q(h_), self.k(h_), self.v(h_)
        b, c, h, w = q.shape
        q = q.reshape(b, c, h * w).permute(0, 2, 1)
        k = k.reshape(b, c, h * w)
        w_ = torch.bmm(q, k) * (int(c) ** (-0.5))
        w_ = F.softmax(w_, dim=2)
        v = v.reshape(b, c, h * w)
        w_ = w_.permute(0, 2, 1)
        h_ = torch.bmm(v, w_).reshape(b, c, h, w)
        return x + self.proj_out(h_)


class Encoder(nn.Module):
    def __init__(self, *, ch, out_ch, ch_mult, num_res_blocks, attn_resolutions, in_channels, resolution,
                 z_channels, double_z=True, dropout=0.0, **ignore):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        curr_res = resolution
        in_ch_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        for i_level in range(self.num_resolutions):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_in = ch * in_ch_mult[i_level]
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks):
                block.append(ResnetBlock(block_in, block_out))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in))
            down = nn.Module()
            down.block, down.attn = block, attn
            if i_level != self.num_resolutions - 1:
                down.downsample = Downsample(block_in)
                curr_res //= 2
            self.down.append(down)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, 3, 1, 1)

    def forward(self, x):
        hs = [self.conv_in(x)]
        for i_level in range(self.num_resolutions):
            for i_block in range(self.num_res_blocks):
                h = self.down[i_level].block[i_block](hs[-1])
                if len(self.down[i_level].attn) > 0:
                    h = self.down[i_level].attn[i_block](h)
                hs.append(h)
            if i_level != self.num_resolutions - 1:
                hs.append(self.down[i_level].downsample(hs[-1]))
        h = hs[-1]
        h = self.mid.block_1(h)
        h = self.mid.attn_1(h)
        h = self.mid.block_2(h)
        return self.conv_out(swish(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, *, ch, out_ch, ch_mult, num_res_blocks, attn_resolutions, in_channels, resolution,
                 z_channels, dropout=0.0, give_pre_end=False, **ignore):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        block_in = ch * ch_mult[self.num_resolutions - 1]
        curr_res = resolution // 2 ** (self.num_resolutions - 1)
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, 1, 1)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in)
        self.up = nn.ModuleList()
        for i_level in reversed(range(self.num_resolutions)):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks + 1):
                block.append(ResnetBlock(block_in, block_out))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in))
            up = nn.Module()
            up.block, up.attn = block, attn
            if i_level != 0:
                up.upsample = Upsample(block_in)
                curr_res *= 2
            self.up.insert(0, up)
        self.norm_out = Normalize(block_in)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, 1, 1)

    def forward(self, z):
        h = self.conv_in(z)
        h = self.mid.block_1(h)
        h = self.mid.attn_1(h)
        h = self.mid.block_2(h)
        for i_level in reversed(range(self.num_resolutions)):
            for i_block in range(self.num_res_blocks + 1):
                h = self.up[i_level].block[i_block](h)
                if len(self.up[i_level].attn) > 0:
                    h = self.up[i_level].attn[i_block](h)
            if i_level != 0:
                h = self.up[i_level].upsample(h)
        return self.conv_out(swish(self.norm_out(h)))


class Quantize(nn.Module):
    def __init__(self, n_e, e_dim):
        super().__init__()
        self.embedding = nn.Embedding(n_e, e_dim)

    def indices(self, z):  # z NCHW
        zf = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        e = self.embedding.weight
        d = (zf ** 2).sum(1, keepdim=True) + (e ** 2).sum(1) - 2 * zf @ e.t()
        return d.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])

    def lookup(self, idx):
        return self.embedding.weight[idx].permute(0, 3, 1, 2)


class VQModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        dd = cfg['ddconfig']
        self.encoder = Encoder(**dd)
        self.decoder = Decoder(**dd)
        self.quantize = Quantize(cfg['n_embed'], cfg['embed_dim'])
        self.quant_conv = nn.Conv2d(dd['z_channels'], cfg['embed_dim'], 1)
        self.post_quant_conv = nn.Conv2d(cfg['embed_dim'], dd['z_channels'], 1)

    def encode_h(self, x):
        return self.quant_conv(self.encoder(x))

    def decode(self, zq):
        return self.decoder(self.post_quant_conv(zq))


# ---------------------------------------------------------------- OpenAI SimpleTokenizer
@lru_cache()
def bytes_to_unicode():
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(2 ** 8):
        if b not in bs:
            bs.append(b)
            cs.append(2 ** 8 + n)
            n += 1
    return dict(zip(bs, [chr(n) for n in cs]))


def get_pairs(word):
    pairs = set()
    prev = word[0]
    for c in word[1:]:
        pairs.add((prev, c))
        prev = c
    return pairs


def basic_clean(text):
    try:
        import ftfy
        text = ftfy.fix_text(text)
    except ImportError:
        pass
    text = html.unescape(html.unescape(text))
    return text.strip()


def whitespace_clean(text):
    text = re.sub(r'\s+', ' ', text)
    return text.strip()


class SimpleTokenizer:
    def __init__(self, bpe_path=BPE_PATH):
        self.byte_encoder = bytes_to_unicode()
        merges = gzip.open(bpe_path).read().decode('utf-8').split('\n')
        merges = merges[1:49152 - 256 - 2 + 1]
        merges = [tuple(m.split()) for m in merges]
        vocab = list(bytes_to_unicode().values())
        vocab = vocab + [v + '</w>' for v in vocab]
        for m in merges:
            vocab.append(''.join(m))
        vocab.extend(['<|startoftext|>', '<|endoftext|>'])
        self.encoder = dict(zip(vocab, range(len(vocab))))
        self.bpe_ranks = dict(zip(merges, range(len(merges))))
        self.cache = {'<|startoftext|>': '<|startoftext|>', '<|endoftext|>': '<|endoftext|>'}
        self.pat = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", re.IGNORECASE)

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + '</w>',)
        pairs = get_pairs(word)
        if not pairs:
            return token + '</w>'
        while True:
            bigram = min(pairs, key=lambda pair: self.bpe_ranks.get(pair, float('inf')))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word = []
            i = 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                    new_word.extend(word[i:j])
                    i = j
                except ValueError:
                    new_word.extend(word[i:])
                    break
                if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
            if len(word) == 1:
                break
            pairs = get_pairs(word)
        word = ' '.join(word)
        self.cache[token] = word
        return word

    def encode(self, text):
        bpe_tokens = []
        text = whitespace_clean(basic_clean(text)).lower()
        for token in re.findall(self.pat, text):
            token = ''.join(self.byte_encoder[b] for b in token.encode('utf-8'))
            bpe_tokens.extend(self.encoder[bpe_token] for bpe_token in self.bpe(token).split(' '))
        return bpe_tokens


_TOK = None


def tokenize(texts, context_length=77):
    """clip.tokenize(..., truncate=True)"""
    global _TOK
    if _TOK is None:
        _TOK = SimpleTokenizer()
    if isinstance(texts, str):
        texts = [texts]
    sot, eot = _TOK.encoder['<|startoftext|>'], _TOK.encoder['<|endoftext|>']
    result = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, t in enumerate(texts):
        toks = [sot] + _TOK.encode(t) + [eot]
        if len(toks) > context_length:
            toks = toks[:context_length]
            toks[-1] = eot
        result[i, :len(toks)] = torch.tensor(toks)
    return result


# ---------------------------------------------------------------- guided step
class ClampWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.lo, ctx.hi = lo, hi
        ctx.save_for_backward(x)
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, g):
        x, = ctx.saved_tensors
        return g * (g * (x - x.clamp(ctx.lo, ctx.hi)) >= 0), None, None


class ReplaceGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fwd, bwd):
        return fwd

    @staticmethod
    def backward(ctx, g):
        return None, g


def guided_step(vq, clip, z, prompts, text_embeds=None):
    """prompts: list of {text, weight}. Returns dict of tensors."""
    z = z.clone().requires_grad_(True)
    idx = vq.quantize.indices(z)
    zq_raw = vq.quantize.lookup(idx)
    zq = ReplaceGrad.apply(zq_raw, z)
    raw = vq.decode(zq) * 0.5 + 0.5
    image = ClampWithGrad.apply(raw, 0.0, 1.0)
    e_img = clip.image_embeds(normalize_pixels(image))
    if text_embeds is None:
        with torch.no_grad():
            text_embeds = clip.text_embeds(tokenize([p['text'] for p in prompts]))
    loss = torch.zeros(())
    ni = F.normalize(e_img, dim=-1)
    for i, p in enumerate(prompts):
        w = float(p['weight'])
        nt = F.normalize(text_embeds[i:i + 1], dim=-1)
        d = (ni - nt).norm(dim=-1).div(2).arcsin().pow(2).mul(2)
        loss = loss + abs(w) * (math.copysign(1.0, w) * d).mean()
    loss.backward()
    frac_out = ((raw < 0) | (raw > 1)).float().mean().item()
    return {'z': z.detach(), 'indices': idx, 'image': image.detach(), 'image_embeds': e_img.detach(),
            'text_embeds': text_embeds.detach(), 'loss': loss.detach().reshape(1), 'grad_z': z.grad.detach()}, frac_out
