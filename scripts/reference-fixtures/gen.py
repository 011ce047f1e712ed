"""Generate an alternative reference fixture set: /usr/bin/python3 gen.py setA|setB"""
import copy, json, math, os, sys
import torch
sys.path.insert(0, os.path.dirname(__file__))
from ref import *

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get('SHARED_FIXTURES', os.path.join(HERE, '../../../shared/fixtures/reference'))

EXTRA_TEXTS = [
    "Don't stop! You're, we've, I'm, they'll, he'd & it's... OK?!",
    "1234567890 3.14159 -42 2024-01-01 12:30pm 100% x² ½",
    "naïve café résumé Zürich Ångström señor façade ÉCOLE ΟΔΟΣ straße",
    "Tom &amp; Jerry said &quot;hi&quot; &#39;there&#39; caf&eacute; &lt;b&gt; &amp;lt;i&amp;gt; AT&T &copy 2024",
    "emoji time 🎨🖌️ 👩🏽‍🚀 🐱‍👤 ❤️ 🇫🇷 😀😀😀",
    "日本語のテキスト、東京タワー。中文字符 한국어 문장 ไทย العربية Русский",
    "!!!???...;;::--__((()))[[]]{{}}<<>>@@##$$%%^^**~~``||\\\\//",
    "   multiple   spaces\tand\ttabs\nand\nnewlines   ",
    "HELLO World MiXeD CaSe supercalifragilisticexpialidocious antidisestablishmentarianism",
    "hello <|endoftext|> world <|startoftext|>",
    "",
    "a",
    "https://example.com/path?query=1&x=y#frag user@mail.org @handle #hashtag",
    " ".join(["a very long prompt about a painting of a mountain lake at dawn with mist and pine trees"] * 3),
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore "
    "magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo "
    "consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla.",
    "it’s “curly”",  # placeholder, removed below (ftfy would uncurl it; no ftfy here)
    "the\u00a0non-breaking\u00a0space and tab\tend",
    "C++ & C# vs. F#; a->b => c != d == e <= f >= g",
]
EXTRA_TEXTS = [t for t in EXTRA_TEXTS if '’' not in t]

SETS = {
    'setA': dict(
        seed=1234,
        clip=dict(projection_dim=16, logit_scale=1.7,
                  text=dict(hidden_size=20, intermediate_size=72, num_attention_heads=5, num_hidden_layers=3),
                  vision=dict(hidden_size=48, intermediate_size=128, num_attention_heads=3, num_hidden_layers=3,
                              image_size=32, patch_size=8)),
        vqgan=dict(embed_dim=8, n_embed=96, ddconfig=dict(double_z=False, z_channels=8, resolution=64, in_channels=3,
                   out_ch=3, ch=32, ch_mult=[1, 1, 2, 2], num_res_blocks=2, attn_resolutions=[8], dropout=0.0)),
        vq_size=64,
        prompts=[{"text": "a watercolor painting of a lighthouse", "weight": 1.0},
                 {"text": "blurry, low quality", "weight": -0.3},
                 {"text": "sunset colors", "weight": 0.7}],
        first5=[28, 25, 19, 0, 3],
        extra_config=False,
        channels_last=False,
    ),
    'setB': dict(
        seed=98765,
        clip=dict(projection_dim=12, logit_scale=4.6052,
                  text=dict(hidden_size=16, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2),
                  vision=dict(hidden_size=32, intermediate_size=64, num_attention_heads=1, num_hidden_layers=1,
                              image_size=64, patch_size=32)),
        vqgan=dict(embed_dim=4, n_embed=50, ddconfig=dict(double_z=False, z_channels=16, resolution=32, in_channels=3,
                   out_ch=3, ch=32, ch_mult=[1, 2], num_res_blocks=3, attn_resolutions=[32, 16], dropout=0.0)),
        vq_size=32,
        prompts=[{"text": "a photo of a cat", "weight": 1.5},
                 {"text": "a dog", "weight": -1.0},
                 {"text": "text and watermark", "weight": -0.25}],
        first5=[29, 16, 30, 18, 20],
        extra_config=True,
        channels_last=True,
    ),
    'setC': dict(
        seed=4242,
        clip=dict(projection_dim=10, logit_scale=0.0,
                  text=dict(hidden_size=24, intermediate_size=50, num_attention_heads=6, num_hidden_layers=1),
                  vision=dict(hidden_size=64, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                              image_size=56, patch_size=14)),
        vqgan=dict(embed_dim=5, n_embed=17, ddconfig=dict(double_z=False, z_channels=3, resolution=32, in_channels=3,
                   out_ch=3, ch=32, ch_mult=[2, 1, 1, 2], num_res_blocks=1, attn_resolutions=[16, 4], dropout=0.0)),
        vq_size=40,
        prompts=[{"text": "an ocean", "weight": 2.0}, {"text": "fog", "weight": -1.0}],
        first5=[32, 10, 28, 0, 25],
        extra_config=False,
        channels_last=True,
        more_texts=[" ".join(["a very long prompt about a painting of a mountain lake at dawn with mist and pine trees"] * 6)],
    ),
}


