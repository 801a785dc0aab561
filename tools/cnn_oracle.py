#!/usr/bin/python3
"""Golden data for tests/test_cnn.cpp: the tutorial's CNN (spec sections 1.2-1.6) in PyTorch.

Run with Debian's python (torch 1.13 + numpy):   /usr/bin/python3 tools/cnn_oracle.py [out_dir]
Default out_dir: tests/data/cnn (next to this script's repository root).
`/usr/bin/python3 tools/cnn_oracle.py --tutorial` instead re-runs the tutorial's own training (spec 1.5, numpy
and torch seeds 12, BCELoss; ~20 s), prints its five epoch losses (they match the tutorial's printed ones) and
the trained net's mean BCE over all 1,000 training gratings with the worst ones (writes nothing).
`/usr/bin/python3 tools/cnn_oracle.py --tutorial-rng [out_dir]` writes only the tutorial_*.npy files below.

Everything is float32 and single-threaded. The oracle makes its own fixed inputs (numpy, seeded) and writes
them as golden inputs, so the C++ side never has to reproduce numpy's or torch's RNG:

  filters.npy      (6,1,7,7) f4   the spec's filters() (T3 version, no mean subtraction)
  params0.npy      (3201,)   f4   initial parameters, flat in state_dict order:
                                  conv.weight = filters(), conv.bias ~ U(-0.1, 0.1) (non-zero on purpose, to
                                  exercise the bias path; the tutorial starts at 0), fc.* ~ U(+-1/sqrt(288)),
                                  out.* ~ U(+-1/sqrt(10)); numpy default_rng(2024)
  images.npy       (16,48,64) u1  16 gratings (tutorial grating(), float64 -> 0/1), stored as uint8 to stay small
  angles.npy       (16,)     f4   their angles in degrees
  labels.npy       (16,)     f4   angle > 0
  The fixed batch = images[0:8]:
  conv0.npy        (6,48,64) f4   conv output before ReLU of image 0 only (the full batch would be 590 KB)
  pool.npy         (8,288)   f4   maxpool(ReLU(conv)), flattened C*H*W
  fc.npy           (8,10)    f4   fc output before ReLU (what the tutorial's hook records)
  fc_relu.npy      (8,10)    f4
  logit.npy        (8,)      f4   output of the `out` module
  prob.npy         (8,)      f4   sigmoid(logit)
  loss.npy         (2,)      f4   [BCEWithLogitsLoss(logit, y) (the stable form the C++ twin computes; this is
                                  the one compared), BCELoss(sigmoid(logit), y) (the tutorial's loss, which
                                  clamps log at -100; same value away from saturation, for reference)]
  grad.npy         (3201,)   f4   d BCEWithLogitsLoss / d params, flat in state_dict order
  sgd_losses.npy   (10,)     f4   starting from params0, 10 steps of SGD(lr 5e-4, momentum 0.99, PyTorch
                                  semantics); step k uses the batch images[8*(k%2) : 8*(k%2)+8] (alternating
                                  halves of the 16-image set); loss of each step is recorded before its update.

The tutorial's random streams (spec 1.5), which host/cnn_ref.cpp reproduces bit for bit (MT19937 as torch 1.13's
CPU generator and numpy's legacy RandomState; written by main() too, and alone by --tutorial-rng):
  tutorial_init_fc.npy        (2901,)  f4  torch.manual_seed(12); CNN(48, 64): fc.weight, fc.bias, out.weight,
                                           out.bias flat (state_dict entries 300..3200 = cnn_init_params(12))
  tutorial_angles_first100.npy (100,)  f8  np.random.seed(12); ((np.random.rand(1000) - 0.5) * 180)[:100]
  tutorial_perm_epoch0.npy    (1000,)  i2  the first torch.randperm(1000) after CNN(48, 64) (epoch 0)
  tutorial_perm_epoch24.npy   (1000,)  i2  the 25th one (epoch 24, the last of the tutorial's training)
"""
import os
import sys

import numpy as np
import torch
from torch import nn

torch.set_num_threads(1)
torch.manual_seed(0)


# ---- spec 1.2: grating(angle, sf=1/28, res=0.1, patch=False), full-field branch ----
def grating(angle, sf=1 / 28, res=0.1):
    angle = np.deg2rad(angle)
    wpix, hpix = 640, 480
    xx, yy = np.meshgrid(sf * np.arange(0, wpix * res) / res, sf * np.arange(0, hpix * res) / res)
    g = np.cos(xx * np.cos(angle) + yy * np.sin(angle))
    g[g < 0] = 0
    g[g > 0] = 1
    return g.astype(np.float32)


