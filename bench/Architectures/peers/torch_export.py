#!/usr/bin/env python3
"""The peer of the architecture benchmark: a torchvision model exported by PyTorch itself.

    /usr/bin/python3 bench/Architectures/peers/torch_export.py ARCH SIZE OUTPUT_DIR

Writes ARCH.pth (the state_dict of torchvision.models.ARCH(num_classes=5), random init, saved with
torch.save as a user would) and ARCH.torch.onnx (the same model through torch.onnx.export: opset 13,
eval mode, constant folding, a dynamic batch axis; input "input", output "logits"), and prints one
JSON line with the versions and how long the export took. Run with Debian's python3-torch.
"""
import json
import os
import sys
import time

import torch
import torchvision


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit("usage: torch_export.py ARCH SIZE OUTPUT_DIR")
    arch, size, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1)
    model = getattr(torchvision.models, arch)(num_classes=5).eval()
    torch.save(model.state_dict(), os.path.join(out, f"{arch}.pth"))
    start = time.time()
    torch.onnx.export(
        model,
        torch.randn(1, 3, size, size),
        os.path.join(out, f"{arch}.torch.onnx"),
        opset_version=13,
        do_constant_folding=True,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    print(json.dumps({"torch": torch.__version__, "torchvision": torchvision.__version__, "exportSeconds": round(time.time() - start, 2)}))


if __name__ == "__main__":
    main()
