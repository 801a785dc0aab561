#!/usr/bin/env python3
"""Peer for bench_train: the tutorial's original PyTorch/numpy code (W1D5 Tutorial 3: grating, filters, CNN,
train, get_hidden_activity, RDM, correlate_rdms), timed on this machine. V1 data: a random matrix of the
tutorial's size (181 x 23,589) — the RDM cost does not depend on the values. Prints images/s at batch 100 and
1,000 and the whole analysis time. Usage: peer_tutorial_torch.py [threads] [device]"""
import sys
import time

import numpy as np
import torch
from torch import nn, optim

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
torch.set_num_threads(threads)


def grating(angle, sf=1 / 28, res=0.1):
    angle = np.deg2rad(angle)
    xx, yy = np.meshgrid(sf * np.arange(0, 640 * res) / res, sf * np.arange(0, 480 * res) / res)
    g = np.cos(xx * np.cos(angle) + yy * np.sin(angle))
    g[g < 0] = 0
    g[g > 0] = 1
    return torch.tensor(g, dtype=torch.float32)


def filters(out_channels=6, K=7):
    grid = np.linspace(-K / 2, K / 2, K).astype(np.float32)
    xx, yy = np.meshgrid(grid, grid, indexing="ij")
    sigma = 1.1
    r = np.sqrt(xx ** 2 + yy ** 2)
    cs = np.exp(-r / (2 * sigma ** 2)) - 0.5 * np.exp(-r / (2 * (2 * sigma) ** 2))
    env = np.exp(-r / (2 * (sigma * 0.4) ** 2))
    f = [cs, -cs]
    for th in np.deg2rad(np.linspace(0, 180, out_channels - 1)[:-1]):
        f.append(env * np.cos(2 * np.pi * (xx * np.cos(th) + yy * np.sin(th)) / 10 + np.pi / 2))
    f = np.stack([x / np.abs(x).max() for x in f])
    return torch.from_numpy(f.astype(np.float32)).unsqueeze(1)


class CNN(nn.Module):
    def __init__(self, h_in, w_in):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, kernel_size=7, padding=3)
        self.conv.weight = nn.Parameter(filters())
        self.conv.bias = nn.Parameter(torch.zeros((6,), dtype=torch.float32))
        self.pool = nn.MaxPool2d(8)
        self.fc = nn.Linear(6 * (h_in // 8) * (w_in // 8), 10)
        self.out = nn.Linear(10, 1)

    def forward(self, x):
        x = torch.relu(self.conv(x.unsqueeze(1)))
        x = self.pool(x).view(x.shape[0], -1)
        return torch.sigmoid(self.out(torch.relu(self.fc(x))))


def train(net, data, labels, n_epochs=25, lr=5e-4, batch_size=100, momentum=0.99):
    loss_fn = nn.BCELoss()
    opt = optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    for _ in range(n_epochs):
        perm = torch.randperm(data.shape[0])
        for xb, yb in zip(torch.split(data[perm], batch_size), torch.split(labels[perm], batch_size)):
            loss = loss_fn(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return loss.item()


def rdm(resp):
    z = (resp - resp.mean(1, keepdims=True)) / resp.std(1, keepdims=True)
    return 1 - z @ z.T / z.shape[1]


def correlate(a, b):
    i = np.triu_indices(a.shape[0], k=1)
    return np.corrcoef(a[i], b[i])[0, 1]


def sync():
    if device != "cpu":
        torch.cuda.synchronize()


np.random.seed(12)
torch.manual_seed(12)
ori = (np.random.rand(1000) - 0.5) * 180
stimuli = torch.stack([grating(o) for o in ori]).to(device)
tilt = torch.tensor(ori > 0).float().unsqueeze(1).to(device)
for batch in (100, 1000):
    torch.manual_seed(12)
    net = CNN(48, 64).to(device)
    sync()
    t0 = time.perf_counter()
    last = train(net, stimuli, tilt, batch_size=batch)
    sync()
    s = time.perf_counter() - t0
    print(f"PyTorch {torch.__version__} ({device}, {threads} threads) batch {batch}: {s:.3f} s, "
          f"{25000 / s:.0f} images/s (last loss {last:.2e})")
    if batch == 100:
        print(f"RESULT torch_train_images_per_s {25000 / s:.0f}")

resp_v1 = np.random.default_rng(0).standard_normal((181, 23589)).astype(np.float32)
v1_ori = np.arange(-90, 91)
t0 = time.perf_counter()
np.random.seed(12)
torch.manual_seed(12)
ori = (np.random.rand(1000) - 0.5) * 180
stimuli = torch.stack([grating(o) for o in ori]).to(device)
tilt = torch.tensor(ori > 0).float().unsqueeze(1).to(device)
net = CNN(48, 64).to(device)
train(net, stimuli, tilt)
with torch.no_grad():
    x = torch.stack([grating(float(a)) for a in v1_ori]).to(device)
    pool = net.pool(torch.relu(net.conv(x.unsqueeze(1)))).view(181, -1).cpu().numpy()
    fc = net.fc(torch.tensor(pool, device=device)).cpu().numpy()
r_v1 = rdm(resp_v1)
r = [correlate(r_v1, rdm(pool)), correlate(r_v1, rdm(fc))]
sync()
s = time.perf_counter() - t0
print(f"whole tutorial analysis (original code, {device}): {s:.3f} s")
print(f"RESULT torch_tutorial_s {s:.3f}")
