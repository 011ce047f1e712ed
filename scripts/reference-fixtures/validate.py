"""Reproduce a fixture set with ref.py: python3 validate.py DIR"""
import json, sys, os, zipfile
import torch
sys.path.insert(0, os.path.dirname(__file__))
from ref import *

torch.set_grad_enabled(True)
d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../shared/fixtures/reference')
ccfg = json.load(open(f'{d}/clip_config.json'))
vcfg = json.load(open(f'{d}/vqgan_config.json'))
clip = CLIPModel(ccfg)
vq = VQModel(vcfg)
cw, cmeta = read_st(f'{d}/clip.safetensors')
vw, vmeta = read_st(f'{d}/vqgan.safetensors')
if cw['logit_scale'].shape == (1,):
    cw['logit_scale'] = cw['logit_scale'].reshape(())
missing = clip.load_state_dict(cw, strict=True)
vq.load_state_dict(vw, strict=True)
clip.eval(); vq.eval()

# torch checkpoints
pt = torch.load(f'{d}/clip.pt', map_location='cpu', weights_only=True)
bad = [k for k in cw if not torch.equal(pt[k].reshape(cw[k].shape), cw[k])]
print('clip.pt keys', len(pt), 'mismatch', bad, 'extra', set(pt) - set(cw))
ck = torch.load(f'{d}/vqgan.ckpt', map_location='cpu', weights_only=True)
sd = ck['state_dict']
bad = [k for k in vw if not torch.equal(sd[k], vw[k])]
print('vqgan.ckpt top', sorted(ck.keys()), 'epoch', ck.get('epoch'), 'step', ck.get('global_step'),
      'mismatch', bad, 'extra', sorted(set(sd) - set(vw))[:5], len(set(sd) - set(vw)))

errs = {}
def cmp(name, ours, ref):
    ours = ours.detach().float(); ref = ref.float()
    assert ours.shape == ref.shape, (name, ours.shape, ref.shape)
    e = (ours - ref).abs().max().item()
    errs[name] = e
    print(f'{name:28s} max|d|={e:.3e} max|ref|={ref.abs().max().item():.3f}')

cases, _ = read_st(f'{d}/cases.safetensors')
with torch.no_grad():
    cmp('pixel_values', normalize_pixels(cases['clip.pixels_0_1']), cases['clip.pixel_values'])
    ie = clip.image_embeds(cases['clip.pixel_values'])
    te = clip.text_embeds(cases['clip.input_ids'])
    cmp('image_embeds', ie, cases['clip.image_embeds'])
    cmp('text_embeds', te, cases['clip.text_embeds'])
    cmp('logits_per_image', clip.logits_per_image(ie, te), cases['clip.logits_per_image'])
    h = vq.encode_h(cases['vqgan.x'])
    cmp('vqgan.h', h, cases['vqgan.h'])
    idx = vq.quantize.indices(h)
    print('vqgan.indices equal:', torch.equal(idx, cases['vqgan.indices']))
    zq = vq.quantize.lookup(idx)
    cmp('vqgan.z_q', zq, cases['vqgan.z_q'])
    cmp('vqgan.decoded', vq.decode(cases['vqgan.z_q']), cases['vqgan.decoded'])

tc = json.load(open(f'{d}/tokenizer_cases.json'))
ok = sum(tokenize(c['text'], len(c['ids']))[0].tolist() == c['ids'] for c in tc)
print(f'tokenizer {ok}/{len(tc)}')
for c in tc:
    if tokenize(c['text'], len(c['ids']))[0].tolist() != c['ids']:
        print('  MISMATCH', repr(c['text']))
print('input_ids == first 5 tokenizer cases:', torch.equal(cases['clip.input_ids'], torch.tensor([c['ids'] for c in tc[:5]])))

g, gmeta = read_st(f'{d}/guided.safetensors')
prompts = json.loads(gmeta['prompts'])
print('prompts', prompts)
out, frac = guided_step(vq, clip, g['z'], prompts)
print(f'fraction of raw outside [0,1]: {frac:.3f}')
print('guided indices equal:', torch.equal(out['indices'], g['indices']))
for k in ['image', 'image_embeds', 'text_embeds', 'loss', 'grad_z']:
    cmp('guided.' + k, out[k], g[k])
gz, rz = out['grad_z'].flatten(), g['grad_z'].flatten()
print('grad_z cosine', F.cosine_similarity(gz, rz, dim=0).item(), 'rel max', ((gz - rz).abs().max() / rz.abs().max()).item())
print('loss', out['loss'].item(), g['loss'].item())