def clip_config(c, extra):
    tc = dict(vocab_size=49408, hidden_size=c['text']['hidden_size'], intermediate_size=c['text']['intermediate_size'],
              num_attention_heads=c['text']['num_attention_heads'], num_hidden_layers=c['text']['num_hidden_layers'],
              max_position_embeddings=77, hidden_act='quick_gelu', layer_norm_eps=1e-05,
              bos_token_id=49406, eos_token_id=49407, pad_token_id=1)
    vc = dict(hidden_size=c['vision']['hidden_size'], intermediate_size=c['vision']['intermediate_size'],
              num_attention_heads=c['vision']['num_attention_heads'],
              num_hidden_layers=c['vision']['num_hidden_layers'], image_size=c['vision']['image_size'],
              patch_size=c['vision']['patch_size'], num_channels=3, hidden_act='quick_gelu', layer_norm_eps=1e-05)
    cfg = dict(model_type='clip', projection_dim=c['projection_dim'], logit_scale_init_value=2.6592,
               text_config=tc, vision_config=vc)
    if extra:  # keys a real HF config.json carries
        cfg = dict(_name_or_path='tiny-random-clip', architectures=['CLIPModel'], initializer_factor=1.0,
                   torch_dtype='float32', transformers_version='4.21.0.dev0', **cfg)
        for t in (tc, vc):
            t.update(attention_dropout=0.0, dropout=0.0, initializer_factor=1.0, initializer_range=0.02,
                     model_type=None, projection_dim=c['projection_dim'])
        tc['model_type'] = 'clip_text_model'
        vc['model_type'] = 'clip_vision_model'
    return cfg


def randomize(model, g, emb_std=0.5):
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.split('.')[-1]
            is_norm = any(s in name for s in ('norm', 'layer_norm', 'layrnorm', 'layernorm'))
            if is_norm and leaf == 'weight':
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif leaf == 'bias':
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif 'embedding' in name and 'patch' not in name:
                p.copy_(emb_std * torch.randn(p.shape, generator=g))
            elif p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))


def index_margin(vq, h):
    zf = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
    e = vq.quantize.embedding.weight
    d = (zf ** 2).sum(1, keepdim=True) + (e ** 2).sum(1) - 2 * zf @ e.t()
    s = d.sort(1).values
    return ((s[:, 1] - s[:, 0]) / s[:, 0].abs().clamp(min=1)).min().item()


def save_clip_pt(path, sd, cfg, channels_last):
    """q/k/v as views of one fused storage (like in_proj_weight), visual_projection as a transpose
    (like OpenAI's visual.proj), text_projection a transposed view at a non-zero storage offset."""
    out = {}
    for tower in ('vision_model', 'text_model'):
        n = cfg['vision_config' if tower == 'vision_model' else 'text_config']['num_hidden_layers']
        for i in range(n):
            pre = f'{tower}.encoder.layers.{i}.self_attn.'
            for kind in ('weight', 'bias'):
                fused = torch.cat([sd[pre + f'{x}_proj.{kind}'] for x in 'qkv'], 0).clone()
                d = fused.shape[0] // 3
                for j, x in enumerate('qkv'):
                    out[pre + f'{x}_proj.{kind}'] = fused[j * d:(j + 1) * d]
    for k, v in sd.items():
        if k in out:
            continue
        if k == 'visual_projection.weight':
            out[k] = v.t().contiguous().t()
        elif k == 'text_projection.weight':
            E, W = v.shape
            buf = torch.zeros(W + 1, E)
            buf[1:] = v.t()
            out[k] = buf[1:].t()       # offset E, strides (1, E)
        elif k == 'logit_scale':
            out[k] = v.reshape(())     # 0-d, as torch keeps it
        elif channels_last and k == 'vision_model.embeddings.patch_embedding.weight':
            out[k] = v.contiguous(memory_format=torch.channels_last)
        elif channels_last and k.endswith('mlp.fc1.weight'):
            buf = torch.zeros(v.shape[0], 2 * v.shape[1])
            buf[:, ::2] = v
            out[k] = buf[:, ::2]        # strides (2*in, 2)
        else:
            out[k] = v.clone()
    # same order as the model's state_dict
    ordered = {k: out[k] for k in sd}
    assert not any(out[k].is_contiguous() for k in ('visual_projection.weight', 'text_projection.weight'))
    torch.save(ordered, path)


