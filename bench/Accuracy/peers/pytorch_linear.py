#!/usr/bin/python3
"""The reference PyTorch peer of the accuracy benchmark: the plain transfer-learning script.

Same frozen backbone as the product: the ResNet-18 of Microsoft.ML.DnnImageFeaturizer.ResNet18
(ResNet18.onnx), whose weights the benchmark exports as safetensors after importing them (the
product's own import, checked there against ONNX Runtime). This script rebuilds that network in
plain PyTorch (the CNTK export's top/left-heavy padding included), computes its OWN features of the
preprocessed inputs the benchmark writes (the product's resize and mean-image preprocessing, so
both sides see the same pixels), checks them against the product's features on a few images, then
trains a new nn.Linear with Adam (lr 1e-3), batch 64, 10 epochs, on every training image.

Usage: pytorch_linear.py WORKDIR  (reads backbone.safetensors, train.f32, train.labels, test.f32,
test.labels, meta.json, parity.f32; prints one JSON line)
"""
import json
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] in ("F32", "I64"), info["dtype"]
        begin, end = info["data_offsets"]
        dtype = np.float32 if info["dtype"] == "F32" else np.int64
        tensors[name] = torch.from_numpy(np.frombuffer(data[begin:end], dtype=dtype).copy().reshape(info["shape"]))
    return tensors


def pad(x, kernel, stride, value=0.0):
    # Top/left-heavy padding of the CNTK export: total max(k - s, 0), the larger half first.
    total = max(kernel - stride, 0)
    begin = (total + 1) // 2
    return F.pad(x, (begin, total - begin, begin, total - begin), value=value)


class Block(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 0, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(pad(x, 3, self.stride))))
        out = self.bn2(self.conv2(pad(out, 3, 1)))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class OnnxResNet18(nn.Module):
    """ResNet18.onnx's network: basic blocks [2, 2, 2, 3], 512 pooled features, no fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        planes, layers = [64, 128, 256, 512], [2, 2, 2, 3]
        inplanes = 64
        for i, (p, n) in enumerate(zip(planes, layers)):
            blocks = [Block(inplanes, p, 1 if i == 0 else 2)] + [Block(p, p, 1) for _ in range(n - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = p

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(pad(x, 7, 2))))
        x = F.max_pool2d(pad(x, 3, 2, float("-inf")), 3, 2)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


def features(model, inputs):
    out = []
    with torch.no_grad():
        for start in range(0, inputs.shape[0], 32):
            out.append(model(torch.from_numpy(inputs[start:start + 32].copy())))
    return torch.cat(out)


def metrics(probabilities, labels, classes):
    predicted = probabilities.argmax(1)
    correct = predicted == labels
    f1s = []
    for c in range(classes):
        tp = ((predicted == c) & (labels == c)).sum().item()
        fp = ((predicted == c) & (labels != c)).sum().item()
        fn = ((predicted != c) & (labels == c)).sum().item()
        if tp + fn == 0:
            continue
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn)
        f1s.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    confidence = probabilities.max(1).values
    ece = 0.0
    bins = 15
    for b in range(bins):
        # Same bins as the product: (b/15, (b+1)/15], the first one closed at 0.
        in_bin = (confidence > b / bins) & (confidence <= (b + 1) / bins) if b > 0 else confidence <= 1 / bins
        if in_bin.any():
            ece += abs(correct[in_bin].float().sum().item() - confidence[in_bin].sum().item()) / len(labels)
    return correct.float().mean().item(), sum(f1s) / len(f1s), ece


def main():
    work = sys.argv[1]
    torch.manual_seed(0)
    torch.set_num_threads(int(json.load(open(f"{work}/meta.json"))["threads"]))
    meta = json.load(open(f"{work}/meta.json"))
    size, classes = meta["inputSize"], meta["classes"]
    model = OnnxResNet18()
    missing, unexpected = model.load_state_dict(read_safetensors(f"{work}/backbone.safetensors"), strict=False)
    assert not [m for m in missing if not m.endswith("num_batches_tracked")] and not unexpected, (missing, unexpected)
    model.eval()

    def load(name):
        x = np.fromfile(f"{work}/{name}.f32", dtype=np.float32).reshape(-1, 3, size, size)
        y = torch.tensor([int(l) for l in open(f"{work}/{name}.labels").read().split()])
        return x, y

    train_x, train_y = load("train")
    test_x, test_y = load("test")
    clock = time.time()
    train_f = features(model, train_x)
    feature_seconds = time.time() - clock
    test_f = features(model, test_x)
    product = torch.from_numpy(np.fromfile(f"{work}/parity.f32", dtype=np.float32).reshape(-1, train_f.shape[1]))
    parity = ((train_f[: product.shape[0]] - product).abs().max() / product.abs().max()).item()

    clock = time.time()
    head = nn.Linear(train_f.shape[1], classes)
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-3)
    for _ in range(10):
        order = torch.randperm(train_f.shape[0])
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            optimizer.zero_grad()
            loss = F.cross_entropy(head(train_f[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
    head_seconds = time.time() - clock
    with torch.no_grad():
        probabilities = F.softmax(head(test_f), 1)
    accuracy, macro_f1, ece = metrics(probabilities, test_y, classes)
    print(json.dumps({"accuracy": accuracy, "macroF1": macro_f1, "ece": ece, "featureSeconds": feature_seconds,
                      "headSeconds": head_seconds, "trainSeconds": feature_seconds + head_seconds, "parity": parity}))


if __name__ == "__main__":
    main()