# ---- spec 1.3: filters(out_channels=6, K=7), Tutorial 3 version ----
def filters(out_channels=6, K=7):
    grid = np.linspace(-K / 2, K / 2, K).astype(np.float32)
    xx, yy = np.meshgrid(grid, grid, indexing='ij')
    sigma = 1.1
    gaussian = np.exp(-(xx**2 + yy**2)**0.5 / (2 * sigma**2))
    wide_gaussian = np.exp(-(xx**2 + yy**2)**0.5 / (2 * (sigma * 2)**2))
    center_surround = gaussian - 0.5 * wide_gaussian
    thetas = np.linspace(0, 180, out_channels - 2 + 1)[:-1] * np.pi / 180
    gabors = np.zeros((len(thetas), K, K), np.float32)
    lam = 10
    phi = np.pi / 2
    gaussian = np.exp(-(xx**2 + yy**2)**0.5 / (2 * (sigma * 0.4)**2))
    for i, theta in enumerate(thetas):
        x = xx * np.cos(theta) + yy * np.sin(theta)
        gabors[i] = gaussian * np.cos(2 * np.pi * x / lam + phi)
    f = np.concatenate((center_surround[np.newaxis, :, :], -1 * center_surround[np.newaxis, :, :], gabors), axis=0)
    f /= np.abs(f).max(axis=(1, 2))[:, np.newaxis, np.newaxis]
    return torch.from_numpy(f).unsqueeze(1)


