"""PyTorch peer of fedsynth's conditional U-Net (libs/diffusion/src/unet.ts).

The same architecture as MONAI's DiffusionModelUNet (2D, no cross-attention), with the same
parameter names, so it loads the safetensors that fedsynth writes with `load_state_dict`. Used by
`npm run bench:train` as the numerical oracle of the forward pass and as the speed peer of one
training step. Needs only torch and numpy (Debian's python3-torch)."""
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        tensors[name] = torch.from_numpy(np.frombuffer(raw[base + b : base + e], dtype="<f4").reshape(info["shape"]).copy())
    return tensors, meta


class Conv(nn.Module):
    """MONAI's Convolution(conv_only=True): the conv lives under `.conv`."""

    def __init__(self, cin, cout, k, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2)

    def forward(self, x):
        return self.conv(x)


class Resnet(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = Conv(cin, cout, 3)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = Conv(cout, cout, 3)
        self.skip_connection = Conv(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip_connection(x) + h


class SelfAttention(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.to_q = nn.Linear(ch, ch)
        self.to_k = nn.Linear(ch, ch)
        self.to_v = nn.Linear(ch, ch)
        self.out_proj = nn.Linear(ch, ch)


class Attention(nn.Module):
    def __init__(self, ch, head_ch, groups, eps):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, eps=eps)
        self.attn = SelfAttention(ch)
        self.heads = ch // head_ch
        self.d = head_ch

    def forward(self, x):
        b, c, h, w = x.shape
        t = self.norm(x).permute(0, 2, 3, 1).reshape(b, h * w, c)
        split = lambda z: z.view(b, h * w, self.heads, self.d).transpose(1, 2)
        q, k, v = split(self.attn.to_q(t)), split(self.attn.to_k(t)), split(self.attn.to_v(t))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d), dim=-1)
        o = (att @ v).transpose(1, 2).reshape(b, h * w, c)
        return self.attn.out_proj(o).reshape(b, h, w, c).permute(0, 3, 1, 2) + x


class Block(nn.Module):
    pass


class UNet(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, nr, att = cfg["channels"], cfg["numResBlocks"], cfg["attentionLevels"]
        g, eps, hc = cfg["normNumGroups"], cfg["normEps"], cfg["numHeadChannels"]
        self.cfg = cfg
        temb = ch[0] * 4
        self.conv_in = Conv(cfg["inChannels"], ch[0], 3)
        self.time_embed = nn.Sequential(nn.Linear(ch[0], temb), nn.SiLU(), nn.Linear(temb, temb))
        self.down_blocks = nn.ModuleList()
        out = ch[0]
        for i in range(len(ch)):
            cin, out = out, ch[i]
            blk = Block()
            blk.resnets = nn.ModuleList([Resnet(cin if r == 0 else out, out, temb, g, eps) for r in range(nr)])
            if att[i]:
                blk.attentions = nn.ModuleList([Attention(out, hc, g, eps) for _ in range(nr)])
            if i < len(ch) - 1:
                blk.downsampler = Block()
                blk.downsampler.op = Conv(out, out, 3, stride=2)
            self.down_blocks.append(blk)
        self.middle_block = Block()
        self.middle_block.resnet_1 = Resnet(ch[-1], ch[-1], temb, g, eps)
        self.middle_block.attention = Attention(ch[-1], hc, g, eps)
        self.middle_block.resnet_2 = Resnet(ch[-1], ch[-1], temb, g, eps)
        rev, rev_att = list(reversed(ch)), list(reversed(att))
        self.up_blocks = nn.ModuleList()
        out = rev[0]
        for u in range(len(ch)):
            prev, out = out, rev[u]
            inch = rev[min(u + 1, len(ch) - 1)]
            blk = Block()
            blk.resnets = nn.ModuleList(
                [Resnet((prev if r == 0 else out) + (inch if r == nr else out), out, temb, g, eps) for r in range(nr + 1)]
            )
            if rev_att[u]:
                blk.attentions = nn.ModuleList([Attention(out, hc, g, eps) for _ in range(nr + 1)])
            if u < len(ch) - 1:
                blk.upsampler = Block()
                blk.upsampler.postconv = Conv(out, out, 3)
            self.up_blocks.append(blk)
        self.out = nn.Sequential(nn.GroupNorm(g, ch[0], eps=eps), nn.SiLU(), Conv(ch[0], cfg["outChannels"], 3))

    def forward(self, x, t):
        c0 = self.cfg["channels"][0]
        half = c0 // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        args = t.float()[:, None] * freqs[None]
        emb = self.time_embed(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down_blocks:
            for r, res in enumerate(blk.resnets):
                h = res(h, emb)
                if hasattr(blk, "attentions"):
                    h = blk.attentions[r](h)
                skips.append(h)
            if hasattr(blk, "downsampler"):
                h = blk.downsampler.op(h)
                skips.append(h)
        h = self.middle_block.resnet_2(self.middle_block.attention(self.middle_block.resnet_1(h, emb)), emb)
        for blk in self.up_blocks:
            for r, res in enumerate(blk.resnets):
                h = res(torch.cat([h, skips.pop()], dim=1), emb)
                if hasattr(blk, "attentions"):
                    h = blk.attentions[r](h)
            if hasattr(blk, "upsampler"):
                h = blk.upsampler.postconv(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(h)


def main():
    work = sys.argv[1]
    # "All cores": this Debian build defaults to one thread, so ask for every core we may use.
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    weights, meta = read_safetensors(f"{work}/model.safetensors")
    cfg = json.loads(meta["fedsynth.unet"])
    model = UNet(cfg)
    model.load_state_dict(weights, strict=True)
    io = json.load(open(f"{work}/io.json"))
    b, size = io["batch"], io["size"]
    # Parity on the slices fedsynth ran in one forward pass (all of the batch unless memory said fewer).
    pb = io.get("parityBatch", b)
    x = torch.from_numpy(np.fromfile(f"{work}/x.f32", dtype="<f4").reshape(pb, size, size, cfg["inChannels"])).permute(0, 3, 1, 2).contiguous()
    t = torch.tensor(io["t"], dtype=torch.int64)
    ours = np.fromfile(f"{work}/y.f32", dtype="<f4").reshape(pb, size, size, cfg["outChannels"])
    with torch.no_grad():
        y = model(x, t).permute(0, 2, 3, 1).numpy()
    parity = float(np.abs(y - ours).max())
    # One Adam step on the whole batch, torch on its defaults (all cores).
    if pb != b:
        x = torch.randn(b, cfg["inChannels"], size, size)
        t = torch.tensor([(i * 997) % 1000 for i in range(b)], dtype=torch.int64)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    target = torch.randn(b, cfg["outChannels"], size, size)
    times = []
    for i in range(io["torchSteps"] + 2):
        s = time.perf_counter()
        opt.zero_grad()
        loss = F.mse_loss(model(x, t), target)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append((time.perf_counter() - s) * 1000)
    times.sort()
    print(json.dumps({"parityMaxAbsDiff": parity, "torchStepMs": times[len(times) // 2], "torchThreads": torch.get_num_threads(), "torchVersion": torch.__version__}))


if __name__ == "__main__":
    main()