def save_vqgan_ckpt(path, sd, channels_last, g):
    loss = {
        'loss.logvar': torch.zeros(()),
        'loss.perceptual_loss.net.slice1.0.weight': torch.randn(4, 3, 3, 3, generator=g),
        'loss.perceptual_loss.net.slice1.0.bias': torch.randn(4, generator=g),
        'loss.perceptual_loss.lin0.model.1.weight': torch.randn(1, 4, 1, 1, generator=g),
        'loss.discriminator.main.0.weight': torch.randn(4, 3, 4, 4, generator=g),
        'loss.discriminator.main.0.bias': torch.randn(4, generator=g),
        'loss.discriminator.main.3.weight': torch.randn(4, generator=g),
        'loss.discriminator.main.3.running_mean': torch.randn(4, generator=g),
        'loss.discriminator.main.3.running_var': torch.rand(4, generator=g),
        'loss.discriminator.main.3.num_batches_tracked': torch.tensor(1000, dtype=torch.int64),
    }
    state = {}
    for k, v in sd.items():   # taming registers encoder, decoder, loss, quantize, quant_conv, post_quant_conv
        if k.startswith('quantize.') and 'loss.logvar' not in state:
            state.update(loss)
        v = v.clone()
        if channels_last and v.dim() == 4 and v.shape[2] == 3 and k.startswith('decoder.up.0.'):
            v = v.contiguous(memory_format=torch.channels_last)
        state[k] = v
    torch.save({'epoch': 7, 'global_step': 123456, 'state_dict': state}, path)