# ---- spec 1.4: CNN(48, 64) ----
class CNN(nn.Module):
    def __init__(self, h_in, w_in):
        super().__init__()
        C, K = 6, 7
        self.conv = nn.Conv2d(1, C, kernel_size=K, padding=K // 2)
        self.conv.weight = nn.Parameter(filters(C, K))
        self.conv.bias = nn.Parameter(torch.zeros((C,), dtype=torch.float32))
        self.pool = nn.MaxPool2d(8)
        self.dims = (C, h_in // 8, w_in // 8)
        self.fc = nn.Linear(int(np.prod(self.dims)), 10)
        self.out = nn.Linear(10, 1)

    def forward_logit(self, x):
        x = x.unsqueeze(1)
        x = torch.relu(self.conv(x))
        x = self.pool(x)
        x = x.view(-1, int(np.prod(self.dims)))
        x = torch.relu(self.fc(x))
        return self.out(x).view(-1)

    def forward(self, x):
        return torch.sigmoid(self.forward_logit(x))


# ---- spec 1.6: get_hidden_activity, extended with the pre-ReLU conv output ----
def get_hidden_activity(net, stimuli, layer_labels):
    hidden = {}

    def hook(module, inp, output):
        name = [k for k, m in net._modules.items() if m is module][0]
        if name in layer_labels:
            hidden[name] = output.view(stimuli.shape[0], -1).detach().numpy()

    handles = [m.register_forward_hook(hook) for m in net.children()]
    logit = net.forward_logit(stimuli)
    for h in handles:
        h.remove()
    return hidden, logit


def flat_params(net):
    return np.concatenate([v.detach().numpy().ravel() for v in net.state_dict().values()]).astype(np.float32)


def flat_grads(net):
    return np.concatenate([p.grad.detach().numpy().ravel() for p in net.parameters()]).astype(np.float32)


def set_flat(net, flat):
    off = 0
    with torch.no_grad():
        for p in net.parameters():
            n = p.numel()
            p.copy_(torch.from_numpy(flat[off:off + n].reshape(p.shape)))
            off += n
    assert off == flat.size


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, 'tests', 'data', 'cnn')
    os.makedirs(out, exist_ok=True)

    def save(name, a):
        np.save(os.path.join(out, name), a)

    net = CNN(48, 64)
    assert [k for k in net.state_dict().keys()] == ['conv.weight', 'conv.bias', 'fc.weight', 'fc.bias',
                                                    'out.weight', 'out.bias']
    filt = filters(6, 7).numpy().astype(np.float32)
    save('filters.npy', filt)

    rng = np.random.default_rng(2024)
    b288, b10 = 1 / np.sqrt(288), 1 / np.sqrt(10)
    p0 = np.concatenate([
        filt.ravel(),
        rng.uniform(-0.1, 0.1, 6),
        rng.uniform(-b288, b288, 10 * 288),
        rng.uniform(-b288, b288, 10),
        rng.uniform(-b10, b10, 10),
        rng.uniform(-b10, b10, 1),
    ]).astype(np.float32)
    assert p0.size == 3201
    set_flat(net, p0)
    assert np.array_equal(flat_params(net), p0)
    save('params0.npy', p0)
    # The same weights as PyTorch writes a state_dict to .npz (what rsa_gpu --load-model reads).
    np.savez(os.path.join(out, 'state_dict.npz'), **{k: v.detach().numpy() for k, v in net.state_dict().items()})

    # 16 fixed angles: both signs, near vertical, near horizontal, 0 and +-90 excluded.
    angles = np.array([30.0, -75.0, -40.0, -10.5, -1.0, 3.0, 22.5, 80.0,
                       -60.0, 12.0, -25.0, 67.5, -5.0, 45.0, -85.0, 0.5], dtype=np.float32)
    images = np.stack([grating(float(a)) for a in angles]).astype(np.float32)  # 16 x 48 x 64, values 0/1
    assert set(np.unique(images).tolist()) <= {0.0, 1.0}
    labels = (angles > 0).astype(np.float32)
    save('angles.npy', angles)
    save('images.npy', images.astype(np.uint8))
    save('labels.npy', labels)

    x = torch.from_numpy(images[:8])
    y = torch.from_numpy(labels[:8])
    hidden, logit = get_hidden_activity(net, x, ['conv', 'pool', 'fc', 'out'])
    save('conv0.npy', hidden['conv'][0].reshape(6, 48, 64).astype(np.float32))
    save('pool.npy', hidden['pool'].astype(np.float32))
    save('fc.npy', hidden['fc'].astype(np.float32))
    save('fc_relu.npy', np.maximum(hidden['fc'], 0).astype(np.float32))
    save('logit.npy', hidden['out'].ravel().astype(np.float32))
    save('prob.npy', torch.sigmoid(logit).detach().numpy().astype(np.float32))

    net.zero_grad()
    loss = nn.BCEWithLogitsLoss()(logit, y)
    loss.backward()
    loss_bce = nn.BCELoss()(torch.sigmoid(logit), y)
    save('loss.npy', np.array([loss.item(), loss_bce.item()], dtype=np.float32))
    save('grad.npy', flat_grads(net))

    # 10 SGD-momentum steps from params0 on alternating halves of the 16-image set.
    set_flat(net, p0)
    opt = torch.optim.SGD(net.parameters(), lr=5e-4, momentum=0.99)
    crit = nn.BCEWithLogitsLoss()
    xs = torch.from_numpy(images)
    ys = torch.from_numpy(labels)
    losses = []
    for k in range(10):
        lo = 8 * (k % 2)
        z = net.forward_logit(xs[lo:lo + 8])
        l = crit(z, ys[lo:lo + 8])
        opt.zero_grad()
        l.backward()
        opt.step()
        losses.append(l.item())
    save('sgd_losses.npy', np.array(losses, dtype=np.float32))

    tutorial_rng(out)

    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print('wrote', out, 'total bytes', total, 'loss', loss.item(), loss_bce.item(), 'sgd', losses)


def tutorial_rng(out):
    """The tutorial's init parameters, first 100 angles and epoch-0/24 shuffles (its own seeding order)."""
    np.random.seed(12)
    torch.manual_seed(12)
    net = CNN(48, 64)
    ori = (np.random.rand(1000) - 0.5) * 180
    perms = [torch.randperm(1000).numpy() for _ in range(25)]
    init = flat_params(net)
    np.save(os.path.join(out, 'tutorial_init_fc.npy'), init[300:].astype(np.float32))
    np.save(os.path.join(out, 'tutorial_angles_first100.npy'), ori[:100].astype(np.float64))
    np.save(os.path.join(out, 'tutorial_perm_epoch0.npy'), perms[0].astype('<i2'))
    np.save(os.path.join(out, 'tutorial_perm_epoch24.npy'), perms[24].astype('<i2'))
    torch.manual_seed(0)


def tutorial():
    np.random.seed(12)
    torch.manual_seed(12)
    net = CNN(48, 64)
    ori = (np.random.rand(1000) - 0.5) * 180
    stimuli = torch.stack([torch.from_numpy(grating(o)) for o in ori])
    tilt = torch.tensor(ori > 0).float().unsqueeze(1)
    loss_fn = nn.BCELoss()
    opt = torch.optim.SGD(net.parameters(), lr=5e-4, momentum=0.99)
    for i in range(25):
        shuffle = torch.randperm(1000)
        for X, y in zip(torch.split(stimuli[shuffle], 100), torch.split(tilt[shuffle], 100)):
            loss = loss_fn(net(X).unsqueeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if (i + 1) % 5 == 0:
            print(f'epoch {i + 1} | loss on last mini-batch: {loss.item(): .2e}', flush=True)
    with torch.no_grad():
        p = net(stimuli).unsqueeze(1)
        per = nn.BCELoss(reduction='none')(p, tilt).view(-1).numpy()
    print('mean BCE over the training set %.2e, misclassified %d' % (per.mean(), int(((p > 0.5).float() != tilt).sum())))
    for k in np.argsort(-per)[:8]:
        print('  loss %.3e at angle %.3f' % (per[k], ori[k]))


if __name__ == '__main__':
    if '--tutorial-rng' in sys.argv[1:]:
        args = [a for a in sys.argv[1:] if a != '--tutorial-rng']
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = args[0] if args else os.path.join(root, 'tests', 'data', 'cnn')
        os.makedirs(out, exist_ok=True)
        tutorial_rng(out)
        print('wrote tutorial_*.npy to', out)
    elif '--tutorial' in sys.argv[1:]:
        tutorial()
    else:
        main()