def main(name):
    S = SETS[name]
    out = os.path.join(HERE, name)
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(S['seed'])
    torch.manual_seed(S['seed'])

    # ---------------- CLIP
    ccfg = clip_config(S['clip'], S['extra_config'])
    clip = CLIPModel(ccfg)
    randomize(clip, g)
    with torch.no_grad():
        clip.logit_scale.fill_(S['clip']['logit_scale'])
    clip.eval()
    sd = {k: v.detach().clone() for k, v in clip.state_dict().items()}
    sd['logit_scale'] = sd['logit_scale'].reshape(1)
    json.dump(ccfg, open(f'{out}/clip_config.json', 'w'), indent=1)
    write_st(f'{out}/clip.safetensors', sd, {'format': 'pt', 'layout': 'huggingface transformers CLIPModel names'})
    save_clip_pt(f'{out}/clip.pt', sd, ccfg, S['channels_last'])

    # ---------------- VQGAN
    vcfg = copy.deepcopy(S['vqgan'])
    vq = VQModel(vcfg)
    randomize(vq, g, emb_std=1.0)
    vq.eval()
    if S['extra_config']:
        vcfg['lossconfig'] = {'target': 'taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator',
                              'params': {'disc_conditional': False, 'disc_in_channels': 3, 'disc_start': 10000,
                                         'disc_weight': 0.8, 'codebook_weight': 1.0}}
    # ---------------- tokenizer cases
    shared_cases = json.load(open(f'{SHARED}/tokenizer_cases.json'))
    texts = [c['text'] for c in shared_cases] + EXTRA_TEXTS + S.get('more_texts', [])
    order = S['first5'] + [i for i in range(len(texts)) if i not in S['first5']]
    texts = [texts[i] for i in order]
    ids = tokenize(texts)
    cases_json = [{'text': t, 'ids': r.tolist()} for t, r in zip(texts, ids)]
    for c in shared_cases:   # my tokenizer must agree with the shared ones
        assert tokenize(c['text'])[0].tolist() == c['ids'], c['text']
    with open(f'{out}/tokenizer_cases.json', 'w') as f:
        f.write('[\n' + ',\n'.join(json.dumps(c, ensure_ascii=False) for c in cases_json) + '\n]\n')

    # ---------------- cases
    R = ccfg['vision_config']['image_size']
    yy, xx = torch.meshgrid(torch.linspace(0, 1, R), torch.linspace(0, 1, R), indexing='ij')
    img0 = torch.stack([xx, yy, 0.5 + 0.5 * torch.sin(6 * xx * yy)])
    img1 = torch.rand(3, R, R, generator=g)
    pixels = torch.stack([img0, img1]).float()
    pv = normalize_pixels(pixels)
    input_ids = ids[:5]
    with torch.no_grad():
        ie = clip.image_embeds(pv)
        te = clip.text_embeds(input_ids)
        logits = clip.logits_per_image(ie, te)
        # vqgan: a smooth image plus noise, in [-1, 1]
        Sz = S['vq_size']
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, Sz), torch.linspace(-1, 1, Sz), indexing='ij')
        x = torch.stack([torch.sin(3 * xx), torch.cos(2 * yy), xx * yy])[None]
        x = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
        h = vq.encode_h(x)
        # put the codebook near the distribution of h (like a trained one), keep ties far away
        for attempt in range(50):
            hf = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
            sel = torch.randint(0, hf.shape[0], (vcfg['n_embed'],), generator=g)
            vq.quantize.embedding.weight.copy_(hf[sel] + hf.std() * 0.7 * torch.randn(vcfg['n_embed'], hf.shape[1], generator=g))
            if index_margin(vq, h) > 1e-3:
                break
        print('h index margin', index_margin(vq, h))
        idx = vq.quantize.indices(h)
        zq = vq.quantize.lookup(idx)
        dec = vq.decode(zq)
    print(f'{name}: distinct indices {idx.unique().numel()}/{vcfg["n_embed"]}')
    write_st(f'{out}/cases.safetensors', {
        'clip.pixels_0_1': pixels, 'clip.pixel_values': pv, 'clip.input_ids': input_ids,
        'clip.image_embeds': ie, 'clip.text_embeds': te, 'clip.logits_per_image': logits,
        'vqgan.x': x, 'vqgan.h': h, 'vqgan.indices': idx, 'vqgan.z_q': zq, 'vqgan.decoded': dec})

    # ---------------- guided step: the decoder's output size must be CLIP's image size
    f = 2 ** (len(vcfg['ddconfig']['ch_mult']) - 1)
    zs = R // f
    assert zs * f == R
    e = vq.quantize.embedding.weight.detach()
    pick = torch.randint(0, vcfg['n_embed'], (zs * zs,), generator=g)
    zf = e[pick] + 0.25 * e.std() * torch.randn(zs * zs, e.shape[1], generator=g)
    for attempt in range(500):   # resample the positions whose nearest codes nearly tie
        d = (zf ** 2).sum(1, keepdim=True) + (e ** 2).sum(1) - 2 * zf @ e.t()
        s_ = d.sort(1).values
        bad = ((s_[:, 1] - s_[:, 0]) / s_[:, 0].abs().clamp(min=1)) <= 2e-3
        if not bad.any():
            break
        nb = int(bad.sum())
        zf[bad] = e[torch.randint(0, vcfg['n_embed'], (nb,), generator=g)] + 0.25 * e.std() * torch.randn(nb, e.shape[1], generator=g)
    z = zf.reshape(1, zs, zs, -1).permute(0, 3, 1, 2).contiguous()
    print('z index margin', index_margin(vq, z))
    # scale the decoder's conv_out so that ~10-15% of raw falls outside [0, 1]
    with torch.no_grad():
        raw = vq.decode(vq.quantize.lookup(vq.quantize.indices(z))) * 0.5 + 0.5
        w0, b0 = vq.decoder.conv_out.weight.clone(), vq.decoder.conv_out.bias.clone()
        best = None
        for sc in [0.05 * i for i in range(1, 80)]:
            r = (raw - 0.5 - b0.view(1, -1, 1, 1) * 0.5) * sc + 0.5 + b0.view(1, -1, 1, 1) * 0.5
            frac = ((r < 0) | (r > 1)).float().mean().item()
            if best is None or abs(frac - 0.13) < abs(best[1] - 0.13):
                best = (sc, frac)
        vq.decoder.conv_out.weight.mul_(best[0])
        vq.decoder.conv_out.bias.copy_(b0)
    # the decoder changed: recompute the VQGAN cases
    with torch.no_grad():
        dec = vq.decode(zq)
    vsd = {k: v.detach().clone() for k, v in vq.state_dict().items()}
    json.dump(vcfg, open(f'{out}/vqgan_config.json', 'w'), indent=1)
    write_st(f'{out}/vqgan.safetensors', vsd, {'format': 'pt', 'layout': 'taming-transformers VQModel state_dict names'})
    save_vqgan_ckpt(f'{out}/vqgan.ckpt', vsd, S['channels_last'], g)
    write_st(f'{out}/cases.safetensors', {
        'clip.pixels_0_1': pixels, 'clip.pixel_values': pv, 'clip.input_ids': input_ids,
        'clip.image_embeds': ie, 'clip.text_embeds': te, 'clip.logits_per_image': logits,
        'vqgan.x': x, 'vqgan.h': h, 'vqgan.indices': idx, 'vqgan.z_q': zq, 'vqgan.decoded': dec})

    res, frac = guided_step(vq, clip, z, S['prompts'])
    print(f'{name}: guided loss {res["loss"].item():.5f}, raw outside [0,1] {frac:.3f}, |grad_z|max {res["grad_z"].abs().max():.3e}')
    write_st(f'{out}/guided.safetensors', res, {'prompts': json.dumps(S['prompts'])})
    print(f'{name}: clip dims {ccfg["vision_config"]} {ccfg["text_config"]} E={ccfg["projection_dim"]}; vqgan {vcfg}')


if __name__ == '__main__':
    for n in sys.argv[1:]:
        main(n)
